//! The delivery engine: per-pixel lanes fed from the durable queue.
//!
//! ```text
//!   dispatcher ── every poll_interval: store.due_pixels(now) ──► wake lane(s)
//!     └── due pixel without a lane: ask the PixelResolver (if any) ──► open a lane
//!   lane (one per configured or resolved pixel, with its breaker and status)
//!     └── concurrency_per_pixel workers: lease → guard → send → settle (lane.rs)
//! ```
//!
//! The dispatcher is one cheap read per interval whatever the number of
//! pixels; idle workers sleep until woken, instead of each polling the
//! store with a write transaction. Code that has just enqueued events can
//! wake a lane at once through [`LaneWaker`] instead of waiting for the
//! next tick.
//!
//! # Dynamic lanes
//!
//! Configured pixels get their lanes at start. With
//! [`EngineConfig::pixel_resolver`] set (zero-config and sandbox mode), a
//! pixel with due events and no lane is looked up at run time: when the
//! resolver returns a [`PixelConfig`](crate::PixelConfig), the dispatcher
//! opens a lane for it exactly as for a configured pixel (its own client
//! endpoint, credentials, breaker and status entry) and starts its workers
//! beside the others, so shutdown drains them the same way. Such a lane
//! lives until the engine stops, and its workers ask the resolver again for
//! the pixel's credentials before each batch and while the lane is paused
//! for refused credentials, so a token that becomes known (or changes)
//! later is used. Waking an unknown pixel through
//! [`LaneWaker::wake`] nudges the dispatcher, so the first event of a new
//! pixel goes out at once rather than at the next tick.
//!
//! A pixel stays without a lane, its events queued and the pixel listed in
//! [`DeliveryStatus::unconfigured_pixels`] (and logged once), when there is
//! no resolver, when the resolver returns `None` (it is asked again on
//! later ticks), when its answer is unusable, when the pixel id is not
//! numeric, or once [`EngineConfig::max_dynamic_lanes`] lanes have been
//! opened (logged once for the engine).
//!
//! # Shutdown
//!
//! When the shutdown future resolves, workers stop taking new batches; a
//! batch already leased is still sent and settled (ack, retry,
//! dead-letter), then [`DeliveryEngine::join`] returns. A send is bounded
//! by the client's request timeout, so draining is too. Events leased but
//! never settled (a crash) come back when their lease expires.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rand::SeedableRng;
use rand::rngs::StdRng;
use sluice_store::Store;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::breaker::{BreakerConfig, CircuitBreaker};
use crate::client::GraphClient;
use crate::config::{EngineConfig, EngineError, PixelConfig, PixelResolver, is_dynamic_pixel_id};
use crate::error::ClientBuildError;
use crate::lane::{self, Context, Lane};
use crate::metrics;
use crate::status::{DeliveryStatus, LaneShared, lock, read, unix_ms, write};

/// Most pixels remembered between a wake-up for an unknown pixel and the
/// dispatcher's look at them; further ones wait for the next tick.
const MAX_PENDING_DISCOVERIES: usize = 1024;

/// A running delivery engine.
#[derive(Debug)]
pub struct DeliveryEngine {
    status: DeliveryStatus,
    waker: LaneWaker,
    task: JoinHandle<()>,
}

/// Wakes a pixel's lane so it leases now rather than at the next tick.
/// Cheap to clone; sees lanes opened after it was taken.
#[derive(Debug, Clone)]
pub struct LaneWaker {
    inner: Arc<WakerInner>,
}

#[derive(Debug)]
struct WakerInner {
    /// Every lane by pixel id. Only the dispatcher adds to it; a wake-up
    /// takes the read lock for one look-up.
    lanes: RwLock<HashMap<Arc<str>, Arc<LaneShared>>>,
    /// Present when a pixel resolver is configured.
    discovery: Option<Discovery>,
}

/// How a wake-up for a pixel without a lane reaches the dispatcher.
#[derive(Debug)]
struct Discovery {
    /// Pixels woken without a lane since the dispatcher last looked.
    pending: Mutex<HashSet<String>>,
    /// Pinged when `pending` gains a pixel.
    nudge: Notify,
    /// Cleared once `max_dynamic_lanes` is reached: wake-ups for unknown
    /// pixels are ignored from then on.
    open: AtomicBool,
}

