//! The delivery engine against the real Graph emulator and the SQLite store.
//!
//! Every wait is a condition polled against a deadline; the engine runs with
//! millisecond-scale backoff, cooldowns and poll intervals so the scenarios
//! finish fast, and no assertion depends on a timing.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sluice_core::Secret;
use sluice_delivery::breaker::BreakerConfig;
use sluice_delivery::{
    Backoff, ClientConfig, DeliveryEngine, EngineConfig, MetaRetryPolicy, PixelConfig,
    PixelResolver, TestEventMode,
};
use sluice_emulator::{Emulator, EmulatorConfig, Fault, FaultRule, RunningEmulator};
use sluice_store::{
    DlqFilter, EnqueueOutcome, EventSource, NewEvent, SqliteOptions, SqliteStore, Store,
};
use tokio::sync::oneshot;

const PIXEL: &str = "1234567890";
const TOKEN: &str = "good-token";
const APP_SECRET: &str = "app-secret";
/// SHA-256 of an e-mail address (any 64 lowercase hex digits pass).
const HASH: &str = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f";
const DAY: i64 = 86_400;

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn now_ms() -> i64 {
    now_secs() * 1000
}

/// A website Lead that passes the emulator's checks.
fn payload(id: &str, event_time: i64) -> Value {
    json!({
        "event_name": "Lead",
        "event_time": event_time,
        "event_id": id,
        "action_source": "website",
        "event_source_url": "https://shop.example.com/form",
        "user_data": {
            "em": [HASH],
            "client_ip_address": "203.0.113.7",
            "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)"
        }
    })
}

fn new_event(pixel: &str, payload: &Value, test_event_code: Option<&str>) -> NewEvent {
    NewEvent {
        pixel_id: pixel.to_owned(),
        event_name: payload["event_name"].as_str().unwrap().to_owned(),
        event_id: payload["event_id"].as_str().unwrap().to_owned(),
        event_time: payload["event_time"].as_i64().unwrap(),
        source: EventSource::Backend,
        payload: serde_json::to_vec(payload).unwrap(),
        user_keys: vec![HASH.to_owned()],
        test_event_code: test_event_code.map(str::to_owned),
        hold_until_ms: None,
        order_id: None,
        event_id_origin: sluice_store::EventIdOrigin::Sent,
    }
}

struct Harness {
    emulator: RunningEmulator,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new(config: EmulatorConfig) -> Self {
        let emulator = Emulator::new(config).unwrap();
        let running = emulator.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(
            dir.path().join("queue.db"),
            SqliteOptions {
                synchronous_full: false,
                ..SqliteOptions::default()
            },
        )
        .await
        .unwrap();
        Harness {
            emulator: running,
            store: Arc::new(store),
            _dir: dir,
        }
    }

    /// An emulator that knows one pixel, one token and the app secret.
    async fn standard() -> Self {
        Self::new(EmulatorConfig {
            tokens: Some(vec![TOKEN.to_owned()]),
            pixels: Some(vec![PIXEL.to_owned()]),
            app_secret: Some(APP_SECRET.to_owned()),
            require_appsecret_proof: true,
            ..EmulatorConfig::default()
        })
        .await
    }

    fn emulator(&self) -> &Emulator {
        self.emulator.emulator()
    }

