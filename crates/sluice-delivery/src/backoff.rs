//! Exponential backoff with full jitter.
//!
//! Retries are driven by the queue (each event row stores its next attempt
//! time), so what is needed is a function from "attempts so far" to "how long
//! to wait", not an in-memory retry loop. The ceiling grows as
//! `base * multiplier^attempt`, capped at `max`; the actual delay is drawn
//! uniformly from `[0, ceiling]` ("full jitter"), which spreads the retries
//! of many lanes that failed together instead of having them hit Graph again
//! in lockstep.
//!
//! The random source is a parameter, so tests pass a seeded generator and
//! get the same delays every run.

use std::time::Duration;

use rand::Rng;

/// Default first ceiling.
pub const DEFAULT_BASE: Duration = Duration::from_millis(500);
/// Default largest ceiling.
pub const DEFAULT_MAX: Duration = Duration::from_secs(10 * 60);
/// Default growth factor per attempt.
pub const DEFAULT_MULTIPLIER: f64 = 2.0;

/// A backoff setting that makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackoffError {
    /// `base` is zero: every retry would fire at once.
    #[error("backoff base must be greater than zero")]
    ZeroBase,
    /// `max` is below `base`.
    #[error("backoff max ({max:?}) must be at least the base ({base:?})")]
    MaxBelowBase { base: Duration, max: Duration },
    /// `multiplier` is below 1, NaN or infinite.
    #[error("backoff multiplier must be a finite number >= 1, got {0}")]
    InvalidMultiplier(f64),
}

/// Exponential backoff with full jitter. Built only through [`Backoff::new`],
/// so every value in use is valid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    multiplier: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: DEFAULT_BASE,
            max: DEFAULT_MAX,
            multiplier: DEFAULT_MULTIPLIER,
        }
    }
}

impl Backoff {
    /// Validates and builds a backoff.
    pub fn new(base: Duration, max: Duration, multiplier: f64) -> Result<Self, BackoffError> {
        if base.is_zero() {
            return Err(BackoffError::ZeroBase);
        }
        if max < base {
            return Err(BackoffError::MaxBelowBase { base, max });
        }
        if !multiplier.is_finite() || multiplier < 1.0 {
            return Err(BackoffError::InvalidMultiplier(multiplier));
        }
        Ok(Backoff {
            base,
            max,
            multiplier,
        })
    }

    /// The first ceiling.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The largest ceiling.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The growth factor.
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The upper bound of the delay after `attempt` failures (0 = first
    /// retry): `min(max, base * multiplier^attempt)`, without overflow.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let secs = self.base.as_secs_f64() * self.multiplier.powi(exponent);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// A delay drawn uniformly from `[0, ceiling(attempt)]`.
    pub fn delay<R: Rng + ?Sized>(&self, attempt: u32, rng: &mut R) -> Duration {
        let ceiling = self.ceiling(attempt);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn constructor_rejects_nonsense() {
        assert_eq!(
            Backoff::new(Duration::ZERO, ms(10), 2.0),
            Err(BackoffError::ZeroBase)
        );
        assert!(matches!(
            Backoff::new(ms(10), ms(5), 2.0),
            Err(BackoffError::MaxBelowBase { .. })
        ));
        for m in [0.5, -1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                Backoff::new(ms(10), ms(50), m),
                Err(BackoffError::InvalidMultiplier(_))
            ));
        }
        assert!(Backoff::new(ms(10), ms(10), 1.0).is_ok());
    }

    #[test]
    fn ceiling_grows_exponentially_and_caps() {
        let b = Backoff::new(ms(100), ms(1000), 2.0).unwrap();
        let ceilings: Vec<_> = (0..6).map(|a| b.ceiling(a)).collect();
        assert_eq!(
            ceilings,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(b.ceiling(u32::MAX), ms(1000));
        let flat = Backoff::new(ms(100), ms(1000), 1.0).unwrap();
        assert_eq!(flat.ceiling(50), ms(100));
    }

    #[test]
    fn delays_stay_under_the_ceiling_and_spread_out() {
        let b = Backoff::new(ms(100), ms(60_000), 2.0).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 0..20 {
            for _ in 0..50 {
                assert!(b.delay(attempt, &mut rng) <= b.ceiling(attempt));
            }
        }
        let samples: Vec<_> = (0..200).map(|_| b.delay(3, &mut rng)).collect();
        let low = samples.iter().filter(|d| **d < ms(400)).count();
        // Full jitter: roughly half of the draws fall in the lower half.
        assert!((50..150).contains(&low), "{low}");
    }

    #[test]
    fn a_seeded_rng_gives_the_same_delays() {
        let b = Backoff::default();
        let draw = || {
            let mut rng = StdRng::seed_from_u64(42);
            (0..10).map(|a| b.delay(a, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(), draw());
    }
}
