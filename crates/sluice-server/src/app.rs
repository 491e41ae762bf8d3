//! Assembles the gateway: store, sandbox, delivery, router; and runs it until
//! shutdown.

use crate::config::Config;
use crate::delivery::{LaneReadiness, engine_config};
use crate::routes;
use crate::state::{ApiKey, AppState, Clock, PresentedTokens, SystemClock};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sluice_normalize::NormalizeOptions;
use sluice_store::{SqliteOptions, SqliteStore, Store};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the queue at {path}: {message}")]
    Store { path: String, message: String },
    #[error("cannot listen: {0}")]
    Listen(std::io::Error),
    #[error("cannot start delivery: {0}")]
    Delivery(#[from] sluice_delivery::EngineError),
    #[error("consent policy: {0}")]
    Consent(String),
    #[error("cannot start the sandbox: {0}")]
    Sandbox(#[from] sluice_emulator::EmulatorError),
}

/// Where delivered events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Meta's Graph API.
    Meta,
    /// Another Graph endpoint (`--graph-url`), e.g. a separate `sluice emulate`.
    Url(String),
    /// The emulator inside this process, under `/_sandbox`.
    Sandbox,
}

/// Knobs that are not configuration: injected by tests and the CLI.
#[derive(Clone)]
pub struct StartOptions {
    pub clock: Arc<dyn Clock>,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            clock: Arc::new(SystemClock),
        }
    }
}

/// A running gateway.
pub struct Gateway {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    pub destination: Destination,
    /// The in-process sandbox, when it is the destination.
    pub sandbox: Option<sluice_emulator::Emulator>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<()>,
    delivery: sluice_delivery::DeliveryEngine,
    retention: JoinHandle<()>,
}

impl Gateway {
    /// Opens the store and serves on `listener` until [`Gateway::shutdown`].
    pub async fn start(
        config: Config,
        listener: TcpListener,
        options: StartOptions,
    ) -> Result<Gateway, StartError> {
        let addr = listener.local_addr().map_err(StartError::Listen)?;
        let config = Arc::new(config);
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let store = open_store_as_owner(&config, options.clock.now_ms()).await?;
        sluice_delivery::client::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .ok();
        let consent = crate::consent_stage::ConsentStage::from_config(&config, http)
            .map_err(|e| StartError::Consent(e.to_string()))?;
        let presented_tokens = Arc::new(PresentedTokens::default());
        let (destination, graph_url) = destination(&config, addr);
        let sandbox = match destination {
            Destination::Sandbox => Some(sluice_emulator::Emulator::new(
                sluice_emulator::EmulatorConfig::default(),
            )?),
            _ => None,
        };
        crate::metrics::prometheus();
        sluice_delivery::metrics::describe();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut delivery_stop = shutdown_rx.clone();
        let delivery = sluice_delivery::DeliveryEngine::spawn(
            store.clone(),
            engine_config(&config, &graph_url, presented_tokens.clone())?,
            async move {
                let _ = delivery_stop.wait_for(|stop| *stop).await;
            },
        )?;
        let state = Arc::new(AppState {
            normalize: normalize_options(&config, options.clock.now_ms()),
            api_keys: config
                .api_keys
                .iter()
                .filter_map(|k| {
                    k.key.clone().map(|key| ApiKey {
                        name: k.name.clone(),
                        key,
                        pixels: k.pixels.clone(),
                    })
                })
                .collect(),
            config: config.clone(),
            store,
            clock: options.clock.clone(),
            presented_tokens,
            readiness: Arc::new(LaneReadiness(delivery.status())),
            waker: Some(delivery.waker()),
            consent,
            collect_limiter: governor::RateLimiter::keyed(governor::Quota::per_minute(
                std::num::NonZeroU32::new(config.browser.rate_limit_per_minute)
                    .unwrap_or(std::num::NonZeroU32::MIN),
            )),
            ingest_metrics: crate::metrics::IngestMetrics::default(),
        });
        for warning in config.browser.safari_warnings() {
            tracing::warn!(%warning, "browser endpoint");
        }
        let mut router = router(state.clone()).layer(axum::middleware::from_fn_with_state(
            Duration::from_millis(config.server.request_timeout_ms),
            request_timeout,
        ));
        if let Some(emulator) = &sandbox {
            router = router.nest("/_sandbox", emulator.router());
        }
        let retention = crate::retention::spawn(
            state.store.clone(),
            crate::retention::RetentionSettings::from_config(&config),
            options.clock.clone(),
            shutdown_rx.clone(),
        );
        let mut shutdown_rx = shutdown_rx;
        let server = tokio::spawn(async move {
            let serve = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = shutdown_rx.wait_for(|stop| *stop).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "http server stopped");
            }
        });
        tracing::info!(
            %addr,
            destination = ?destination,
            pixels = config.pixels.len(),
            store = if config.uses_postgres() { "postgres" } else { "sqlite" },
            "sluice started"
        );
        Ok(Gateway {
            addr,
            state,
            destination,
            sandbox,
            shutdown,
            server,
            delivery,
            retention,
        })
    }

    /// Stops accepting, lets in-flight requests finish, lets the delivery lanes
    /// settle the batches they hold, then closes the store (committing what was
    /// submitted). Nothing acknowledged is lost at any point: what is still
    /// queued is delivered after the next start.
    ///
    /// Requests are bounded by `server.request_timeout_ms`; a connection still
    /// open a few seconds after that (a client stalled in its headers, which
    /// no request timeout sees) is dropped rather than waited for: it has been
    /// acknowledged nothing.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let grace = Duration::from_millis(self.state.config.server.request_timeout_ms)
            + Duration::from_secs(5);
        let mut server = self.server;
        if tokio::time::timeout(grace, &mut server).await.is_err() {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "connections still open after the grace period; closing them"
            );
            server.abort();
            let _ = server.await;
        }
        self.delivery.join().await;
        let _ = self.retention.await;
        if let Err(e) = self.state.store.close().await {
            tracing::error!(error = %e, "closing the store");
        }
    }
}

