//! Helpers shared by the gateway's in-process tests (`crates/sluice-server/tests`)
//! and the binary's end-to-end tests (`crates/sluice/tests`, which include this file
//! by path): clocks, an HTTP client, waiting on a condition with a deadline, and an
//! emulator on a free port.

use sluice_emulator::{Emulator, EmulatorConfig, RunningEmulator};
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The deadline for "eventually" in these tests: generous, because CI runs
/// them on two shared cores; the conditions usually hold within milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Unix seconds now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A plain-HTTP client (reqwest is built without a default TLS provider).
pub fn client() -> reqwest::Client {
    sluice_delivery::client::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .expect("reqwest client")
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after
/// `deadline` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts an emulator with `config` on 127.0.0.1:0.
pub async fn spawn_emulator(config: EmulatorConfig) -> RunningEmulator {
    spawn_emulator_with(Emulator::new(config).expect("emulator config")).await
}

/// Starts `emulator` on 127.0.0.1:0.
pub async fn spawn_emulator_with(emulator: Emulator) -> RunningEmulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    emulator.spawn(listener).expect("spawn emulator")
}

/// `event_id`s the emulator recorded for `pixel`, in arrival order.
pub fn delivered_ids(emulator: &Emulator, pixel: &str) -> Vec<String> {
    emulator
        .events_for(pixel)
        .iter()
        .map(|e| e.json()["event_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}