impl LaneWaker {
    fn new(lanes: &[Arc<Lane>], resolving: bool) -> Self {
        let map = lanes
            .iter()
            .map(|lane| (lane.shared.pixel_id.clone(), lane.shared.clone()))
            .collect();
        let discovery = resolving.then(|| Discovery {
            pending: Mutex::new(HashSet::new()),
            nudge: Notify::new(),
            open: AtomicBool::new(true),
        });
        LaneWaker {
            inner: Arc::new(WakerInner {
                lanes: RwLock::new(map),
                discovery,
            }),
        }
    }

    /// Wakes the lane of `pixel_id`. For a pixel without a lane, asks the
    /// dispatcher to consult the pixel resolver now (a no-op without one,
    /// or once `max_dynamic_lanes` is reached).
    pub fn wake(&self, pixel_id: &str) {
        if self.wake_known(pixel_id) {
            return;
        }
        if let Some(discovery) = &self.inner.discovery {
            discovery.request(pixel_id);
        }
    }

    /// Wakes every lane.
    pub fn wake_all(&self) {
        for lane in read(&self.inner.lanes).values() {
            lane.wake.notify_waiters();
        }
    }

    /// Wakes the lane of `pixel_id`; `false` if it has none.
    fn wake_known(&self, pixel_id: &str) -> bool {
        match read(&self.inner.lanes).get(pixel_id) {
            Some(lane) => {
                lane.wake.notify_waiters();
                true
            }
            None => false,
        }
    }

    fn add(&self, lane: Arc<LaneShared>) {
        write(&self.inner.lanes).insert(lane.pixel_id.clone(), lane);
    }
}

impl Discovery {
    fn request(&self, pixel_id: &str) {
        if !self.open.load(Ordering::Relaxed) {
            return;
        }
        {
            let mut pending = lock(&self.pending);
            if pending.contains(pixel_id) {
                // Already signalled and not yet looked at.
                return;
            }
            if pending.len() >= MAX_PENDING_DISCOVERIES {
                return;
            }
            pending.insert(pixel_id.to_owned());
        }
        // A stored permit: a nudge while the dispatcher is busy is not lost.
        self.nudge.notify_one();
    }

    async fn nudged(discovery: Option<&Discovery>) {
        match discovery {
            Some(discovery) => discovery.nudge.notified().await,
            None => std::future::pending().await,
        }
    }
}

