//! Shared helpers for the gateway's end-to-end tests: start a real
//! [`Gateway`] on 127.0.0.1:0 over its own temporary data directory, spawn
//! Graph API emulators, build events, wait on conditions with deadlines, and
//! read Prometheus metrics.
#![allow(dead_code)]

mod shared;
pub use shared::*;

use serde_json::{Value, json};
use sluice_server::{Config, Gateway, StartOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;

/// Delivery settings that keep tests fast: tiny linger and backoff.
pub const FAST_DELIVERY: &str = r#"
linger_ms = 10
backoff_base_ms = 50
backoff_max_ms = 400
timeout_ms = 5000
"#;

/// A gateway under test with its data directory and an HTTP client.
pub struct TestGateway {
    pub gateway: Gateway,
    pub dir: TempDir,
    pub client: reqwest::Client,
}

impl TestGateway {
    /// Starts a gateway from TOML text (`data_dir` is set to a fresh temporary
    /// directory; no environment overrides are read).
    pub async fn start(toml: &str) -> TestGateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let gateway = start_gateway(toml, dir.path()).await;
        TestGateway {
            gateway,
            dir,
            client: client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.addr)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.gateway.addr)
    }

    /// POSTs JSON to `/v1/events`, optionally with a bearer key; returns the
    /// status and the JSON answer.
    pub async fn post_events(&self, body: &Value, key: Option<&str>) -> (u16, Value) {
        let mut request = self.client.post(self.url("/v1/events")).json(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        read(request.send().await.expect("POST /v1/events")).await
    }

    /// POSTs raw bytes to `/v1/events`.
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .post(self.url("/v1/events"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST /v1/events");
        read(response).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        read(
            self.client
                .get(self.url(path))
                .send()
                .await
                .expect("GET gateway"),
        )
        .await
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Waits until the store holds nothing queued or leased for `pixel`.
    pub async fn wait_drained(&self, pixel: &str) {
        let store = self.gateway.state.store.clone();
        wait_for(&format!("pixel {pixel}'s queue to drain"), DEADLINE, || {
            let store = store.clone();
            async move {
                let stats = store.stats(now_ms()).await.ok()?;
                let busy = stats
                    .per_pixel
                    .iter()
                    .any(|p| p.pixel_id == pixel && (p.queued > 0 || p.leased > 0));
                (!busy).then_some(())
            }
        })
        .await;
    }
}

/// Reads a status and a JSON body (Null when the body is not JSON).
pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("response body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Parses `toml`, points `data_dir` at `dir` and starts a gateway on 127.0.0.1:0.
pub async fn start_gateway(toml: &str, dir: &Path) -> Gateway {
    let mut config = Config::from_toml_with_env(toml, Some("test.toml"), Vec::new())
        .unwrap_or_else(|e| panic!("test config invalid: {e}"));
    config.data_dir = dir.to_path_buf();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    Gateway::start(config, listener, StartOptions::default())
        .await
        .unwrap_or_else(|e| panic!("gateway did not start: {e}"))
}

/// Binds exactly `addr`, retrying for a few seconds (a port freed a moment
/// ago may still be in use by a closing socket).
pub async fn bind_exact(addr: SocketAddr) -> tokio::net::TcpListener {
    wait_for(
        &format!("{addr} to be bindable"),
        Duration::from_secs(10),
        || async move { tokio::net::TcpListener::bind(addr).await.ok() },
    )
    .await
}

/// An address on 127.0.0.1 nobody listens on (bound, then released).
pub async fn free_addr() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr")
}

/// A raw website Purchase as a shop backend sends it: raw personal data,
/// consent granted, `pixel_id` on the event when given.
pub fn raw_event(event_id: &str, pixel: Option<&str>) -> Value {
    let mut event = json!({
        "event_name": "Purchase",
        "event_time": now_secs() - 5,
        "event_id": event_id,
        "action_source": "website",
        "event_source_url": "https://shop.example.com/checkout/done",
        "consent": {"ad_user_data": "granted", "ad_personalization": "granted"},
        "user_data": {
            "em": "  Jane.Doe@Example.COM ",
            "ph": "+1 (650) 555-1212",
            "fn": "Jane",
            "ln": "Doe",
            "client_ip_address": "203.0.113.9",
            "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64) e2e"
        },
        "custom_data": {"value": 42.5, "currency": "EUR"}
    });
    if let Some(pixel) = pixel {
        event["pixel_id"] = json!(pixel);
    }
    event
}

/// Raw personal data of [`raw_event`] that must never be stored or sent.
pub const RAW_PII: [&str; 6] = [
    "Jane.Doe@Example.COM",
    "jane.doe@example.com",
    "Jane.Doe",
    "555-1212",
    "6505551212",
    "16505551212",
];

/// An event as Meta receives it (hashed user data), for the Graph endpoint.
pub fn wire_event(event_id: &str, event_time: i64) -> Value {
    json!({
        "event_name": "Purchase",
        "event_time": event_time,
        "event_id": event_id,
        "action_source": "website",
        "event_source_url": "https://shop.example.com/checkout/done",
        "user_data": {
            "em": [sluice_normalize::sha256_hex("jane.doe@example.com").as_str()],
            "client_ip_address": "203.0.113.9",
            "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64) e2e"
        },
        "custom_data": {"value": 42.5, "currency": "EUR"}
    })
}

/// Sums the samples of `name` whose labels include every pair of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric_name != name {
                return None;
            }
            let all = labels.iter().all(|(k, v)| {
                label_text
                    .split(',')
                    .any(|pair| pair == format!("{k}=\"{v}\""))
            });
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Every file under `dir` (recursively), read as bytes, concatenated: the
/// SQLite database with its WAL and any other state.
pub fn data_dir_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read_dir").flatten() {
                stack.push(entry.path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.extend(bytes);
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}
