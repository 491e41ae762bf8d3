//! A circuit breaker per (pixel, token): "pause this lane of the queue".
//!
//! A generic request-level breaker fails calls fast; here there are no
//! callers to fail. While the breaker is open the lane simply does not lease
//! events, so they wait safely in the store. The breaker is a pure state
//! machine: time is passed in, nothing sleeps, so every transition is
//! unit-tested without a runtime.
//!
//! ```text
//!            N consecutive transient failures,
//!            throttling, or a credentials error
//!   Closed ─────────────────────────────────────────► Open { until }
//!     ▲                                                  │ now >= until
//!     │ probe reached Meta (delivered, or a              ▼
//!     │ payload error: the lane itself works)        HalfOpen: one probe
//!     └────────────────────────────────────────────────  │
//!                                   probe failed again ──┘──► Open (longer)
//! ```
//!
//! - A credentials error (190, 102, 10, 200–299, 3, 100/33) trips at once:
//!   nothing will work until a person fixes the token.
//! - Throttling opens the breaker for exactly the wait Meta asked for; the
//!   quota is per app/account, so the whole lane must wait, not one batch.
//! - Transient failures trip after `failure_threshold` in a row.
//! - Each trip without a success in between doubles the cooldown, up to
//!   `max_cooldown`; a transient trip's cooldown is capped further by
//!   `max_transient_cooldown`, so once the destination is back, a lane
//!   resumes within that (a half-open probe goes out at its end) however
//!   long the outage lasted. Credentials trips keep the long cooldowns:
//!   only a person fixes those.
//!
//! Results of sends that started before the latest trip are stale and are
//! ignored (see [`Ticket`]): with several sends in flight, a late success of
//! an old request says nothing about whether the cause of the trip is gone.

use std::time::Duration;

use tokio::time::Instant;

use crate::retry::Verdict;

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive transient failures (timeouts, 5xx, code 1/2) that trip it.
    pub failure_threshold: u32,
    /// How long it stays open after the first transient trip (doubling on
    /// each further trip, up to `max_transient_cooldown`).
    pub cooldown: Duration,
    /// How long it stays open after the first credentials error.
    pub auth_cooldown: Duration,
    /// The longest cooldown, however often it trips.
    pub max_cooldown: Duration,
    /// The longest cooldown after transient failures (timeouts, 5xx): the
    /// most a lane waits to probe once the destination is back.
    pub max_transient_cooldown: Duration,
}

/// Default of [`BreakerConfig::max_transient_cooldown`].
pub const DEFAULT_MAX_TRANSIENT_COOLDOWN: Duration = Duration::from_secs(30);

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
            auth_cooldown: Duration::from_secs(5 * 60),
            max_cooldown: Duration::from_secs(60 * 60),
            max_transient_cooldown: DEFAULT_MAX_TRANSIENT_COOLDOWN,
        }
    }
}

/// Why the breaker opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TripCause {
    /// Too many transient failures in a row.
    Transient,
    /// Meta throttled the lane.
    RateLimited,
    /// The token or its permissions are wrong.
    Credentials,
}

impl TripCause {
    /// A stable lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TripCause::Transient => "transient",
            TripCause::RateLimited => "rate_limited",
            TripCause::Credentials => "credentials",
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Sends flow.
    Closed,
    /// No sends until `until`.
    Open {
        /// When a probe may go out.
        until: Instant,
        /// What tripped it.
        cause: TripCause,
    },
    /// One probe may go (or is out); everything else waits for its result.
    HalfOpen {
        /// Whether the probe is out.
        probing: bool,
        /// What tripped it last.
        cause: TripCause,
    },
}

impl BreakerState {
    /// `"closed"`, `"open"` or `"half_open"`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen { .. } => "half_open",
        }
    }

    /// Whether sends are held back (open or half-open).
    pub const fn is_tripped(&self) -> bool {
        !matches!(self, BreakerState::Closed)
    }
}

/// Permission for one send, to hand back with its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    generation: u64,
    probe: bool,
}

impl Ticket {
    /// Whether this send is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// What the lane may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send (as a probe if the ticket says so).
    Send(Ticket),
    /// Do not send. `Some(t)`: ask again at `t`; `None`: a probe is out, ask
    /// again when it has reported.
    Wait(Option<Instant>),
}