    async fn enqueue(&self, events: Vec<NewEvent>) {
        let n = events.len();
        let outcomes = self.store.enqueue(events, now_ms()).await.unwrap();
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| matches!(o, EnqueueOutcome::Queued { .. }))
                .count(),
            n
        );
    }

    async fn queued(&self) -> u64 {
        self.store.stats(now_ms()).await.unwrap().queued
    }

    /// Events still queued for `pixel`.
    async fn queued_for(&self, pixel: &str) -> u64 {
        self.store
            .stats(now_ms())
            .await
            .unwrap()
            .per_pixel
            .iter()
            .find(|p| p.pixel_id == pixel)
            .map_or(0, |p| p.queued)
    }

    async fn dead_letters(&self) -> Vec<sluice_store::DeadLetter> {
        self.store.dlq_list(&DlqFilter::default()).await.unwrap()
    }

    /// Event ids the emulator accepted for `pixel`.
    fn delivered_ids(&self, pixel: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .emulator()
            .events_for(pixel)
            .iter()
            .map(|e| e.json()["event_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }

    fn requests(&self, pixel: &str) -> u64 {
        self.emulator()
            .stats()
            .pixels
            .get(pixel)
            .map_or(0, |p| p.requests)
    }

    fn pixel(&self) -> PixelConfig {
        PixelConfig {
            app_secret: Some(Secret::new(APP_SECRET)),
            ..PixelConfig::new(PIXEL, Secret::new(TOKEN))
        }
    }

    /// Fast settings for tests.
    fn config(&self, pixels: Vec<PixelConfig>) -> EngineConfig {
        EngineConfig {
            pixels,
            client: ClientConfig {
                base_url: self.emulator.base_url(),
                // Generous: a slow shared machine must not turn a normal
                // answer into a timeout (and an extra request).
                request_timeout: Duration::from_secs(2),
                connect_timeout: Duration::from_secs(2),
                ..ClientConfig::default()
            },
            max_batch_size: 10,
            linger: Duration::from_millis(20),
            concurrency_per_pixel: 2,
            lease: Duration::from_secs(5),
            poll_interval: Duration::from_millis(10),
            backoff: Backoff::new(Duration::from_millis(2), Duration::from_millis(20), 2.0)
                .unwrap(),
            max_attempts: 50,
            retry_policy: MetaRetryPolicy {
                rate_limit_pause: Duration::from_millis(30),
                policy_block_pause: Duration::from_millis(30),
            },
            breaker: BreakerConfig {
                failure_threshold: 3,
                cooldown: Duration::from_millis(20),
                auth_cooldown: Duration::from_secs(3600),
                max_cooldown: Duration::from_secs(3600),
                max_transient_cooldown: Duration::from_secs(3600),
            },
            rng_seed: Some(7),
            ..EngineConfig::default()
        }
    }
}

/// Starts an engine; the returned sender stops it.
fn start(store: Arc<SqliteStore>, config: EngineConfig) -> (DeliveryEngine, oneshot::Sender<()>) {
    let (tx, rx) = oneshot::channel::<()>();
    let engine = DeliveryEngine::spawn(store, config, async {
        let _ = rx.await;
    })
    .unwrap();
    (engine, tx)
}

async fn stop(engine: DeliveryEngine, tx: oneshot::Sender<()>) {
    let _ = tx.send(());
    engine.join().await;
}

/// Polls `condition` until it holds; panics with `what` after 20 s.
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn ids(range: std::ops::Range<u32>) -> Vec<String> {
    let mut ids: Vec<String> = range.map(|i| format!("e{i:03}")).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn delivers_a_backlog_in_batches_with_appsecret_proof() {
    let h = Harness::standard().await;
    let now = now_secs();
    h.enqueue(
        (0..25)
            .map(|i| new_event(PIXEL, &payload(&format!("e{i:03}"), now - 60), None))
            .collect(),
    )
    .await;
    let (engine, tx) = start(h.store.clone(), h.config(vec![h.pixel()]));
    eventually("all delivered", || async { h.queued().await == 0 }).await;
    assert_eq!(h.delivered_ids(PIXEL), ids(0..25));
    assert!(h.requests(PIXEL) >= 3, "batches of at most 10");
    assert_eq!(h.emulator().stats().rejected_requests, 0);
    let recorded = h.emulator().events_for(PIXEL);
    assert!(
        recorded[0]
            .partner_agent
            .as_deref()
            .unwrap()
            .starts_with("sluice_")
    );
    // Stopping first: join() returns once every batch is settled and
    // recorded, so the status below is final.
    let status = engine.status();
    stop(engine, tx).await;
    let lane = status.lane(PIXEL).unwrap();
    assert_eq!(lane.delivered, 25);
    assert_eq!(lane.breaker, "closed");
    assert!(lane.last_error_code.is_none());
}

#[tokio::test]
async fn retries_server_errors_throttling_timeouts_and_drops_until_delivered() {
    let h = Harness::standard().await;
    // Built from the emulator's documented JSON form, so the test does not
    // depend on the Rust shape of each fault.
    let script: Vec<Fault> = [
        json!({"kind": "http_status", "status": 500}),
        json!({"kind": "http_status", "status": 503}),
        json!({"kind": "rate_limit", "code": 4}),
        json!({"kind": "rate_limit", "code": 80004, "regain_minutes": 0}),
        json!({"kind": "drop_connection"}),
        json!({"kind": "timeout", "hold_ms": 5000}),
        json!({"kind": "rate_limit", "code": 613}),
    ]
    .into_iter()
    .map(|fault| serde_json::from_value(fault).unwrap())
    .collect();
    let rules = script
        .iter()
        .enumerate()
        .map(|(i, fault)| FaultRule {
            pixel: None,
            after_requests: i as u64,
            times: Some(1),
            fault: fault.clone(),
        })
        .collect();
    h.emulator().set_faults(rules).unwrap();

    let now = now_secs();
    h.enqueue(
        (0..5)
            .map(|i| new_event(PIXEL, &payload(&format!("e{i:03}"), now - 60), None))
            .collect(),
    )
    .await;
    let mut config = h.config(vec![h.pixel()]);
    config.concurrency_per_pixel = 1;
    // Shorter than the timeout fault's hold, so that fault is a client timeout.
    config.client.request_timeout = Duration::from_millis(300);
    let (engine, tx) = start(h.store.clone(), config);
    eventually("delivered after the faults", || async {
        h.queued().await == 0
    })
    .await;
    assert_eq!(h.delivered_ids(PIXEL), ids(0..5));
    assert!(h.dead_letters().await.is_empty(), "nothing dead-lettered");
    let faults = h.emulator().stats().faults_injected;
    assert_eq!(
        faults.values().sum::<u64>(),
        script.len() as u64,
        "{faults:?}"
    );
    assert!(h.requests(PIXEL) > script.len() as u64);
    // Stopping first: join() returns once every batch is settled and
    // recorded, so the status below is final.
    let status = engine.status();
    stop(engine, tx).await;
    let lane = status.lane(PIXEL).unwrap();
    assert_eq!(lane.delivered, 5);
    assert!(lane.last_error_code.is_some());
}

#[tokio::test]
async fn a_bad_event_is_split_out_to_the_dlq_and_the_rest_delivered() {
    let h = Harness::standard().await;
    let now = now_secs();
    let mut events: Vec<NewEvent> = (0..10)
        .map(|i| new_event(PIXEL, &payload(&format!("e{i:03}"), now - 60), None))
        .collect();
    // An unhashed e-mail address: Meta rejects the whole batch with 100/2804016.
    let mut bad = payload("e006", now - 60);
    bad["user_data"]["em"] = json!(["jane@example.com"]);
    events[6] = new_event(PIXEL, &bad, None);
    h.enqueue(events).await;

    let mut config = h.config(vec![h.pixel()]);
    config.concurrency_per_pixel = 1;
    config.linger = Duration::from_millis(200);
    let (engine, tx) = start(h.store.clone(), config);
    eventually("all settled", || async { h.queued().await == 0 }).await;

    let good: Vec<String> = ids(0..10).into_iter().filter(|id| id != "e006").collect();
    assert_eq!(h.delivered_ids(PIXEL), good);
    let dlq = h.dead_letters().await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].event_id, "e006");
    assert_eq!(dlq[0].code, "100/2804016");
    let detail: Value = serde_json::from_str(dlq[0].detail_json.as_deref().unwrap()).unwrap();
    assert_eq!(detail["error"]["code"], 100);
    assert_eq!(detail["error"]["error_subcode"], 2_804_016);
    // Stopping first: join() returns once every batch is settled and
    // recorded, so the status below is final.
    let status = engine.status();
    stop(engine, tx).await;
    let lane = status.lane(PIXEL).unwrap();
    assert_eq!((lane.delivered, lane.dead_lettered), (9, 1));
    assert_eq!(
        lane.breaker, "closed",
        "a payload error does not pause the lane"
    );
}

/// The pieces of a split are cut out of the rejected batch's request body
/// (the leased payloads are gone by then): bad events at both ends and in
/// the middle of a batch, and in a second request for a test code, must be
/// exactly the ones dead-lettered, and every other event delivered once.
#[tokio::test]
async fn a_split_cut_from_the_sent_body_dead_letters_exactly_the_bad_events() {
    let h = Harness::standard().await;
    let now = now_secs();
    let bad_ids = ["e000", "e004", "e009", "e012"];
    let events: Vec<NewEvent> = (0..16)
        .map(|i| {
            let id = format!("e{i:03}");
            let mut event = payload(&id, now - 60);
            if bad_ids.contains(&id.as_str()) {
                // An unhashed e-mail address: Meta rejects the whole batch.
                event["user_data"]["em"] = json!(["jane@example.com"]);
            }
            // e010..e015 go in a request of their own, for a test code.
            let code = (i >= 10).then_some("TEST7");
            new_event(PIXEL, &event, code)
        })
        .collect();
    h.enqueue(events).await;

    let mut config = h.config(vec![h.pixel()]);
    config.concurrency_per_pixel = 1;
    config.max_batch_size = 16;
    config.linger = Duration::from_millis(200);
    let (engine, tx) = start(h.store.clone(), config);
    eventually("all settled", || async { h.queued().await == 0 }).await;
    let status = engine.status();
    stop(engine, tx).await;

    let good: Vec<String> = ids(0..16)
        .into_iter()
        .filter(|id| !bad_ids.contains(&id.as_str()))
        .collect();
    assert_eq!(h.delivered_ids(PIXEL), good, "each good event exactly once");
    let mut dead: Vec<String> = h
        .dead_letters()
        .await
        .into_iter()
        .map(|d| {
            assert_eq!(d.code, "100/2804016");
            d.event_id
        })
        .collect();
    dead.sort();
    assert_eq!(dead, bad_ids);
    let recorded = h.emulator().events_for(PIXEL);
    for event in &recorded {
        let id = event.json()["event_id"].as_str().unwrap().to_owned();
        let expected = (id.as_str() >= "e010").then_some("TEST7");
        assert_eq!(event.test_event_code.as_deref(), expected, "{id}");
    }
    let lane = status.lane(PIXEL).unwrap();
    assert_eq!((lane.delivered, lane.dead_lettered), (12, 4));
}

#[tokio::test]
async fn an_auth_failure_opens_the_breaker_and_no_request_follows() {
    let h = Harness::standard().await;
    let now = now_secs();
    h.enqueue(
        (0..5)
            .map(|i| new_event(PIXEL, &payload(&format!("e{i:03}"), now - 60), None))
            .collect(),
    )
    .await;
    let pixel = PixelConfig {
        app_secret: None,
        ..PixelConfig::new(PIXEL, Secret::new("revoked-token"))
    };
    let (engine, tx) = start(h.store.clone(), h.config(vec![pixel]));
    let status = engine.status();
    eventually("breaker open", || async {
        status.lane(PIXEL).unwrap().breaker == "open"
    })
    .await;
    let lane = status.lane(PIXEL).unwrap();
    assert_eq!(lane.breaker_cause, Some("credentials"));
    assert!(lane.needs_attention());
    assert_eq!(lane.last_error_code.as_deref(), Some("190"));
    assert!(lane.paused_until_ms.unwrap() > now_ms());

    // Let the engine run many more rounds, waking the lane on purpose: the
    // open breaker must keep it from sending anything.
    let ticks = status.ticks();
    let waker = engine.waker();
    eventually("20 more dispatcher rounds", || async {
        waker.wake(PIXEL);
        status.ticks() >= ticks + 20
    })
    .await;
    assert_eq!(h.requests(PIXEL), 1, "exactly one request, then paused");
    assert_eq!(h.queued().await, 5, "events wait in the queue");
    assert!(h.dead_letters().await.is_empty());
    stop(engine, tx).await;
}

#[tokio::test]
async fn an_expired_token_pauses_then_a_half_open_probe_resumes() {
    let h = Harness::standard().await;
    h.emulator()
        .set_faults(vec![FaultRule {
            pixel: None,
            after_requests: 0,
            times: Some(1),
            fault: serde_json::from_value(json!({"kind": "token_expired"})).unwrap(),
        }])
        .unwrap();
    let now = now_secs();
    h.enqueue(
        (0..5)
            .map(|i| new_event(PIXEL, &payload(&format!("e{i:03}"), now - 60), None))
            .collect(),
    )
    .await;
    let mut config = h.config(vec![h.pixel()]);
    config.breaker.auth_cooldown = Duration::from_millis(50);
    let (engine, tx) = start(h.store.clone(), config);
    eventually("delivered after the probe", || async {
        h.queued().await == 0
    })
    .await;
    assert_eq!(h.delivered_ids(PIXEL), ids(0..5));
    // Stopping first: join() returns once every batch is settled and
    // recorded, so the status below is final.
    let status = engine.status();
    stop(engine, tx).await;
    let lane = status.lane(PIXEL).unwrap();
    assert_eq!(lane.last_error_code.as_deref(), Some("190/463"));
    assert_eq!(lane.breaker, "closed");
    assert!(!lane.needs_attention());
}

#[tokio::test]
async fn events_past_the_age_limit_are_dead_lettered_and_never_sent() {
    let h = Harness::standard().await;
    let now = now_secs();
    let stale = payload("stale", now - 8 * DAY);
    let mut store_sale = payload("store", now - 30 * DAY);
    store_sale["action_source"] = json!("physical_store");
    store_sale
        .as_object_mut()
        .unwrap()
        .remove("event_source_url");
    let fresh = payload("fresh", now - 60);
    h.enqueue(vec![
        new_event(PIXEL, &fresh, None),
        new_event(PIXEL, &stale, None),
        new_event(PIXEL, &store_sale, None),
    ])
    .await;
    let (engine, tx) = start(h.store.clone(), h.config(vec![h.pixel()]));
    eventually("all settled", || async { h.queued().await == 0 }).await;

    assert_eq!(h.delivered_ids(PIXEL), ["fresh", "store"]);
    let dlq = h.dead_letters().await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].event_id, "stale");
    assert_eq!(dlq[0].code, "event_too_old");
    let stats = h.emulator().stats();
    assert_eq!(
        stats.rejected_requests, 0,
        "the stale event never reached graph"
    );
    stop(engine, tx).await;
}

