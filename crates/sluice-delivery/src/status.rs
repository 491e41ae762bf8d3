//! The lanes' shared state, and the read-only view of it for `/readyz` and
//! the dashboard.
//!
//! Each lane (one per configured pixel, plus one per pixel opened at run
//! time through a [`PixelResolver`](crate::PixelResolver)) holds its circuit
//! breaker and a small record of what happened last; its workers update both
//! after every batch. [`DeliveryStatus`] is a cheap, cloneable handle that
//! snapshots them, and sees lanes opened after it was taken. Times
//! in the snapshot are Unix milliseconds, so they can be shown and compared
//! with the store's; nothing in it is secret (no token, no payload).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::breaker::{BreakerState, CircuitBreaker, TripCause};

pub(crate) use sluice_core::time::unix_ms;

/// Locks a mutex, shrugging off poisoning: the data behind these locks is
/// a status record and a state machine that stay consistent between
/// statements, so a panicking holder cannot leave them half-written.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read-locks, shrugging off poisoning: the lane registries behind these
/// locks are only ever appended to, one whole entry at a time.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write-locks, shrugging off poisoning (see [`read`]).
pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// A lane's record of recent events, updated by its workers.
#[derive(Debug, Clone, Default)]
pub(crate) struct LaneInfo {
    pub last_error_code: Option<String>,
    pub last_error_ms: Option<i64>,
    pub backoff_until_ms: Option<i64>,
    pub delivered: u64,
    pub dead_lettered: u64,
    pub last_delivered_ms: Option<i64>,
    /// The credentials alarm was raised and no delivery succeeded since.
    pub alerted: bool,
}

/// What the workers of one lane share.
#[derive(Debug)]
pub(crate) struct LaneShared {
    pub pixel_id: Arc<str>,
    /// Opened at run time through the pixel resolver.
    pub dynamic: bool,
    pub breaker: Mutex<CircuitBreaker>,
    pub info: Mutex<LaneInfo>,
    /// Pinged when the pixel may have due events.
    pub wake: Notify,
    /// Pinged when the breaker's half-open probe reports.
    pub breaker_changed: Notify,
}

impl LaneShared {
    pub fn new(pixel_id: &str, dynamic: bool, breaker: CircuitBreaker) -> Self {
        LaneShared {
            pixel_id: Arc::from(pixel_id),
            dynamic,
            breaker: Mutex::new(breaker),
            info: Mutex::new(LaneInfo::default()),
            wake: Notify::new(),
            breaker_changed: Notify::new(),
        }
    }
}

/// A snapshot of one lane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneStatus {
    /// The pixel.
    pub pixel_id: String,
    /// Whether the lane was opened at run time through the pixel resolver
    /// rather than configured.
    pub dynamic: bool,
    /// `"closed"`, `"open"` or `"half_open"`.
    pub breaker: &'static str,
    /// Why the breaker last opened (`"transient"`, `"rate_limited"`,
    /// `"credentials"`); `None` while closed.
    pub breaker_cause: Option<&'static str>,
    /// While open: when the next probe may go out.
    pub paused_until_ms: Option<i64>,
    /// The code label of the latest failed request (`"190/463"`,
    /// `"transport_timeout"`), if any failed since the lane started.
    pub last_error_code: Option<String>,
    /// When that failure happened.
    pub last_error_ms: Option<i64>,
    /// The latest retry time the lane set for events (backoff or throttling).
    pub backoff_until_ms: Option<i64>,
    /// Events delivered since the engine started.
    pub delivered: u64,
    /// Events dead-lettered since the engine started.
    pub dead_lettered: u64,
    /// When the lane last delivered.
    pub last_delivered_ms: Option<i64>,
}

impl LaneStatus {
    /// Whether a person must act: the lane is paused for bad credentials.
    pub fn needs_attention(&self) -> bool {
        self.breaker_cause == Some(TripCause::Credentials.as_str())
    }
}

/// A read-only handle on the engine's lanes.
#[derive(Debug, Clone)]
pub struct DeliveryStatus {
    inner: Arc<StatusInner>,
}

