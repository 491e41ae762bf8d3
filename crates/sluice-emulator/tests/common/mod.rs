//! Shared helpers for the emulator's integration tests: start an emulator on
//! 127.0.0.1:0, build valid events, send requests and read Graph answers.
#![allow(dead_code)]

use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sluice_emulator::{Emulator, EmulatorConfig, ManualClock, RunningEmulator};

/// A fixed "now" for tests that use a manual clock.
pub const NOW: i64 = 1_795_860_000;
pub const PIXEL: &str = "1234567890";
pub const TOKEN: &str = "test-token";
/// SHA-256 of "john_smith@gmail.com"'s normalized form (any 64-hex will do).
pub const HASH: &str = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f";

pub struct Harness {
    pub server: RunningEmulator,
    pub clock: ManualClock,
    pub client: reqwest::Client,
}

impl Harness {
    pub async fn start(config: EmulatorConfig) -> Harness {
        let clock = ManualClock::at_secs(NOW);
        let emulator = Emulator::with_clock(config, clock.clone()).expect("valid config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let server = emulator.spawn(listener).expect("spawn");
        Harness {
            server,
            clock,
            client: client(),
        }
    }

    pub async fn open() -> Harness {
        Harness::start(EmulatorConfig::default()).await
    }

    pub fn emulator(&self) -> &Emulator {
        self.server.emulator()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    pub fn events_url(&self, pixel: &str) -> String {
        self.url(&format!("/v26.0/{pixel}/events"))
    }

    /// POSTs `body` as JSON to the pixel's events edge with `TOKEN` in the query.
    pub async fn post(&self, pixel: &str, body: &Value) -> Reply {
        let response = self
            .client
            .post(format!("{}?access_token={TOKEN}", self.events_url(pixel)))
            .json(body)
            .send()
            .await
            .expect("request");
        Reply::read(response).await
    }

    /// POSTs events as a JSON body.
    pub async fn send(&self, events: Vec<Value>) -> Reply {
        self.post(PIXEL, &json!({ "data": events })).await
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.expect("JSON")
    }
}

/// A plain-HTTP client that ignores proxies from the environment.
pub fn client() -> reqwest::Client {
    // The workspace's reqwest has no TLS provider compiled in; plain HTTP still
    // needs one installed to build a client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client")
}

/// What the emulator answered.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {text}"));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `(HTTP status, code, subcode)` of an error answer.
    pub fn error(&self) -> (u16, i64, Option<i64>) {
        let e = &self.body["error"];
        assert!(e.is_object(), "expected an error, got {}", self.body);
        assert!(
            e["fbtrace_id"].as_str().is_some_and(|t| !t.is_empty()),
            "error without fbtrace_id: {}",
            self.body
        );
        (
            self.status,
            e["code"].as_i64().expect("code"),
            e["error_subcode"].as_i64(),
        )
    }

    pub fn events_received(&self) -> i64 {
        assert_eq!(self.status, 200, "expected success, got {}", self.body);
        assert!(self.body["fbtrace_id"].is_string());
        assert!(self.body["messages"].is_array());
        self.body["events_received"]
            .as_i64()
            .expect("events_received")
    }
}

/// A website Purchase that passes every check at `now`.
pub fn event(id: &str, now: i64) -> Value {
    json!({
        "event_name": "Purchase",
        "event_time": now - 30,
        "event_id": id,
        "action_source": "website",
        "event_source_url": "https://shop.example.com/checkout/done",
        "user_data": {
            "em": [HASH],
            "client_ip_address": "2001:db8::7",
            "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
            "fbp": "fb.1.1795859000123.1234567890",
            "fbc": "fb.1.1795858000456.IwAR0abcDEF"
        },
        "custom_data": {"currency": "EUR", "value": 49.9}
    })
}

/// Waits until `condition` holds, polling, for at most `secs` seconds.
pub async fn eventually(secs: u64, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