#[tokio::test]
async fn test_event_codes_split_requests_and_can_be_forced() {
    let h = Harness::standard().await;
    let now = now_secs();
    h.enqueue(vec![
        new_event(PIXEL, &payload("live", now - 60), None),
        new_event(PIXEL, &payload("test", now - 60), Some("TEST42")),
    ])
    .await;
    let (engine, tx) = start(h.store.clone(), h.config(vec![h.pixel()]));
    eventually("both delivered", || async { h.queued().await == 0 }).await;
    stop(engine, tx).await;
    let recorded = h.emulator().events_for(PIXEL);
    let code_of = |id: &str| {
        recorded
            .iter()
            .find(|e| e.json()["event_id"] == id)
            .unwrap()
            .test_event_code
            .clone()
    };
    assert_eq!(code_of("live"), None);
    assert_eq!(code_of("test").as_deref(), Some("TEST42"));

    h.emulator().reset();
    h.enqueue(vec![new_event(PIXEL, &payload("forced", now - 60), None)])
        .await;
    let pixel = PixelConfig {
        test_events: TestEventMode::Force("SANDBOX".into()),
        ..h.pixel()
    };
    let (engine, tx) = start(h.store.clone(), h.config(vec![pixel]));
    eventually("delivered", || async { h.queued().await == 0 }).await;
    stop(engine, tx).await;
    let recorded = h.emulator().events_for(PIXEL);
    assert_eq!(recorded[0].test_event_code.as_deref(), Some("SANDBOX"));
}

