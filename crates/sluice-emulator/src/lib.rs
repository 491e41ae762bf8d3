//! An emulator of Meta's Conversions API endpoint (`POST /{version}/{pixel_id}/events`).
//!
//! Meta's servers cannot be reached from a test, and people want to try sluice
//! before they hand it a real access token. The emulator answers like Graph as far
//! as `capi-reference.md` documents it, so a test that passes against it should pass
//! against Meta: it is the destination of sluice's sandbox mode and of every
//! end-to-end test. It reuses sluice-core's validation and error mapping, so the
//! gateway and the emulator cannot disagree about what Meta accepts.
//!
//! Use it in-process ([`Emulator::router`], to mount in another axum app), on a
//! socket ([`Emulator::spawn`] / [`Emulator::bind`], port 0 in tests), or from the
//! command line (`sluice emulate`, see [`cli`]). Recorded events and counters are
//! readable directly ([`Emulator::events`], [`Emulator::stats`]) or over HTTP
//! (the inspection API, see [`inspect`]).
//!
//! # Checks and answers
//!
//! | situation | HTTP | code | subcode | type |
//! |---|---|---|---|---|
//! | no `access_token` | 400 | 104 | – | OAuthException |
//! | token not in the configured list | 400 | 190 | – | OAuthException |
//! | token expired (fault `token_expired`) | 400 | 190 | 463 | OAuthException |
//! | `appsecret_proof` wrong (or missing when required) | 400 | 100 | – | GraphMethodException |
//! | pixel not in the configured list | 400 | 100 | 33 | GraphMethodException |
//! | path not `/{vN.M}/{pixel}/events` | 400 | 2500 | – | OAuthException |
//! | method other than POST | 400 | 100 | 33 | GraphMethodException |
//! | body not JSON, `data` missing / not an array / empty / > 1000 events | 400 | 100 | – | OAuthException |
//! | body larger than `max_body_bytes` | 413 | 100 | – | OAuthException |
//! | event: missing `event_name`/`event_time`/`action_source`/`user_data`, unknown event-level key, wrong type | 400 | 100 | – | OAuthException |
//! | event: `event_time` > 7 days old (62 for `physical_store`) | 400 | 100 | 2804003 | OAuthException |
//! | event: `Purchase` without `value`/`currency` | 400 | 100 | 2804009 | OAuthException |
//! | event: unhashed `em`,`ph`,`fn`,`ln`,`ge`,`db`,`ct`,`st`,`zp`,`country` | 400 | 100 | 2804016 | OAuthException |
//! | event: no or too little customer information | 400 | 100 | 2804050 | OAuthException |
//! | event: inconsistent LDU options | 400 | 100 | 2804030 | OAuthException |
//! | event: `event_time` in the future, website without `event_source_url`/`client_user_agent`, malformed `fbc`/`fbp`, bad currency or IP, bad `app_data` | 400 | 100 | 2804014 | OAuthException |
//!
//! Event errors carry `is_transient: false`, `error_user_title` and
//! `error_user_msg` (with the JSON path, never a value). Every answer has a fresh
//! `fbtrace_id` in the body and the `x-fb-trace-id` header. One invalid event
//! rejects the whole request. Success is `200 {"events_received": N,
//! "messages": [], "fbtrace_id": …}`; duplicates (same `event_name` + `event_id`
//! for the pixel within 48 h) are still counted in `events_received`, as Meta
//! counts them, and reported in the stats.
//!
//! # Inspection API
//!
//! See [`inspect`] for the routes: `GET /_emulator/events?pixel=ID`,
//! `GET /_emulator/test_events`, `DELETE /_emulator/events`, `GET /_emulator/stats`,
//! `GET|POST|DELETE /_emulator/faults`.
//!
//! # Fault injection
//!
//! See [`faults`]: rate limits (4, 17, 32, 341, 613, 80000–80014 with
//! `X-Business-Use-Case-Usage`), 5xx, expiring tokens, latency, timeouts, dropped
//! connections and seeded random failures, scripted in the config file or live
//! through `POST /_emulator/faults`.

pub mod answers;
pub mod checks;
pub mod cli;
pub mod clock;
pub mod config;
pub mod decode;
pub mod faults;
pub mod graph;
pub mod inspect;
mod rng;
mod server;
pub mod store;
mod sync;

pub use cli::{EmulateArgs, run_emulate};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::EmulatorConfig;
pub use faults::{Fault, FaultRule, FaultRuleStatus};
pub use server::RunningEmulator;
pub use store::{EventFilter, EventKind, PixelStats, RecordedEvent, Stats};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::any;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tower_http::catch_panic::CatchPanicLayer;

