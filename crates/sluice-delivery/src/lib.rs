//! Delivery of queued events to Meta's Graph API.
//!
//! The pieces, each in its own module and usable on its own:
//!
//! - [`client`]: the Graph API client (`POST /{version}/{pixel}/events`),
//!   JSON body with the token inside, `appsecret_proof`, timeouts, typed
//!   outcome ([`DeliveryError`]).
//! - [`usage`]: rate-limit hints from `X-Business-Use-Case-Usage` and
//!   `Retry-After`.
//! - [`retry`]: what an outcome means ([`RetryPolicy`], [`Verdict`],
//!   Meta's table in [`MetaRetryPolicy`]).
//! - [`backoff`]: exponential backoff with full jitter.
//! - [`breaker`]: the per-(pixel, token) circuit breaker that pauses a lane.
//! - [`split`]: bisecting a rejected batch to isolate its bad events.
//! - [`age`]: the 7-day (62-day) guard run right before sending.
//! - [`engine`]: the delivery engine tying them together over a
//!   `sluice_store::Store`: per-pixel lanes, batching with linger, bounded
//!   concurrency, ack / retry / release / dead-letter, graceful drain.
//!   Configured by [`config`], observed through [`status`] and [`metrics`].
//!   Besides the configured pixels, a [`PixelResolver`] can supply pixels
//!   and their tokens at run time (zero-config and sandbox mode); each gets
//!   a lane of its own, up to [`EngineConfig::max_dynamic_lanes`].
//!
//! Nothing here logs an access token or an event payload; errors carry
//! neither.
//!
//! # As a library
//!
//! ```no_run
//! use sluice_core::{ActionSource, Secret, ServerEvent};
//! use sluice_delivery::{
//!     BatchOptions, ClientConfig, Credentials, GraphClient, MetaRetryPolicy, RetryPolicy, Verdict,
//! };
//!
//! # async fn demo() -> Result<(), sluice_delivery::ClientBuildError> {
//! let client = GraphClient::new(&ClientConfig::default())?;
//! let credentials = Credentials::new(Secret::new("EAAB..."));
//! let event = ServerEvent::builder("Purchase", 1_795_860_000, ActionSource::Website)
//!     .event_id("order-7731")
//!     .build();
//! let result = client
//!     .send_events("1234567890", &credentials, &[event], &BatchOptions::default())
//!     .await;
//! match MetaRetryPolicy::default().classify(&result) {
//!     Verdict::Delivered => {}
//!     Verdict::RetryNow | Verdict::RetryAfter(_) => { /* send the same events again later */ }
//!     Verdict::FixCredentials => { /* alert: the token is bad */ }
//!     Verdict::Permanent => { /* the payload is invalid: see sluice_delivery::split */ }
//! }
//! # Ok(())
//! # }
//! ```

// `DeliveryError::Graph` carries Meta's whole error object by value: errors
// here are the common case (throttling, retries), the object is logged and
// dead-lettered as is, and boxing it would add an allocation per failure for
// no gain (style rule 4: hot-path errors are plain enums, never boxed).
#![allow(clippy::result_large_err)]

pub mod age;
pub mod backoff;
pub mod breaker;
pub mod client;
pub mod config;
pub mod engine;
pub mod error;
mod lane;
pub mod metrics;
pub mod retry;
pub mod split;
pub mod status;
pub mod usage;

pub use backoff::{Backoff, BackoffError};
pub use breaker::{Admission, BreakerConfig, BreakerState, CircuitBreaker, Ticket, TripCause};
pub use client::{BatchOptions, ClientConfig, Credentials, GraphClient};
pub use config::{EngineConfig, EngineError, PixelConfig, PixelResolver, TestEventMode};
pub use engine::{DeliveryEngine, LaneWaker};
pub use error::{ClientBuildError, DeliveryError, TransportKind};
pub use retry::{MetaRetryPolicy, RetryPolicy, Verdict};
pub use split::{Bisection, SplitOutcome, bisect};
pub use status::{DeliveryStatus, LaneStatus};