#[tokio::test]
async fn shutdown_waits_for_the_batch_in_flight() {
    let h = Harness::standard().await;
    h.emulator()
        .set_faults(vec![FaultRule {
            pixel: None,
            after_requests: 0,
            times: None,
            fault: serde_json::from_value(json!({"kind": "latency", "ms": 300})).unwrap(),
        }])
        .unwrap();
    let now = now_secs();
    h.enqueue(
        (0..3)
            .map(|i| new_event(PIXEL, &payload(&format!("e{i:03}"), now - 60), None))
            .collect(),
    )
    .await;
    let mut config = h.config(vec![h.pixel()]);
    config.linger = Duration::ZERO;
    config.concurrency_per_pixel = 1;
    let (engine, tx) = start(h.store.clone(), config);
    eventually("request in flight", || async { h.requests(PIXEL) >= 1 }).await;
    stop(engine, tx).await;
    // The engine returned only after the in-flight batch was acknowledged.
    assert_eq!(h.queued().await, 0);
    assert_eq!(h.delivered_ids(PIXEL), ids(0..3));
}

#[tokio::test]
async fn unconfigured_pixels_are_reported_and_left_queued() {
    let h = Harness::new(EmulatorConfig::default()).await;
    let now = now_secs();
    h.enqueue(vec![
        new_event(PIXEL, &payload("a", now - 60), None),
        new_event("999", &payload("b", now - 60), None),
    ])
    .await;
    let (engine, tx) = start(h.store.clone(), h.config(vec![h.pixel()]));
    let status = engine.status();
    eventually("the unknown pixel is noticed", || async {
        status.unconfigured_pixels() == ["999"]
    })
    .await;
    eventually("the known pixel is delivered", || async {
        h.queued().await == 1
    })
    .await;
    assert_eq!(h.delivered_ids(PIXEL), ["a"]);
    assert_eq!(h.requests("999"), 0);
    stop(engine, tx).await;
}