/// Builds a lane the same way for a configured pixel and a resolved one
/// (given the resolver it came from, to refresh its credentials).
fn build_lane(
    base_client: &GraphClient,
    pixel: &PixelConfig,
    breaker: BreakerConfig,
    resolver: Option<Arc<dyn PixelResolver>>,
) -> Result<Arc<Lane>, ClientBuildError> {
    let client = base_client.with_endpoint(pixel.base_url.as_deref(), pixel.version.as_deref())?;
    let shared = Arc::new(LaneShared::new(
        &pixel.pixel_id,
        resolver.is_some(),
        CircuitBreaker::new(breaker),
    ));
    Ok(Arc::new(Lane {
        shared,
        client,
        credentials: Mutex::new(pixel.credentials()),
        resolver,
        test_events: pixel.test_events.clone(),
    }))
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
        let lanes = config
            .pixels
            .iter()
            .map(|pixel| build_lane(&base_client, pixel, config.breaker, None))
            .collect::<Result<Vec<_>, _>>()?;
        let status = DeliveryStatus::new(lanes.iter().map(|l| l.shared.clone()).collect());
        let resolving = config.pixel_resolver.is_some() && config.max_dynamic_lanes > 0;
        let waker = LaneWaker::new(&lanes, resolving);
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
        let (new_lanes_tx, new_lanes_rx) = mpsc::unbounded_channel();
        let resolver = config.pixel_resolver.map(|resolver| Resolver {
            resolver,
            base_client,
            breaker: config.breaker,
            max_lanes: config.max_dynamic_lanes,
            opened: 0,
            refused: HashSet::new(),
            warned_full: false,
            new_lanes: new_lanes_tx,
        });
        let dispatcher = Dispatcher {
            ctx: ctx.clone(),
            status: status.clone(),
            waker: waker.clone(),
            resolver,
        };
        let spawner = Spawner {
            ctx,
            concurrency: config.concurrency_per_pixel,
            seed: config.rng_seed,
            next_lane: 0,
        };
        let task = tokio::spawn(run(spawner, lanes, dispatcher, new_lanes_rx, shutdown));
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

/// Starts the workers of a lane.
struct Spawner {
    ctx: Arc<Context>,
    concurrency: usize,
    seed: Option<u64>,
    /// Index of the next lane, for seeding its workers' jitter.
    next_lane: u64,
}

impl Spawner {
    fn spawn(&mut self, workers: &mut JoinSet<()>, lane: &Arc<Lane>, stop: &watch::Receiver<bool>) {
        let lane_index = self.next_lane;
        self.next_lane += 1;
        metrics::breaker_open(&lane.shared.pixel_id, false);
        for worker in 0..self.concurrency {
            let rng = match self.seed {
                Some(seed) => StdRng::seed_from_u64(
                    seed ^ (lane_index << 32) ^ (worker as u64).wrapping_mul(0x9E37),
                ),
                None => StdRng::from_os_rng(),
            };
            workers.spawn(lane::run_worker(
                self.ctx.clone(),
                lane.clone(),
                rng,
                stop.clone(),
            ));
        }
    }
}

async fn run<F>(
    mut spawner: Spawner,
    lanes: Vec<Arc<Lane>>,
    dispatcher: Dispatcher,
    mut new_lanes: mpsc::UnboundedReceiver<Arc<Lane>>,
    shutdown: F,
) where
    F: Future<Output = ()> + Send + 'static,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = JoinSet::new();
    for lane in &lanes {
        spawner.spawn(&mut workers, lane, &stop_rx);
    }
    let max_dynamic_lanes = dispatcher.resolver.as_ref().map(|r| r.max_lanes);
    workers.spawn(dispatcher.run(stop_rx.clone()));
    tracing::info!(
        pixels = lanes.len(),
        workers_per_pixel = spawner.concurrency,
        max_dynamic_lanes,
        "delivery engine started"
    );

    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(joined) = workers.join_next() => report_exit(joined),
            Some(lane) = new_lanes.recv() => spawner.spawn(&mut workers, &lane, &stop_rx),
        }
    }
    stop_tx.send_replace(true);
    // A lane opened after this point has leased nothing: its workers would
    // stop at once, so they are not started.
    new_lanes.close();
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

/// Wakes the lanes of pixels with due events, every `poll_interval`, and
/// opens lanes for pixels the resolver knows.
struct Dispatcher {
    ctx: Arc<Context>,
    status: DeliveryStatus,
    waker: LaneWaker,
    resolver: Option<Resolver>,
}

/// The dispatcher's side of dynamic lanes.
struct Resolver {
    resolver: Arc<dyn PixelResolver>,
    base_client: GraphClient,
    breaker: BreakerConfig,
    max_lanes: usize,
    opened: usize,
    /// Pixels the resolver could not serve since the last tick; a wake-up
    /// does not ask about them again before the next tick.
    refused: HashSet<String>,
    warned_full: bool,
    /// To [`run`], which starts the workers.
    new_lanes: mpsc::UnboundedSender<Arc<Lane>>,
}

/// Why a pixel got no lane.
enum NoLane {
    /// No resolver, or it does not know the pixel (yet).
    Unknown,
    /// The resolver's answer (or the pixel id) cannot be used.
    Unusable(String),
    /// `max_dynamic_lanes` is reached.
    Full,
}

impl Dispatcher {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(self.ctx.poll_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        let waker = self.waker.clone();
        let discovery = waker.inner.discovery.as_ref();
        loop {
            let polled = tokio::select! {
                _ = interval.tick() => true,
                () = Discovery::nudged(discovery) => false,
                _ = stop.wait_for(|stop| *stop) => break,
            };
            if polled {
                self.poll(&mut failing).await;
            } else {
                self.discover();
            }
        }
    }

    /// One look at the queue.
    async fn poll(&mut self, failing: &mut bool) {
        match self.ctx.store.due_pixels(unix_ms()).await {
            Ok(pixels) => {
                if *failing {
                    tracing::info!("listing due pixels works again");
                    *failing = false;
                }
                if let Some(resolver) = &mut self.resolver {
                    resolver.refused.clear();
                }
                for pixel in pixels {
                    if self.waker.wake_known(&pixel) {
                        continue;
                    }
                    if let Err(why) = self.open_lane(&pixel) {
                        self.report(&pixel, why);
                    }
                }
            }
            Err(error) => {
                if !*failing {
                    tracing::warn!(%error, "cannot list pixels with due events");
                    *failing = true;
                }
            }
        }
        self.status.tick();
    }