/// The per-(pixel, token) breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    consecutive_failures: u32,
    /// Trips since the last success; doubles the cooldown.
    trips: u32,
    /// Bumped on every trip, so results of older sends can be recognised.
    generation: u64,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        CircuitBreaker {
            config,
            state: BreakerState::Closed,
            consecutive_failures: 0,
            trips: 0,
            generation: 0,
        }
    }

    /// The current state (an `Open` whose time has passed is reported as
    /// such until the next [`admit`](Self::admit)).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Transient failures in a row so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Asks whether a send may go out at `now`.
    pub fn admit(&mut self, now: Instant) -> Admission {
        match self.state {
            BreakerState::Closed => Admission::Send(self.ticket(false)),
            BreakerState::Open { until, .. } if now < until => Admission::Wait(Some(until)),
            BreakerState::Open { cause, .. }
            | BreakerState::HalfOpen {
                probing: false,
                cause,
            } => {
                self.state = BreakerState::HalfOpen {
                    probing: true,
                    cause,
                };
                Admission::Send(self.ticket(true))
            }
            BreakerState::HalfOpen { probing: true, .. } => Admission::Wait(None),
        }
    }

    /// The probe found nothing to send: let the next caller probe instead.
    pub fn cancel(&mut self, ticket: Ticket) {
        if ticket.probe
            && ticket.generation == self.generation
            && let BreakerState::HalfOpen {
                probing: true,
                cause,
            } = self.state
        {
            self.state = BreakerState::HalfOpen {
                probing: false,
                cause,
            };
        }
    }

    /// Records the verdict of a send made with `ticket`. Returns `true` if
    /// this result tripped the breaker (so the caller can log and alert once).
    pub fn record(&mut self, ticket: Ticket, verdict: Verdict, now: Instant) -> bool {
        if ticket.generation != self.generation {
            return false;
        }
        match verdict {
            // A payload error still proves that the lane reaches Meta with
            // working credentials.
            Verdict::Delivered | Verdict::Permanent => {
                self.state = BreakerState::Closed;
                self.consecutive_failures = 0;
                self.trips = 0;
                false
            }
            Verdict::RetryNow => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                let trip = match self.state {
                    BreakerState::HalfOpen { .. } => true,
                    BreakerState::Closed => {
                        self.consecutive_failures >= self.config.failure_threshold
                    }
                    BreakerState::Open { .. } => false,
                };
                if trip {
                    let cooldown = self
                        .cooldown(self.config.cooldown)
                        .min(self.config.max_transient_cooldown);
                    self.trip(TripCause::Transient, now + cooldown);
                }
                trip
            }
            Verdict::RetryAfter(wait) => {
                // Exactly the wait Meta asked for (already capped by the
                // header parser); throttling does not lengthen later cooldowns.
                self.trip(TripCause::RateLimited, now + wait);
                true
            }
            Verdict::FixCredentials => {
                let cooldown = self.cooldown(self.config.auth_cooldown);
                self.trip(TripCause::Credentials, now + cooldown);
                true
            }
        }
    }

    /// The lane now sends with other credentials: the breaker, kept per
    /// (pixel, token), starts over for the new token. Failure counts and
    /// the doubling are forgotten; a lane paused for credentials lets one
    /// probe go at once (results of sends made with the old token are stale
    /// from now on). A pause for throttling or transient failures stays:
    /// a new token does not lift the app's quota or bring a server back.
    pub fn credentials_changed(&mut self) {
        self.consecutive_failures = 0;
        self.trips = 0;
        let paused_for_credentials = matches!(
            self.state,
            BreakerState::Open {
                cause: TripCause::Credentials,
                ..
            } | BreakerState::HalfOpen {
                cause: TripCause::Credentials,
                ..
            }
        );
        if paused_for_credentials {
            self.generation += 1;
            self.state = BreakerState::HalfOpen {
                probing: false,
                cause: TripCause::Credentials,
            };
        }
    }

    fn ticket(&self, probe: bool) -> Ticket {
        Ticket {
            generation: self.generation,
            probe,
        }
    }

    /// `base * 2^trips`, capped.
    fn cooldown(&self, base: Duration) -> Duration {
        let factor = 1u32 << self.trips.min(16);
        base.saturating_mul(factor).min(self.config.max_cooldown)
    }

    fn trip(&mut self, cause: TripCause, until: Instant) {
        if cause != TripCause::RateLimited {
            self.trips = self.trips.saturating_add(1);
        }
        self.generation += 1;
        self.state = BreakerState::Open { until, cause };
    }
}

#[cfg(test)]
mod tests;
