//! What every request handler shares.

use crate::config::Config;
use crate::pipeline::Source;
use sluice_core::Secret;
use sluice_normalize::NormalizeOptions;
use sluice_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of "now" that tests can move.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A pixel (dataset) id as Meta issues them: 1 to 20 ASCII digits (the rule
/// `/collect` applies). In zero-config mode any such pixel is accepted; an
/// event for anything else could be queued but never delivered (the delivery
/// engine opens lanes only for numeric ids), so ingest refuses it.
pub fn is_pixel_id(pixel: &str) -> bool {
    (1..=20).contains(&pixel.len()) && pixel.bytes().all(|b| b.is_ascii_digit())
}

/// An API key as the server checks it.
pub struct ApiKey {
    pub name: String,
    pub key: Secret,
    pub pixels: Vec<String>,
}

/// Tokens seen on the Graph-compatible endpoint in zero-config mode, forwarded
/// as given to the destination (the sandbox or `--graph-url`). Held in memory
/// only: a token is never written to the store.
#[derive(Default)]
pub struct PresentedTokens {
    by_pixel: RwLock<HashMap<String, Secret>>,
}

impl PresentedTokens {
    pub fn remember(&self, pixel: &str, token: &str) {
        if let Ok(mut map) = self.by_pixel.write() {
            let known = map.get(pixel).is_some_and(|t| t.matches(token));
            if !known {
                map.insert(pixel.to_owned(), Secret::new(token));
            }
        }
    }

    pub fn get(&self, pixel: &str) -> Option<Secret> {
        self.by_pixel
            .read()
            .ok()
            .and_then(|m| m.get(pixel).cloned())
    }
}

pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub normalize: NormalizeOptions,
    pub api_keys: Vec<ApiKey>,
    pub presented_tokens: Arc<PresentedTokens>,
    pub readiness: Arc<dyn Readiness>,
    /// Wakes a pixel's delivery lane right after its events are committed.
    pub waker: Option<sluice_delivery::LaneWaker>,
    /// The consent stage: policy, region headers, consent store.
    pub consent: crate::consent_stage::ConsentStage,
    /// Per-client-IP limit on `/collect`.
    pub collect_limiter: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// The ingest path's metric handles, looked up once per series.
    pub ingest_metrics: crate::metrics::IngestMetrics,
}

/// What `/readyz` asks beyond the store: the delivery lanes' health.
pub trait Readiness: Send + Sync + 'static {
    /// Problems that make the node not ready, as short lines (no secrets).
    fn blocking_problems(&self) -> Vec<String>;
    /// Per-lane status for humans.
    fn lanes(&self) -> serde_json::Value;
}

impl AppState {
    pub fn zero_config(&self) -> bool {
        self.config.is_zero_config()
    }

    pub fn wake_delivery(&self, pixel: &str) {
        if let Some(waker) = &self.waker {
            waker.wake(pixel);
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// May a caller holding `key` (None = no key) write to `pixel` via `source`?
    pub fn pixel_allowed(&self, pixel: &str, key: Option<&ApiKey>) -> bool {
        if self.zero_config() {
            return true;
        }
        match key {
            Some(k) => k.pixels.iter().any(|p| p == pixel),
            None => false,
        }
    }

    pub fn find_api_key(&self, presented: &str) -> Option<&ApiKey> {
        self.api_keys.iter().find(|k| k.key.matches(presented))
    }

    /// The metric label for a pixel id (bounded cardinality).
    pub fn pixel_label(&self, pixel: &str) -> String {
        self.pixel_label_str(pixel).to_owned()
    }

    /// [`AppState::pixel_label`] without the allocation.
    pub fn pixel_label_str<'a>(&self, pixel: &'a str) -> &'a str {
        let configured = self.config.pixel(pixel).is_some();
        let plausible =
            self.zero_config() && pixel.len() <= 20 && pixel.bytes().all(|b| b.is_ascii_digit());
        if configured || plausible {
            pixel
        } else {
            "other"
        }
    }

    /// The metric handles of `pixel`'s label.
    pub fn pixel_metrics(&self, pixel: &str) -> std::sync::Arc<crate::metrics::PixelMetrics> {
        self.ingest_metrics.pixel(self.pixel_label_str(pixel))
    }

    pub fn test_event_code_for(&self, pixel: &str, _source: Source) -> Option<String> {
        self.config
            .pixel(pixel)
            .and_then(|p| p.test_event_code.clone())
    }
}