    /// Looks at pixels woken without a lane. Those that get none are left
    /// for the next tick to report, if they have due events.
    fn discover(&mut self) {
        let Some(discovery) = &self.waker.inner.discovery else {
            return;
        };
        let pending = std::mem::take(&mut *lock(&discovery.pending));
        for pixel in pending {
            if self.waker.wake_known(&pixel) {
                continue;
            }
            if self
                .resolver
                .as_ref()
                .is_some_and(|r| r.refused.contains(&pixel))
            {
                continue;
            }
            // Failures are not reported here: the pixel may have no due
            // events (yet); the next tick reports it if it has.
            let _ = self.open_lane(&pixel);
        }
    }

    /// Opens a lane for `pixel` if the resolver supplies one.
    fn open_lane(&mut self, pixel: &str) -> Result<(), NoLane> {
        let Some(resolver) = &mut self.resolver else {
            return Err(NoLane::Unknown);
        };
        if resolver.opened >= resolver.max_lanes {
            return Err(NoLane::Full);
        }
        let result = resolver.build(pixel);
        let lane = match result {
            Ok(lane) => lane,
            Err(why) => {
                resolver.refused.insert(pixel.to_owned());
                return Err(why);
            }
        };
        resolver.opened += 1;
        let opened = resolver.opened;
        if opened >= resolver.max_lanes
            && let Some(discovery) = &self.waker.inner.discovery
        {
            discovery.open.store(false, Ordering::Relaxed);
        }
        // The status first: once the waker knows the lane, callers may
        // expect to see it.
        self.status.add_lane(lane.shared.clone());
        self.waker.add(lane.shared.clone());
        // Fails only when the engine is stopping; the lane is not needed then.
        let _ = resolver.new_lanes.send(lane);
        tracing::info!(
            pixel,
            dynamic_lanes = opened,
            "opened a delivery lane for a pixel supplied by the pixel resolver"
        );
        Ok(())
    }

    /// Logs (once per pixel, or once for the limit) why a pixel with due
    /// events has no lane, and lists it as unconfigured.
    fn report(&mut self, pixel: &str, why: NoLane) {
        let first = self.status.note_unconfigured(pixel);
        match why {
            NoLane::Unknown if first => tracing::warn!(
                pixel,
                "events are queued for a pixel with no delivery configuration; they stay queued"
            ),
            NoLane::Unusable(reason) if first => tracing::warn!(
                pixel,
                reason,
                "cannot open a delivery lane for the pixel; its events stay queued"
            ),
            NoLane::Full => {
                if let Some(resolver) = &mut self.resolver
                    && !resolver.warned_full
                {
                    resolver.warned_full = true;
                    tracing::warn!(
                        pixel,
                        max_dynamic_lanes = resolver.max_lanes,
                        "the limit of dynamic delivery lanes is reached; events of further pixels stay queued"
                    );
                } else if first {
                    tracing::debug!(
                        pixel,
                        "no dynamic delivery lane left for the pixel; its events stay queued"
                    );
                }
            }
            NoLane::Unknown | NoLane::Unusable(_) => {}
        }
    }
}

impl Resolver {
    /// Asks the resolver about `pixel` and builds its lane.
    fn build(&self, pixel: &str) -> Result<Arc<Lane>, NoLane> {
        if !is_dynamic_pixel_id(pixel) {
            return Err(NoLane::Unusable(
                "a pixel id must be numeric to get a lane from the pixel resolver".to_owned(),
            ));
        }
        let resolved = catch_unwind(AssertUnwindSafe(|| self.resolver.resolve(pixel)));
        let config = match resolved {
            Ok(Some(config)) => config,
            Ok(None) => return Err(NoLane::Unknown),
            Err(_) => return Err(NoLane::Unusable("the pixel resolver panicked".to_owned())),
        };
        if let Some(reason) = config.refusal_for(pixel) {
            return Err(NoLane::Unusable(reason.to_owned()));
        }
        // The error names the URL or version at fault, never the token.
        build_lane(
            &self.base_client,
            &config,
            self.breaker,
            Some(self.resolver.clone()),
        )
        .map_err(|error| NoLane::Unusable(error.to_string()))
    }
}