#[derive(Debug)]
struct StatusInner {
    /// Configured lanes in configuration order, then dynamic lanes in the
    /// order they were opened. Only ever appended to.
    lanes: RwLock<Vec<Arc<LaneShared>>>,
    ticks: AtomicU64,
    unconfigured: Mutex<BTreeSet<String>>,
}

impl DeliveryStatus {
    pub(crate) fn new(lanes: Vec<Arc<LaneShared>>) -> Self {
        DeliveryStatus {
            inner: Arc::new(StatusInner {
                lanes: RwLock::new(lanes),
                ticks: AtomicU64::new(0),
                unconfigured: Mutex::new(BTreeSet::new()),
            }),
        }
    }

    pub(crate) fn tick(&self) {
        self.inner.ticks.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a pixel with queued events but no lane; returns `true` the
    /// first time, so it is logged once.
    pub(crate) fn note_unconfigured(&self, pixel_id: &str) -> bool {
        let mut unconfigured = lock(&self.inner.unconfigured);
        if unconfigured.contains(pixel_id) {
            return false;
        }
        unconfigured.insert(pixel_id.to_owned())
    }

    /// Adds a lane opened at run time; its pixel is no longer reported as
    /// unconfigured.
    pub(crate) fn add_lane(&self, lane: Arc<LaneShared>) {
        lock(&self.inner.unconfigured).remove(&*lane.pixel_id);
        write(&self.inner.lanes).push(lane);
    }

    /// Every lane: the configured ones in configuration order, then those
    /// opened at run time, oldest first.
    pub fn lanes(&self) -> Vec<LaneStatus> {
        let now = Instant::now();
        let now_ms = unix_ms();
        // Snapshotting locks each lane's breaker and record; done outside
        // the registry's lock so workers and the dispatcher never wait on it.
        let lanes = read(&self.inner.lanes).clone();
        lanes
            .iter()
            .map(|lane| snapshot(lane, now, now_ms))
            .collect()
    }

    /// One lane.
    pub fn lane(&self, pixel_id: &str) -> Option<LaneStatus> {
        let now = Instant::now();
        let now_ms = unix_ms();
        let lane = read(&self.inner.lanes)
            .iter()
            .find(|lane| &*lane.pixel_id == pixel_id)
            .cloned();
        lane.map(|lane| snapshot(&lane, now, now_ms))
    }

    /// How many lanes were opened at run time through the pixel resolver.
    pub fn dynamic_lanes(&self) -> usize {
        read(&self.inner.lanes)
            .iter()
            .filter(|lane| lane.dynamic)
            .count()
    }

    /// How many times the engine has looked at the queue; a number that
    /// stops growing means the engine is stuck or stopped.
    pub fn ticks(&self) -> u64 {
        self.inner.ticks.load(Ordering::Relaxed)
    }

    /// Pixels that have had due events but no lane (not configured, refused
    /// by the pixel resolver, or beyond `max_dynamic_lanes`). A pixel for
    /// which a lane is opened later leaves this list.
    pub fn unconfigured_pixels(&self) -> Vec<String> {
        lock(&self.inner.unconfigured).iter().cloned().collect()
    }
}

fn snapshot(lane: &LaneShared, now: Instant, now_ms: i64) -> LaneStatus {
    let state = lock(&lane.breaker).state();
    let info = lock(&lane.info).clone();
    let (breaker_cause, paused_until_ms) = match state {
        BreakerState::Closed => (None, None),
        BreakerState::Open { until, cause } => {
            let remaining = until.saturating_duration_since(now);
            let remaining_ms = i64::try_from(remaining.as_millis()).unwrap_or(i64::MAX);
            (
                Some(cause.as_str()),
                Some(now_ms.saturating_add(remaining_ms)),
            )
        }
        BreakerState::HalfOpen { cause, .. } => (Some(cause.as_str()), None),
    };
    LaneStatus {
        pixel_id: lane.pixel_id.to_string(),
        dynamic: lane.dynamic,
        breaker: state.as_str(),
        breaker_cause,
        paused_until_ms,
        last_error_code: info.last_error_code,
        last_error_ms: info.last_error_ms,
        backoff_until_ms: info.backoff_until_ms,
        delivered: info.delivered,
        dead_lettered: info.dead_lettered,
        last_delivered_ms: info.last_delivered_ms,
    }
}
