//! Delivery end to end: a real gateway (`Gateway::start`, own SQLite file)
//! delivering to a separately spawned Graph API emulator whose faults make
//! Meta misbehave: transient errors, an event Meta refuses inside a batch,
//! an expired token, an outage, lost answers; and a graceful shutdown with
//! deliveries in flight. Every acknowledged event must arrive.

mod common;

use common::*;
use serde_json::{Value, json};
use sluice_emulator::{Emulator, EmulatorConfig, Fault, FaultRule, ManualClock};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ADMIN_KEY: &str = "admin-key-0123456789abcdef";
const API_KEY: &str = "backend-key-0123456789abcdef";
const TOKEN: &str = "pixel-token-0123456789";

/// One pixel with its token, a backend key bound to it, the admin API, and
/// fast delivery settings against `graph_url`.
fn config(pixel: &str, graph_url: &str, extra_delivery: &str) -> String {
    format!(
        r#"
[delivery]
graph_url = "{graph_url}"
{FAST_DELIVERY}
{extra_delivery}
[[pixels]]
id = "{pixel}"
access_token = "{TOKEN}"
[[api_keys]]
name = "backend"
key = "{API_KEY}"
pixels = ["{pixel}"]
[admin]
key = "{ADMIN_KEY}"
"#
    )
}

fn id_set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Posts events (raw, for the key's pixel) and asserts every one is accepted.
async fn post_accepted(gw: &TestGateway, events: Vec<Value>) {
    let n = events.len();
    let (status, body) = gw
        .post_events(&json!({ "data": events }), Some(API_KEY))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], n, "{body}");
}

/// Waits until the emulator has recorded every id of `expected` for `pixel`.
async fn wait_delivered(
    emulator: &Emulator,
    pixel: &str,
    expected: &BTreeSet<String>,
    deadline: Duration,
) {
    wait_for(
        &format!("{} events of pixel {pixel} at the emulator", expected.len()),
        deadline,
        || async {
            let got: BTreeSet<String> = delivered_ids(emulator, pixel).into_iter().collect();
            expected.is_subset(&got).then_some(())
        },
    )
    .await;
}

async fn admin_get(gw: &TestGateway, path: &str) -> (u16, Value) {
    let response = gw
        .client
        .get(gw.url(path))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("admin GET");
    read(response).await
}

/// A 503 from Meta is retried with backoff; the event arrives once, and the
/// retry is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_503_is_retried_and_delivered_once() {
    let pixel = "3000000001";
    let emulator = spawn_emulator(EmulatorConfig {
        faults: vec![
            FaultRule::always(Fault::HttpStatus {
                status: 503,
                code: None,
                subcode: None,
                message: None,
                transient: None,
            })
            .for_pixel(pixel)
            .times(1),
        ],
        ..EmulatorConfig::default()
    })
    .await;
    let gw = TestGateway::start(&config(pixel, &emulator.base_url(), "")).await;

    post_accepted(&gw, vec![raw_event("r503-1", None)]).await;
    let em = emulator.emulator();
    wait_delivered(em, pixel, &id_set(&["r503-1"]), DEADLINE).await;
    gw.wait_drained(pixel).await;

    assert_eq!(
        delivered_ids(em, pixel),
        ["r503-1"],
        "delivered exactly once"
    );
    let stats = em.stats();
    assert_eq!(
        stats.faults_injected.get("http_status"),
        Some(&1),
        "{stats:?}"
    );
    assert_eq!(stats.pixels[pixel].requests, 2, "one failure, one success");
    let metrics = gw.metrics().await;
    let retries = metric(
        &metrics,
        "sluice_delivery_retries_total",
        &[("pixel", pixel), ("reason", "transient")],
    );
    assert_eq!(retries, 1.0, "{metrics}");
    assert_eq!(
        metric(
            &metrics,
            "sluice_delivered_events_total",
            &[("pixel", pixel)]
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, "sluice_dead_lettered_total", &[("pixel", pixel)]),
        0.0
    );
    gw.gateway.shutdown().await;
}