#[tokio::test]
async fn invalid_config_is_refused() {
    let h = Harness::new(EmulatorConfig::default()).await;
    let mut config = h.config(vec![h.pixel()]);
    config.max_batch_size = 1001;
    let err = DeliveryEngine::spawn(h.store.clone(), config, async {}).unwrap_err();
    assert!(err.to_string().contains("max_batch_size"), "{err}");
}

// ---------------------------------------------------------------------------
// Dynamic lanes: pixels supplied at run time by a `PixelResolver`.
// ---------------------------------------------------------------------------

const PIXEL_A: &str = "1111";
const PIXEL_B: &str = "2222";
const TOKEN_A: &str = "token-of-a";
const TOKEN_B: &str = "token-of-b";

/// A resolver backed by a map the test can change while the engine runs; it
/// records every pixel it is asked about.
#[derive(Clone, Default)]
struct Directory {
    known: Arc<Mutex<HashMap<String, PixelConfig>>>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Directory {
    fn insert(&self, config: PixelConfig) {
        self.known
            .lock()
            .unwrap()
            .insert(config.pixel_id.clone(), config);
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }

    fn times_asked(&self, pixel: &str) -> usize {
        self.asked().iter().filter(|p| *p == pixel).count()
    }

    fn resolver(&self) -> Arc<dyn PixelResolver> {
        let directory = self.clone();
        Arc::new(move |pixel: &str| {
            directory.asked.lock().unwrap().push(pixel.to_owned());
            directory.known.lock().unwrap().get(pixel).cloned()
        })
    }
}

/// Fast settings with no configured pixel and `directory` as the resolver.
fn dynamic_config(h: &Harness, directory: &Directory) -> EngineConfig {
    EngineConfig {
        pixel_resolver: Some(directory.resolver()),
        ..h.config(Vec::new())
    }
}

fn events_for(pixel: &str, prefix: &str, n: u32) -> Vec<NewEvent> {
    let now = now_secs();
    (0..n)
        .map(|i| new_event(pixel, &payload(&format!("{prefix}{i:03}"), now - 60), None))
        .collect()
}

fn prefixed(prefix: &str, n: u32) -> Vec<String> {
    let mut ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i:03}")).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_resolver_opens_lanes_with_the_tokens_and_endpoints_it_returns() {
    // Emulator 1 knows only pixel A, token A and the app secret; emulator 2
    // only pixel B and token B. A lane sending with another pixel's token
    // or to the other endpoint would be refused.
    let h = Harness::new(EmulatorConfig {
        tokens: Some(vec![TOKEN_A.to_owned()]),
        pixels: Some(vec![PIXEL_A.to_owned()]),
        app_secret: Some(APP_SECRET.to_owned()),
        require_appsecret_proof: true,
        ..EmulatorConfig::default()
    })
    .await;
    let other = Emulator::new(EmulatorConfig {
        tokens: Some(vec![TOKEN_B.to_owned()]),
        pixels: Some(vec![PIXEL_B.to_owned()]),
        ..EmulatorConfig::default()
    })
    .unwrap()
    .bind("127.0.0.1:0".parse().unwrap())
    .await
    .unwrap();

