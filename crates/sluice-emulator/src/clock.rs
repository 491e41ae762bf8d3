//! The emulator's notion of "now".
//!
//! Two rules depend on time: `event_time` must be at most 7 days old (62 for
//! `physical_store`) and not in the future, and Meta deduplicates within 48 hours.
//! Tests must be able to move time by days without sleeping, so the emulator reads
//! the time through [`Clock`] and tests hand it a [`ManualClock`].

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in Unix milliseconds.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;

    /// Unix seconds, the unit of `event_time`.
    fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to. Clones share the same time, so a test
/// keeps one handle and gives another to the emulator.
#[derive(Debug, Clone)]
pub struct ManualClock {
    ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `unix_secs`.
    pub fn at_secs(unix_secs: i64) -> Self {
        ManualClock {
            ms: Arc::new(AtomicI64::new(unix_secs.saturating_mul(1000))),
        }
    }

    /// A clock standing at the machine's current time (useful when the events
    /// come from code that stamps them with the real time, like the SDKs).
    pub fn starting_now() -> Self {
        let now = SystemClock.now_ms();
        ManualClock {
            ms: Arc::new(AtomicI64::new(now)),
        }
    }

    pub fn set_secs(&self, unix_secs: i64) {
        self.ms
            .store(unix_secs.saturating_mul(1000), Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let _ = self
            .ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |ms| {
                Some(ms.saturating_add(by))
            });
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at_secs(1_795_860_000);
        let shared = clock.clone();
        assert_eq!(shared.now_secs(), 1_795_860_000);
        clock.advance(Duration::from_secs(49 * 3600));
        assert_eq!(shared.now_secs(), 1_795_860_000 + 49 * 3600);
        clock.set_secs(5);
        assert_eq!(shared.now_ms(), 5000);
    }

    #[test]
    fn system_clock_is_after_2025() {
        assert!(SystemClock.now_secs() > 1_735_689_600);
    }
}