use crate::faults::FaultEngine;
use crate::store::Store;
use crate::sync::lock;

/// Why the emulator could not start or be configured.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("invalid emulator configuration: {0}")]
    Config(String),
    #[error("cannot read emulator config {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("emulator I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// The emulator: configuration, recorded events and the fault script. Cheap to
/// clone; clones share everything.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

struct Inner {
    config: EmulatorConfig,
    clock: Arc<dyn Clock>,
    store: Mutex<Store>,
    faults: FaultEngine,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// An emulator on the machine's clock.
    pub fn new(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        Self::with_clock(config, SystemClock)
    }

    /// An emulator reading time from `clock` (a [`ManualClock`] in tests, to move
    /// past the 48-hour dedup window or the 7-day limit without sleeping).
    pub fn with_clock(config: EmulatorConfig, clock: impl Clock) -> Result<Self, EmulatorError> {
        config.check()?;
        let store = Store::new(config.max_stored_events, config.dedup_window_s);
        let faults = FaultEngine::new(config.faults.clone());
        Ok(Emulator {
            inner: Arc::new(Inner {
                config,
                clock: Arc::new(clock),
                store: Mutex::new(store),
                faults,
            }),
        })
    }

    pub fn config(&self) -> &EmulatorConfig {
        &self.inner.config
    }

    /// The Graph endpoint and the inspection API, with Graph-style answers for
    /// every other path.
    pub fn router(&self) -> Router {
        self.graph_router()
            .merge(self.inspection_router())
            .fallback(graph::unknown_path)
    }

    /// Turns a panic inside a handler into a Graph error answer.
    fn catch_panics(router: Router) -> Router {
        router.layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                tracing::error!("emulator: a request caused a panic (bug); answered code 1");
                answers::internal_error().into_response()
            },
        ))
    }

    /// Only `/{version}/{pixel_id}/events`, for mounting where the inspection API
    /// must not be reachable.
    pub fn graph_router(&self) -> Router {
        let router = Router::new()
            .route("/{version}/{pixel_id}/events", any(graph::events_endpoint))
            .layer(DefaultBodyLimit::max(self.inner.config.max_body_bytes))
            .with_state(self.clone());
        Self::catch_panics(router)
    }

    /// Only the `/_emulator/...` routes.
    pub fn inspection_router(&self) -> Router {
        Self::catch_panics(inspect::router(self.clone()))
    }

    /// Serves on `listener` until the returned handle is shut down or dropped.
    /// Must be called inside a Tokio runtime.
    pub fn spawn(
        &self,
        listener: tokio::net::TcpListener,
    ) -> Result<RunningEmulator, EmulatorError> {
        server::spawn(self.clone(), listener)
    }

    /// Binds `addr` (e.g. `127.0.0.1:0`) and serves there.
    pub async fn bind(&self, addr: SocketAddr) -> Result<RunningEmulator, EmulatorError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| EmulatorError::Bind { addr, source })?;
        self.spawn(listener)
    }

    /// Recorded events matching `filter`, in arrival order.
    pub fn events(&self, filter: &EventFilter) -> Vec<RecordedEvent> {
        lock(&self.inner.store).events(filter)
    }

    /// Every recorded event (live and test) of one pixel.
    pub fn events_for(&self, pixel: &str) -> Vec<RecordedEvent> {
        self.events(&EventFilter::pixel(pixel))
    }

    pub fn stats(&self) -> Stats {
        lock(&self.inner.store).stats()
    }

    /// Forgets events, dedup history and counters (not the fault script).
    pub fn reset(&self) {
        lock(&self.inner.store).reset();
    }

    /// Replaces the fault script; its counters start from zero.
    pub fn set_faults(&self, rules: Vec<FaultRule>) -> Result<(), EmulatorError> {
        for (i, rule) in rules.iter().enumerate() {
            rule.check()
                .map_err(|msg| EmulatorError::Config(format!("faults[{i}]: {msg}")))?;
        }
        self.inner.faults.replace(rules);
        Ok(())
    }

    pub fn clear_faults(&self) {
        self.inner.faults.replace(Vec::new());
    }

    /// The fault script with each rule's counters.
    pub fn faults(&self) -> Vec<FaultRuleStatus> {
        self.inner.faults.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_still_answers_a_graph_error() {
        let router = Emulator::catch_panics(Router::new().route(
            "/boom",
            axum::routing::get(|| async {
                let items: Vec<&str> = Vec::new();
                // An out-of-bounds index: the kind of bug the layer is for.
                #[allow(clippy::indexing_slicing)]
                let first = items[0].to_owned();
                first
            }),
        ));
        let response = router
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error"]["code"], 1);
        assert!(value["error"]["fbtrace_id"].is_string());
    }
}
