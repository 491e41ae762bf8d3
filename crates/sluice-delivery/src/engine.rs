//! The delivery engine: per-pixel lanes fed from the durable queue.
//!
//! ```text
//!   dispatcher ── every poll_interval: store.due_pixels(now) ──► wake lane(s)
//!   lane (one per configured pixel, with its breaker and status)
//!     └── concurrency_per_pixel workers: lease → guard → send → settle (lane.rs)
//! ```
//!
//! The dispatcher is one cheap read per interval whatever the number of
//! pixels; idle workers sleep until woken, instead of each polling the
//! store with a write transaction. Code that has just enqueued events can
//! wake a lane at once through [`LaneWaker`] instead of waiting for the
//! next tick.
//!
//! # Shutdown
//!
//! When the shutdown future resolves, workers stop taking new batches; a
//! batch already leased is still sent and settled (ack, retry,
//! dead-letter), then [`DeliveryEngine::join`] returns. A send is bounded
//! by the client's request timeout, so draining is too. Events leased but
//! never settled (a crash) come back when their lease expires.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use sluice_store::Store;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::breaker::CircuitBreaker;
use crate::client::{Credentials, GraphClient};
use crate::config::{EngineConfig, EngineError};
use crate::lane::{self, Context, Lane};
use crate::metrics;
use crate::status::{DeliveryStatus, LaneShared, unix_ms};

/// A running delivery engine.
#[derive(Debug)]
pub struct DeliveryEngine {
    status: DeliveryStatus,
    waker: LaneWaker,
    task: JoinHandle<()>,
}

/// Wakes a pixel's lane so it leases now rather than at the next tick.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct LaneWaker {
    lanes: Arc<HashMap<String, Arc<LaneShared>>>,
}

impl LaneWaker {
    /// Wakes the lane of `pixel_id` (no-op for unknown pixels).
    pub fn wake(&self, pixel_id: &str) {
        if let Some(lane) = self.lanes.get(pixel_id) {
            lane.wake.notify_waiters();
        }
    }

    /// Wakes every lane.
    pub fn wake_all(&self) {
        for lane in self.lanes.values() {
            lane.wake.notify_waiters();
        }
    }
}

impl DeliveryEngine {
    /// Validates `config`, builds one HTTP client (shared by all lanes) and
    /// starts the lanes on the current Tokio runtime. The engine runs until
    /// `shutdown` resolves; then await [`join`](Self::join) to let in-flight
    /// sends finish.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn spawn<F>(
        store: Arc<dyn Store>,
        config: EngineConfig,
        shutdown: F,
    ) -> Result<Self, EngineError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        config.validate()?;
        let base_client = GraphClient::new(&config.client)?;
        let mut lanes = Vec::with_capacity(config.pixels.len());
        for pixel in &config.pixels {
            let client =
                base_client.with_endpoint(pixel.base_url.as_deref(), pixel.version.as_deref())?;
            let credentials = match &pixel.app_secret {
                Some(app_secret) => {
                    Credentials::with_app_secret(pixel.access_token.clone(), app_secret)
                }
                None => Credentials::new(pixel.access_token.clone()),
            };
            let shared = Arc::new(LaneShared::new(
                &pixel.pixel_id,
                CircuitBreaker::new(config.breaker),
            ));
            lanes.push(Arc::new(Lane {
                shared,
                client,
                credentials,
                test_events: pixel.test_events.clone(),
            }));
        }
        let status = DeliveryStatus::new(lanes.iter().map(|l| l.shared.clone()).collect());
        let waker = LaneWaker {
            lanes: Arc::new(
                lanes
                    .iter()
                    .map(|l| (l.shared.pixel_id.to_string(), l.shared.clone()))
                    .collect(),
            ),
        };
        let ctx = Arc::new(Context {
            store,
            policy: config.retry_policy,
            backoff: config.backoff,
            max_batch_size: config.max_batch_size,
            linger: config.linger,
            lease_ms: i64::try_from(config.lease.as_millis()).unwrap_or(i64::MAX),
            poll_interval: config.poll_interval,
            max_attempts: config.max_attempts,
            max_split_requests: config.max_split_requests,
            age_margin_secs: i64::try_from(config.age_margin.as_secs()).unwrap_or(i64::MAX),
        });
        let task = tokio::spawn(run(
            ctx,
            lanes,
            config.concurrency_per_pixel,
            config.rng_seed,
            status.clone(),
            waker.clone(),
            shutdown,
        ));
        Ok(DeliveryEngine {
            status,
            waker,
            task,
        })
    }

    /// The lanes' state, for `/readyz` and the dashboard.
    pub fn status(&self) -> DeliveryStatus {
        self.status.clone()
    }

    /// A handle to wake lanes after enqueueing.
    pub fn waker(&self) -> LaneWaker {
        self.waker.clone()
    }

    /// Waits until the engine has stopped: shutdown was signalled and every
    /// in-flight batch is settled.
    pub async fn join(self) {
        if let Err(error) = self.task.await {
            tracing::error!(%error, "delivery engine task failed");
        }
    }
}

async fn run<F>(
    ctx: Arc<Context>,
    lanes: Vec<Arc<Lane>>,
    concurrency: usize,
    seed: Option<u64>,
    status: DeliveryStatus,
    waker: LaneWaker,
    shutdown: F,
) where
    F: Future<Output = ()> + Send + 'static,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = JoinSet::new();
    for (lane_index, lane) in lanes.iter().enumerate() {
        metrics::breaker_open(&lane.shared.pixel_id, false);
        for worker in 0..concurrency {
            let rng = match seed {
                Some(seed) => StdRng::seed_from_u64(
                    seed ^ ((lane_index as u64) << 32) ^ (worker as u64).wrapping_mul(0x9E37),
                ),
                None => StdRng::from_os_rng(),
            };
            workers.spawn(lane::run_worker(
                ctx.clone(),
                lane.clone(),
                rng,
                stop_rx.clone(),
            ));
        }
    }
    workers.spawn(dispatch(ctx.clone(), status, waker, stop_rx));
    tracing::info!(
        pixels = lanes.len(),
        workers_per_pixel = concurrency,
        "delivery engine started"
    );

    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = shutdown;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(joined) = workers.join_next() => report_exit(joined),
        }
    }
    stop_tx.send_replace(true);
    while let Some(joined) = workers.join_next().await {
        report_exit(joined);
    }
    tracing::info!("delivery engine stopped");
}

fn report_exit(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined {
        tracing::error!(%error, "a delivery task ended abnormally");
    }
}

/// Wakes the lanes of pixels with due events, every `poll_interval`.
async fn dispatch(
    ctx: Arc<Context>,
    status: DeliveryStatus,
    waker: LaneWaker,
    mut stop: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(ctx.poll_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
        match ctx.store.due_pixels(unix_ms()).await {
            Ok(pixels) => {
                if failing {
                    tracing::info!("listing due pixels works again");
                    failing = false;
                }
                for pixel in pixels {
                    if waker.lanes.contains_key(&pixel) {
                        waker.wake(&pixel);
                    } else if status.note_unconfigured(&pixel) {
                        tracing::warn!(
                            pixel = %pixel,
                            "events are queued for a pixel with no delivery configuration; they stay queued"
                        );
                    }
                }
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "cannot list pixels with due events");
                    failing = true;
                }
            }
        }
        status.tick();
    }
}