    let directory = Directory::default();
    directory.insert(PixelConfig {
        app_secret: Some(Secret::new(APP_SECRET)),
        ..PixelConfig::new(PIXEL_A, Secret::new(TOKEN_A))
    });
    directory.insert(PixelConfig {
        base_url: Some(other.base_url()),
        ..PixelConfig::new(PIXEL_B, Secret::new(TOKEN_B))
    });
    let mut backlog = events_for(PIXEL_A, "a", 12);
    backlog.extend(events_for(PIXEL_B, "b", 7));
    h.enqueue(backlog).await;

    let (engine, tx) = start(h.store.clone(), dynamic_config(&h, &directory));
    eventually("both pixels delivered", || async { h.queued().await == 0 }).await;
    let status = engine.status();
    stop(engine, tx).await;

    assert_eq!(h.delivered_ids(PIXEL_A), prefixed("a", 12));
    assert!(h.delivered_ids(PIXEL_B).is_empty());
    let b_ids: Vec<String> = {
        let mut ids: Vec<String> = other
            .emulator()
            .events_for(PIXEL_B)
            .iter()
            .map(|e| e.json()["event_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(b_ids, prefixed("b", 7));
    assert!(other.emulator().events_for(PIXEL_A).is_empty());
    assert_eq!(h.emulator().stats().rejected_requests, 0);
    assert_eq!(other.emulator().stats().rejected_requests, 0);

    // One lane each, opened once (the lanes ask the resolver again for
    // their credentials, which opens nothing).
    assert!(directory.times_asked(PIXEL_A) >= 1);
    assert!(directory.times_asked(PIXEL_B) >= 1);
    assert_eq!(status.dynamic_lanes(), 2);
    assert!(status.unconfigured_pixels().is_empty());
    let mut lanes = status.lanes();
    lanes.sort_by(|x, y| x.pixel_id.cmp(&y.pixel_id));
    let summary: Vec<(&str, bool, u64, &str)> = lanes
        .iter()
        .map(|l| (l.pixel_id.as_str(), l.dynamic, l.delivered, l.breaker))
        .collect();
    assert_eq!(
        summary,
        [(PIXEL_A, true, 12, "closed"), (PIXEL_B, true, 7, "closed")]
    );
}

#[tokio::test]
async fn a_wrong_token_from_the_resolver_pauses_only_its_lane() {
    let h = Harness::new(EmulatorConfig {
        tokens: Some(vec![TOKEN_A.to_owned()]),
        ..EmulatorConfig::default()
    })
    .await;
    let directory = Directory::default();
    directory.insert(PixelConfig::new(PIXEL_A, Secret::new(TOKEN_A)));
    directory.insert(PixelConfig::new(PIXEL_B, Secret::new("not-a-known-token")));
    let mut backlog = events_for(PIXEL_A, "a", 5);
    backlog.extend(events_for(PIXEL_B, "b", 4));
    h.enqueue(backlog).await;

    // Configured lanes and resolved ones live side by side.
    let configured = PixelConfig::new(PIXEL, Secret::new(TOKEN_A));
    h.enqueue(events_for(PIXEL, "c", 2)).await;
    let config = EngineConfig {
        pixels: vec![configured],
        ..dynamic_config(&h, &directory)
    };
    let (engine, tx) = start(h.store.clone(), config);
    let status = engine.status();
    eventually("A and the configured pixel delivered, B paused", || async {
        h.queued().await == 4
            && status
                .lane(PIXEL_B)
                .is_some_and(|lane| lane.breaker == "open")
    })
    .await;
    assert_eq!(h.delivered_ids(PIXEL_A), prefixed("a", 5));
    assert_eq!(h.delivered_ids(PIXEL), prefixed("c", 2));
    assert!(h.delivered_ids(PIXEL_B).is_empty());
    assert_eq!(h.queued_for(PIXEL_B).await, 4);

    let b = status.lane(PIXEL_B).unwrap();
    assert!(b.dynamic);
    assert_eq!(b.breaker_cause, Some("credentials"));
    assert!(b.needs_attention());
    assert_eq!(b.last_error_code.as_deref(), Some("190"));
    let a = status.lane(PIXEL_A).unwrap();
    assert_eq!((a.dynamic, a.breaker, a.delivered), (true, "closed", 5));
    assert!(!status.lane(PIXEL).unwrap().dynamic);
    assert_eq!(directory.times_asked(PIXEL), 0, "configured pixels win");
    assert_eq!(status.lanes()[0].pixel_id, PIXEL, "configured lanes first");

    // Waking the paused lane on purpose sends nothing more.
    let ticks = status.ticks();
    let waker = engine.waker();
    eventually("20 more dispatcher rounds", || async {
        waker.wake(PIXEL_B);
        status.ticks() >= ticks + 20
    })
    .await;
    assert_eq!(h.requests(PIXEL_B), 1, "exactly one request, then paused");
    assert_eq!(h.queued_for(PIXEL_B).await, 4);
    assert_eq!(status.dynamic_lanes(), 2);
    stop(engine, tx).await;
}

/// Zero-config forwarding: a lane opened with a placeholder token pauses
/// on Meta's 190; once the resolver knows the real token, the lane probes
/// with it at once (not after the hour-long credentials cooldown) and
/// delivers. A token rotated while the lane works is used for the next
/// batch.
#[tokio::test]
async fn a_dynamic_lane_paused_for_its_token_resumes_with_a_token_resolved_later() {
    let h = Harness::new(EmulatorConfig {
        tokens: Some(vec![TOKEN_A.to_owned()]),
        ..EmulatorConfig::default()
    })
    .await;
    let directory = Directory::default();
    directory.insert(PixelConfig::new(PIXEL_A, Secret::new("placeholder")));
    h.enqueue(events_for(PIXEL_A, "a", 4)).await;
    let (engine, tx) = start(h.store.clone(), dynamic_config(&h, &directory));
    let status = engine.status();
    eventually("the lane paused for its credentials", || async {
        status
            .lane(PIXEL_A)
            .is_some_and(|lane| lane.breaker == "open" && lane.breaker_cause == Some("credentials"))
    })
    .await;
    assert_eq!(h.emulator().stats().rejected_requests, 1);
    assert_eq!(h.queued_for(PIXEL_A).await, 4);

    directory.insert(PixelConfig::new(PIXEL_A, Secret::new(TOKEN_A)));
    eventually("delivered with the new token", || async {
        h.queued_for(PIXEL_A).await == 0
    })
    .await;
    assert_eq!(h.delivered_ids(PIXEL_A), prefixed("a", 4));
    let lane = status.lane(PIXEL_A).unwrap();
    assert_eq!((lane.breaker, lane.delivered), ("closed", 4));
    assert!(!lane.needs_attention());

    // A token changed while the lane works is used for the next batch: a
    // wrong one is refused (so it was sent), the right one delivers again.
    directory.insert(PixelConfig::new(
        PIXEL_A,
        Secret::new("another-placeholder"),
    ));
    h.enqueue(events_for(PIXEL_A, "b", 3)).await;
    engine.waker().wake(PIXEL_A);
    eventually("the changed token sent and refused", || async {
        h.emulator().stats().rejected_requests == 2
    })
    .await;
    directory.insert(PixelConfig::new(PIXEL_A, Secret::new(TOKEN_A)));
    eventually("delivered with the token changed back", || async {
        h.queued_for(PIXEL_A).await == 0
    })
    .await;
    assert_eq!(h.delivered_ids(PIXEL_A).len(), 7);
    assert_eq!(status.dynamic_lanes(), 1);
    stop(engine, tx).await;
}

#[tokio::test]
async fn pixels_the_resolver_cannot_serve_stay_queued_and_are_reported() {
    let h = Harness::new(EmulatorConfig::default()).await;
    let directory = Directory::default();
    // An answer for another pixel than the one asked about is refused.
    let mismatched = PixelConfig::new("778", Secret::new(TOKEN_A));
    directory
        .known
        .lock()
        .unwrap()
        .insert("777".to_owned(), mismatched);
    let mut backlog = events_for("999", "u", 3);
    backlog.extend(events_for("777", "m", 2));
    backlog.extend(events_for("sandbox-pixel", "s", 1));
    h.enqueue(backlog).await;

    let (engine, tx) = start(h.store.clone(), dynamic_config(&h, &directory));
    let status = engine.status();
    eventually("the three pixels are reported", || async {
        status.unconfigured_pixels() == ["777", "999", "sandbox-pixel"]
    })
    .await;
    // Several more rounds: the resolver is asked again, nothing is sent.
    let ticks = status.ticks();
    eventually("5 more dispatcher rounds", || async {
        status.ticks() >= ticks + 5
    })
    .await;
    assert!(
        directory.times_asked("999") >= 2,
        "asked again on later ticks"
    );
    assert!(directory.times_asked("777") >= 1);
    assert_eq!(
        directory.times_asked("sandbox-pixel"),
        0,
        "non-numeric ids are never looked up"
    );
    assert!(status.lanes().is_empty());
    assert_eq!(status.dynamic_lanes(), 0);
    assert_eq!(h.queued().await, 6);
    assert_eq!(h.emulator().stats().requests, 0);

    // The token becomes known: the next tick opens the lane.
    directory.insert(PixelConfig::new("999", Secret::new(TOKEN_A)));
    eventually("999 delivered", || async { h.queued_for("999").await == 0 }).await;
    assert_eq!(h.delivered_ids("999"), prefixed("u", 3));
    assert_eq!(status.unconfigured_pixels(), ["777", "sandbox-pixel"]);
    assert!(status.lane("999").unwrap().dynamic);
    assert_eq!(h.queued().await, 3);
    assert_eq!(h.requests("777"), 0);
    stop(engine, tx).await;
}

#[tokio::test]
async fn a_wake_for_a_new_pixel_opens_its_lane_without_waiting_for_a_tick() {
    let h = Harness::new(EmulatorConfig::default()).await;
    let directory = Directory::default();
    directory.insert(PixelConfig::new(PIXEL_A, Secret::new(TOKEN_A)));
    let mut config = dynamic_config(&h, &directory);
    // After the first (immediate) tick the dispatcher does not look at the
    // queue again within the test: only the wake-up can deliver.
    config.poll_interval = Duration::from_secs(3600);
    let (engine, tx) = start(h.store.clone(), config);
    let status = engine.status();
    eventually("the first tick", || async { status.ticks() >= 1 }).await;

    h.enqueue(events_for(PIXEL_A, "a", 3)).await;
    engine.waker().wake(PIXEL_A);
    eventually("delivered after the wake-up", || async {
        h.queued().await == 0
    })
    .await;
    assert_eq!(h.delivered_ids(PIXEL_A), prefixed("a", 3));
    assert_eq!(status.ticks(), 1, "no tick was involved");

    // The lane exists now: a wake-up reaches it directly.
    h.enqueue(events_for(PIXEL_A, "b", 2)).await;
    engine.waker().wake(PIXEL_A);
    eventually("delivered after the second wake-up", || async {
        h.queued().await == 0
    })
    .await;
    assert_eq!(status.dynamic_lanes(), 1);
    assert_eq!(status.ticks(), 1);
    stop(engine, tx).await;
}

#[tokio::test]
async fn max_dynamic_lanes_bounds_the_lanes_the_resolver_opens() {
    let h = Harness::new(EmulatorConfig::default()).await;
    let directory = Directory::default();
    directory.insert(PixelConfig::new(PIXEL_A, Secret::new(TOKEN_A)));
    directory.insert(PixelConfig::new(PIXEL_B, Secret::new(TOKEN_B)));
    let mut backlog = events_for(PIXEL_A, "a", 3);
    backlog.extend(events_for(PIXEL_B, "b", 3));
    h.enqueue(backlog).await;
    let config = EngineConfig {
        max_dynamic_lanes: 1,
        ..dynamic_config(&h, &directory)
    };
    let (engine, tx) = start(h.store.clone(), config);
    let status = engine.status();
    eventually("one pixel delivered, the other reported", || async {
        h.queued().await == 3 && status.unconfigured_pixels().len() == 1
    })
    .await;
    let served = status.lanes()[0].pixel_id.clone();
    let left = if served == PIXEL_A { PIXEL_B } else { PIXEL_A };
    assert_eq!(status.unconfigured_pixels(), [left]);
    assert_eq!(status.dynamic_lanes(), 1);

    let ticks = status.ticks();
    let waker = engine.waker();
    eventually("5 more dispatcher rounds", || async {
        waker.wake(left);
        status.ticks() >= ticks + 5
    })
    .await;
    assert_eq!(h.queued_for(left).await, 3);
    assert_eq!(h.requests(left), 0);
    assert_eq!(directory.times_asked(left), 0, "not asked beyond the limit");
    assert_eq!(status.lanes().len(), 1);
    stop(engine, tx).await;
}

#[tokio::test]
async fn shutdown_drains_dynamic_lanes() {
    let h = Harness::new(EmulatorConfig::default()).await;
    h.emulator()
        .set_faults(vec![FaultRule {
            pixel: None,
            after_requests: 0,
            times: None,
            fault: serde_json::from_value(json!({"kind": "latency", "ms": 300})).unwrap(),
        }])
        .unwrap();
    let directory = Directory::default();
    directory.insert(PixelConfig::new(PIXEL_A, Secret::new(TOKEN_A)));
    directory.insert(PixelConfig::new(PIXEL_B, Secret::new(TOKEN_B)));
    let mut backlog = events_for(PIXEL_A, "a", 3);
    backlog.extend(events_for(PIXEL_B, "b", 3));
    h.enqueue(backlog).await;
    let mut config = dynamic_config(&h, &directory);
    config.linger = Duration::ZERO;
    config.concurrency_per_pixel = 1;
    let (engine, tx) = start(h.store.clone(), config);
    eventually("a request in flight for each pixel", || async {
        h.requests(PIXEL_A) >= 1 && h.requests(PIXEL_B) >= 1
    })
    .await;
    let status = engine.status();
    stop(engine, tx).await;
    // The engine returned only after the in-flight batches were acknowledged.
    assert_eq!(h.queued().await, 0);
    assert_eq!(h.delivered_ids(PIXEL_A), prefixed("a", 3));
    assert_eq!(h.delivered_ids(PIXEL_B), prefixed("b", 3));
    assert_eq!(status.lane(PIXEL_A).unwrap().delivered, 3);
    assert_eq!(status.lane(PIXEL_B).unwrap().delivered, 3);
}