/// Where events go, and the base URL the delivery client uses for it.
fn destination(config: &Config, addr: SocketAddr) -> (Destination, String) {
    match (&config.delivery.graph_url, config.is_zero_config()) {
        (Some(url), _) => (Destination::Url(url.clone()), url.clone()),
        (None, true) => {
            // Deliver over real HTTP to our own listener, so the sandbox path is
            // the same code path as production.
            let host = if addr.ip().is_unspecified() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                addr.ip()
            };
            let base = SocketAddr::new(host, addr.port());
            (Destination::Sandbox, format!("http://{base}/_sandbox"))
        }
        (None, false) => (
            Destination::Meta,
            sluice_delivery::client::DEFAULT_BASE_URL.to_owned(),
        ),
    }
}

/// Bounds a whole request, body included, by `server.request_timeout_ms`, so
/// a client that stalls mid-body can hold neither a connection nor a graceful
/// shutdown forever. The answer is 408 `request_timeout`: nothing of the
/// request was acknowledged (a commit that completes anyway is recognised as
/// a duplicate when the client sends again). The admin API is exempt: cutting
/// a large replay off between its steps helps nobody.
async fn request_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.starts_with("/admin/") {
        return next.run(request).await;
    }
    let source = match path {
        "/v1/events" => "backend",
        "/collect" => "browser",
        p if p.ends_with("/events") => "graph",
        _ => "http",
    };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => crate::error::ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request took longer than server.request_timeout_ms (a body sent too slowly?); nothing was accepted, send it again",
        )
        .counted(source)
        .into_response(),
    }
}

fn normalize_options(config: &Config, now_ms: i64) -> NormalizeOptions {
    let year = 1970 + (now_ms / 1000 / 31_556_952) as u16;
    let mut opts = NormalizeOptions::new(year);
    opts.default_region = config
        .normalize
        .default_region
        .as_deref()
        .and_then(|r| r.parse().ok());
    opts
}

/// Opens the store the configuration names: the SQLite file by default, or
/// PostgreSQL when `store.url` is set (migrations applied on connect).
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    open_store_with(config, None).await
}

/// [`open_store`] for the gateway, which delivers from the store: an SQLite
/// file is claimed for this process (`SqliteStore::claim_ownership`), so
/// the leases a killed predecessor left behind come back at once instead of
/// after `delivery.lease_ms`. PostgreSQL leases are left alone: other nodes
/// sharing the schema may be alive and delivering them, so a dead node's
/// leases come back when they expire.
async fn open_store_as_owner(config: &Config, now_ms: i64) -> Result<Arc<dyn Store>, StartError> {
    open_store_with(config, Some(now_ms)).await
}

async fn open_store_with(
    config: &Config,
    owner_now_ms: Option<i64>,
) -> Result<Arc<dyn Store>, StartError> {
    let dedup_window_ms = i64::from(config.store.dedup_window_hours) * 3_600_000;
    if let Some(url) = &config.store.url {
        let options = sluice_store_postgres::PostgresOptions {
            schema: config.store.schema.clone(),
            pool_size: config.store.pool_size,
            statement_timeout: std::time::Duration::from_millis(config.store.statement_timeout_ms),
            tls_root_cert: config.store.tls_root_cert.clone(),
            dedup_window_ms,
            ..sluice_store_postgres::PostgresOptions::default()
        };
        let store = sluice_store_postgres::PostgresStore::connect(url.expose(), options)
            .await
            .map_err(|e| StartError::Store {
                path: format!("postgres schema {}", config.store.schema),
                message: e.to_string(),
            })?;
        return Ok(Arc::new(store));
    }
    let path = config.store_path();
    let options = SqliteOptions {
        synchronous_full: config.store.synchronous == "full",
        dedup_window_ms,
        ..SqliteOptions::default()
    };
    let store_error = |e: sluice_store::StoreError| StartError::Store {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let store = SqliteStore::open(&path, options)
        .await
        .map_err(store_error)?;
    if let Some(now_ms) = owner_now_ms {
        store.claim_ownership(now_ms).await.map_err(store_error)?;
    }
    Ok(Arc::new(store))
}

/// Every route of the gateway.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.config.server.max_body_bytes;
    Router::new()
        .route("/v1/events", post(routes::backend::post_events))
        .route(
            "/{version}/{pixel_id}/events",
            post(routes::graph::post_events),
        )
        .route(
            "/collect",
            post(routes::collect::collect).options(routes::collect::preflight),
        )
        .route(
            &state.config.browser.script_path,
            get(routes::collect::script),
        )
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::health::metrics))
        .route("/admin/dlq", get(routes::admin::list))
        .route("/admin/dlq/replay", post(routes::admin::replay))
        .route("/admin/dlq/{id}", get(routes::admin::show))
        .route("/admin/dedup", get(routes::admin::dedup_report))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