/// An event that passes sluice's checks but that Meta refuses (here: 30 s in
/// the future for a Meta that allows no clock skew) is isolated by splitting
/// the batch: only it lands in the dead-letter queue, with Meta's error; the
/// rest of the batch is delivered. Replaying it once Meta would accept it
/// delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_event_is_split_out_dead_lettered_and_replayable() {
    let pixel = "3000000002";
    let clock = ManualClock::starting_now();
    let meta_now = now_secs();
    let emulator = spawn_emulator_with(
        Emulator::with_clock(
            EmulatorConfig {
                max_future_skew_s: 0,
                ..EmulatorConfig::default()
            },
            clock.clone(),
        )
        .expect("emulator"),
    )
    .await;
    let gw = TestGateway::start(&config(
        pixel,
        &emulator.base_url(),
        "batch_size = 10\nconcurrency_per_pixel = 1",
    ))
    .await;

    let event_at = |id: &str, time: i64| {
        let mut e = raw_event(id, None);
        e["event_time"] = json!(time);
        e
    };
    post_accepted(
        &gw,
        vec![
            event_at("split-1", meta_now - 60),
            event_at("split-future", now_secs() + 30),
            event_at("split-2", meta_now - 60),
            event_at("split-3", meta_now - 60),
        ],
    )
    .await;

    let em = emulator.emulator();
    wait_delivered(
        em,
        pixel,
        &id_set(&["split-1", "split-2", "split-3"]),
        DEADLINE,
    )
    .await;
    let dlq = wait_for("one dead letter", DEADLINE, || async {
        let (status, body) = admin_get(&gw, "/admin/dlq").await;
        assert_eq!(status, 200, "{body}");
        let items = body["dead_letters"].as_array().cloned().unwrap_or_default();
        (!items.is_empty()).then_some(items)
    })
    .await;
    gw.wait_drained(pixel).await;
    assert_eq!(dlq.len(), 1, "only the bad event: {dlq:?}");
    let dead = &dlq[0];
    assert_eq!(dead["event_id"], "split-future", "{dead}");
    assert_eq!(dead["pixel_id"], pixel, "{dead}");
    assert_eq!(dead["code"], "100/2804014", "{dead}");
    assert_eq!(dead["detail"]["error"]["code"], 100, "{dead}");
    assert_eq!(
        dead["detail"]["error"]["error_subcode"], 2_804_014,
        "{dead}"
    );
    assert!(
        dead["event"]["user_data"]["em"].is_string() || dead["event"]["user_data"]["em"].is_array()
    );
    let mut delivered = delivered_ids(em, pixel);
    delivered.sort();
    assert_eq!(delivered, ["split-1", "split-2", "split-3"], "each once");
    let metrics = gw.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "sluice_dead_lettered_total",
            &[("pixel", pixel), ("code", "100/2804014")]
        ),
        1.0,
        "{metrics}"
    );

    // The admin API needs its key.
    let (status, body) = read(gw.client.get(gw.url("/admin/dlq")).send().await.unwrap()).await;
    assert_eq!(status, 401, "{body}");

    // Meta's clock has caught up: replay delivers it.
    clock.advance(Duration::from_secs(120));
    let id = dead["id"].as_str().expect("dead-letter id").to_owned();
    let response = gw
        .client
        .post(gw.url("/admin/dlq/replay"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({ "ids": [id] }))
        .send()
        .await
        .expect("replay");
    let (status, body) = read(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replayed"], 1, "{body}");
    wait_delivered(em, pixel, &id_set(&["split-future"]), DEADLINE).await;
    gw.wait_drained(pixel).await;
    let (_, body) = admin_get(&gw, "/admin/dlq").await;
    assert_eq!(body["dead_letters"], json!([]), "{body}");
    assert_eq!(delivered_ids(em, pixel).len(), 4);
    gw.gateway.shutdown().await;
}

/// An expired token (190/463) pauses the lane: `/readyz` answers 503 naming
/// the pixel, no request goes to Meta while the breaker is open, and the
/// events stay queued (nothing dead-lettered, nothing lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_pauses_the_lane_and_fails_readiness() {
    let pixel = "3000000003";
    let emulator = spawn_emulator(EmulatorConfig {
        faults: vec![FaultRule::always(Fault::TokenExpired { token: None }).for_pixel(pixel)],
        ..EmulatorConfig::default()
    })
    .await;
    let gw = TestGateway::start(&config(pixel, &emulator.base_url(), "")).await;
    let (status, body) = gw.get("/readyz").await;
    assert_eq!(status, 200, "ready before anything failed: {body}");

    post_accepted(&gw, vec![raw_event("tok-1", None)]).await;
    let body = wait_for("/readyz to fail", DEADLINE, || async {
        let (status, body) = gw.get("/readyz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body["ready"], false, "{body}");
    let problems = body["problems"].to_string();
    assert!(problems.contains(pixel), "names the pixel: {body}");
    assert!(!problems.contains(TOKEN), "never the token: {body}");

    let em = emulator.emulator();
    let requests = em.stats().pixels[pixel].requests;
    assert!(requests >= 1);
    post_accepted(
        &gw,
        vec![raw_event("tok-2", None), raw_event("tok-3", None)],
    )
    .await;
    post_accepted(&gw, vec![raw_event("tok-4", None)]).await;
    // An absence can only be observed over a window: three dispatcher ticks
    // (500 ms each) and many linger periods pass without a request.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        em.stats().pixels[pixel].requests,
        requests,
        "requests were sent while the breaker was open"
    );
    assert!(delivered_ids(em, pixel).is_empty());
    let stats = gw.gateway.state.store.stats(now_ms()).await.expect("stats");
    assert_eq!(
        stats.queued, 4,
        "all four events wait in the queue: {stats:?}"
    );
    assert_eq!(stats.dead_letters, 0, "{stats:?}");
    let metrics = gw.metrics().await;
    assert_eq!(
        metric(&metrics, "sluice_breaker_open", &[("pixel", pixel)]),
        1.0,
        "{metrics}"
    );
    let (status, _) = gw.get("/readyz").await;
    assert_eq!(status, 503);
    gw.gateway.shutdown().await;
}

/// Meta unreachable when the gateway starts: events are accepted and queued;
/// once Meta is back (the emulator starts on the same port) every one is
/// delivered. Then answers get lost after Meta recorded the events: the
/// retries are duplicates that Meta deduplicates, and still nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_nothing() {
    let pixel = "3000000004";
    let addr = free_addr().await;
    let gw = TestGateway::start(&config(
        pixel,
        &format!("http://{addr}"),
        "concurrency_per_pixel = 1",
    ))
    .await;

    let mut expected = BTreeSet::new();
    for request in 0..4 {
        let events: Vec<Value> = (0..5)
            .map(|i| {
                let id = format!("out-{request}-{i}");
                expected.insert(id.clone());
                raw_event(&id, None)
            })
            .collect();
        post_accepted(&gw, events).await;
    }
    // The lane has tried and failed.
    wait_for("a failed delivery attempt", DEADLINE, || async {
        let metrics = gw.metrics().await;
        let retries = metric(
            &metrics,
            "sluice_delivery_retries_total",
            &[("pixel", pixel), ("reason", "transient")],
        );
        (retries >= 1.0).then_some(())
    })
    .await;
    let stats = gw.gateway.state.store.stats(now_ms()).await.expect("stats");
    assert_eq!(stats.queued, 20, "{stats:?}");

    // Meta comes back on the same address.
    let emulator = Emulator::new(EmulatorConfig::default()).expect("emulator");
    let running = emulator.spawn(bind_exact(addr).await).expect("spawn");
    // Generous: if the outage tripped the breaker, the lane waits out its
    // cooldown (30 s) before it probes.
    wait_delivered(&emulator, pixel, &expected, Duration::from_secs(60)).await;
    gw.wait_drained(pixel).await;
    assert_eq!(delivered_ids(&emulator, pixel).len(), 20, "each once");

    // Lost answers: Meta records the events, the gateway sees the connection
    // drop and sends again.
    emulator
        .set_faults(vec![
            FaultRule::always(Fault::DropConnection { process: true })
                .for_pixel(pixel)
                .times(2),
        ])
        .expect("faults");
    let mut second = BTreeSet::new();
    let events: Vec<Value> = (0..10)
        .map(|i| {
            let id = format!("lost-{i}");
            second.insert(id.clone());
            raw_event(&id, None)
        })
        .collect();
    post_accepted(&gw, events).await;
    wait_for("the lost answers to be retried", DEADLINE, || async {
        let stats = emulator.stats();
        (stats.faults_injected.get("drop_connection") == Some(&2)).then_some(())
    })
    .await;
    gw.wait_drained(pixel).await;
    let recorded = emulator.events_for(pixel);
    let distinct: BTreeSet<String> = recorded
        .iter()
        .map(|e| e.json()["event_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(second.is_subset(&distinct), "all delivered");
    assert_eq!(distinct.len(), 30);
    let originals = recorded.iter().filter(|e| !e.duplicate).count();
    assert_eq!(originals, 30, "Meta counts each event once");
    eprintln!(
        "outage test: {} events recorded, {} duplicates flagged by the emulator",
        recorded.len(),
        recorded.len() - originals
    );
    gw.gateway.shutdown().await;
    running.shutdown().await;
}

/// Graceful shutdown while requests and deliveries are in flight: every
/// acknowledged event is delivered, by this gateway or by the next one over
/// the same data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_then_restart_delivers_every_acknowledged_event() {
    let pixel = "3000000005";
    let emulator = spawn_emulator(EmulatorConfig {
        faults: vec![FaultRule::always(Fault::Latency { ms: 150 }).for_pixel(pixel)],
        ..EmulatorConfig::default()
    })
    .await;
    let toml = config(pixel, &emulator.base_url(), "batch_size = 20");
    let gw = TestGateway::start(&toml).await;
    let url = gw.url("/v1/events");

    // Four senders post batches of 5 until the gateway stops answering.
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let sent = Arc::new(Mutex::new(BTreeSet::new()));
    let mut senders = Vec::new();
    for task in 0..4 {
        let (acked, sent, url, client) =
            (acked.clone(), sent.clone(), url.clone(), gw.client.clone());
        senders.push(tokio::spawn(async move {
            for n in 0.. {
                let ids: Vec<String> = (0..5).map(|i| format!("sd-{task}-{n}-{i}")).collect();
                sent.lock().unwrap().extend(ids.iter().cloned());
                let events: Vec<Value> = ids.iter().map(|id| raw_event(id, None)).collect();
                let response = client
                    .post(&url)
                    .bearer_auth(API_KEY)
                    .json(&json!({ "data": events }))
                    .send()
                    .await;
                let Ok(response) = response else { break };
                let (status, body) = read(response).await;
                if status != 200 {
                    break;
                }
                let mut acked = acked.lock().unwrap();
                for result in body["results"].as_array().into_iter().flatten() {
                    if result["status"] == "accepted" {
                        acked.insert(result["event_id"].as_str().unwrap().to_owned());
                    }
                }
            }
        }));
    }
    wait_for("150 acknowledged events", DEADLINE, || async {
        (acked.lock().unwrap().len() >= 150).then_some(())
    })
    .await;
    let TestGateway {
        gateway,
        dir,
        client,
    } = gw;
    tokio::time::timeout(Duration::from_secs(30), gateway.shutdown())
        .await
        .expect("shutdown finishes");
    for sender in senders {
        sender.await.expect("sender");
    }
    let acked = acked.lock().unwrap().clone();
    let em = emulator.emulator();
    let before_restart = delivered_ids(em, pixel).len();

    // The next gateway over the same data directory delivers the rest.
    emulator.emulator().clear_faults();
    let gw = TestGateway {
        gateway: start_gateway(&toml, dir.path()).await,
        dir,
        client,
    };
    wait_delivered(em, pixel, &acked, DEADLINE).await;
    gw.wait_drained(pixel).await;
    let all = delivered_ids(em, pixel);
    let distinct: BTreeSet<String> = all.iter().cloned().collect();
    let sent = sent.lock().unwrap().clone();
    assert!(distinct.is_subset(&sent), "only events that were sent");
    eprintln!(
        "shutdown test: {} acknowledged, {} delivered before the restart, {} after, {} duplicates",
        acked.len(),
        before_restart,
        all.len() - before_restart,
        all.len() - distinct.len()
    );
    assert_eq!(
        all.len(),
        distinct.len(),
        "a graceful shutdown sends nothing twice"
    );
    gw.gateway.shutdown().await;
}

/// Zero-config forwarding (`--graph-url`, no pixels configured) promises to
/// forward the token a Graph sender presented. When the first event of a
/// pixel arrives without one (through `/v1/events`, or queued across a
/// restart: presented tokens live in memory), its lane opens with the
/// placeholder token; a destination that checks tokens answers 190 and the
/// lane pauses. A later request presenting the real token must reach the
/// lane (it asks the resolver again while paused) and deliver both events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_config_forwarding_uses_a_token_presented_after_the_lane_opened() {
    let pixel = "3000000006";
    let emulator = spawn_emulator(EmulatorConfig {
        tokens: Some(vec!["the-real-token".into()]),
        ..EmulatorConfig::default()
    })
    .await;
    let gw = TestGateway::start(&format!(
        "[delivery]\ngraph_url = \"{}\"\n{FAST_DELIVERY}",
        emulator.base_url()
    ))
    .await;
    let (status, body) = gw.post_events(&raw_event("fwd-1", Some(pixel)), None).await;
    assert_eq!(status, 200, "{body}");
    wait_for("the lane to try and fail", DEADLINE, || async {
        (emulator.emulator().stats().rejected_requests >= 1).then_some(())
    })
    .await;
    let response = gw
        .client
        .post(gw.url(&format!(
            "/v26.0/{pixel}/events?access_token=the-real-token"
        )))
        .json(&json!({"data": [wire_event("fwd-2", now_secs())]}))
        .send()
        .await
        .expect("POST graph");
    assert_eq!(read(response).await.0, 200);
    let em = emulator.emulator();
    wait_delivered(
        em,
        pixel,
        &id_set(&["fwd-1", "fwd-2"]),
        Duration::from_secs(10),
    )
    .await;
    gw.gateway.shutdown().await;
}
