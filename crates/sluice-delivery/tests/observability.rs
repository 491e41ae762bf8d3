//! What the engine tells the outside world: Prometheus metrics and logs.
//!
//! A test binary of its own, because it installs the process-wide metrics
//! recorder and tracing subscriber. It checks that the documented metrics
//! appear with their labels, that a credentials failure is logged once with
//! the pixel id, and that no token, no app secret and no payload field ever
//! reaches a log line.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::{Value, json};
use sluice_core::Secret;
use sluice_delivery::breaker::BreakerConfig;
use sluice_delivery::{Backoff, ClientConfig, DeliveryEngine, EngineConfig, PixelConfig};
use sluice_emulator::{Emulator, EmulatorConfig};
use sluice_store::{EventSource, NewEvent, SqliteOptions, SqliteStore, Store};

const GOOD_PIXEL: &str = "1234567890";
const BAD_PIXEL: &str = "2222";
const GOOD_TOKEN: &str = "GOOD-TOKEN-c0ffee";
const REVOKED_TOKEN: &str = "REVOKED-TOKEN-deadbeef";
const APP_SECRET: &str = "APP-SECRET-5ecret";
const HASH: &str = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f";
const RAW_EMAIL: &str = "jane.doe@example.com";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn event(pixel: &str, id: &str, event_time: i64, email: &str) -> NewEvent {
    let payload: Value = json!({
        "event_name": "Lead",
        "event_time": event_time,
        "event_id": id,
        "action_source": "website",
        "event_source_url": "https://shop.example.com/form",
        "user_data": {
            "em": [email],
            "client_ip_address": "203.0.113.7",
            "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)"
        }
    });
    NewEvent {
        pixel_id: pixel.to_owned(),
        event_name: "Lead".to_owned(),
        event_id: id.to_owned(),
        event_time,
        source: EventSource::Backend,
        payload: serde_json::to_vec(&payload).unwrap(),
        user_keys: vec![HASH.to_owned()],
        test_event_code: None,
        hold_until_ms: None,
        order_id: None,
        event_id_origin: sluice_store::EventIdOrigin::Sent,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_logs_report_outcomes_without_secrets() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    metrics::set_global_recorder(recorder).unwrap();
    sluice_delivery::metrics::describe();
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("sluice_delivery=trace"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let emulator = Emulator::new(EmulatorConfig {
        tokens: Some(vec![GOOD_TOKEN.to_owned()]),
        app_secret: Some(APP_SECRET.to_owned()),
        ..EmulatorConfig::default()
    })
    .unwrap();
    let running = emulator.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(
            dir.path().join("q.db"),
            SqliteOptions {
                synchronous_full: false,
                ..SqliteOptions::default()
            },
        )
        .await
        .unwrap(),
    );
    let now = now_secs();
    store
        .enqueue(
            vec![
                event(GOOD_PIXEL, "ok-1", now - 60, HASH),
                event(GOOD_PIXEL, "ok-2", now - 60, HASH),
                event(GOOD_PIXEL, "ok-3", now - 60, HASH),
                event(GOOD_PIXEL, "unhashed", now - 60, RAW_EMAIL),
                event(GOOD_PIXEL, "stale", now - 8 * 86_400, HASH),
                event(BAD_PIXEL, "b-1", now - 60, HASH),
            ],
            now * 1000,
        )
        .await
        .unwrap();

    let config = EngineConfig {
        pixels: vec![
            PixelConfig {
                app_secret: Some(Secret::new(APP_SECRET)),
                ..PixelConfig::new(GOOD_PIXEL, Secret::new(GOOD_TOKEN))
            },
            PixelConfig::new(BAD_PIXEL, Secret::new(REVOKED_TOKEN)),
        ],
        client: ClientConfig {
            base_url: running.base_url(),
            request_timeout: Duration::from_secs(2),
            ..ClientConfig::default()
        },
        linger: Duration::from_millis(50),
        concurrency_per_pixel: 1,
        lease: Duration::from_secs(5),
        poll_interval: Duration::from_millis(10),
        backoff: Backoff::new(Duration::from_millis(2), Duration::from_millis(20), 2.0).unwrap(),
        breaker: BreakerConfig {
            auth_cooldown: Duration::from_secs(3600),
            ..BreakerConfig::default()
        },
        rng_seed: Some(1),
        ..EngineConfig::default()
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let engine = DeliveryEngine::spawn(store.clone(), config, async {
        let _ = rx.await;
    })
    .unwrap();
    let status = engine.status();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let stats = store.stats(now * 1000).await.unwrap();
        let good_done = stats
            .per_pixel
            .iter()
            .find(|p| p.pixel_id == GOOD_PIXEL)
            .is_some_and(|p| p.queued == 0);
        let bad_open = status.lane(BAD_PIXEL).unwrap().breaker == "open";
        if good_done && bad_open {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "engine did not settle"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = tx.send(());
    engine.join().await;

    let text = metrics.render();
    for expected in [
        r#"sluice_delivered_events_total{pixel="1234567890"} 3"#,
        r#"sluice_dead_lettered_total{pixel="1234567890",code="100/2804016"} 1"#,
        r#"sluice_dead_lettered_total{pixel="1234567890",code="event_too_old"} 1"#,
        r#"sluice_delivery_retries_total{pixel="2222",reason="fix_credentials"} 1"#,
        r#"sluice_breaker_open{pixel="2222"} 1"#,
        r#"sluice_breaker_open{pixel="1234567890"} 0"#,
        "sluice_delivery_latency_seconds",
        "sluice_batch_size",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let alerts: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("refused the pixel's credentials"))
        .collect();
    assert_eq!(alerts.len(), 1, "logged once:\n{logs}");
    assert!(
        alerts[0].contains("ERROR") && alerts[0].contains(BAD_PIXEL),
        "{}",
        alerts[0]
    );
    assert!(alerts[0].contains("190"), "{}", alerts[0]);
    for secret in [
        GOOD_TOKEN,
        REVOKED_TOKEN,
        APP_SECRET,
        RAW_EMAIL,
        HASH,
        "203.0.113.7",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret:?} leaked into the logs:\n{logs}"
        );
    }
}
