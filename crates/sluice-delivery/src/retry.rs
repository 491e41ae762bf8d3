//! Retry classification: what to do with the outcome of one send.
//!
//! Kept apart from the transport (the shape of Vector's `RetryLogic`): the
//! client reports what happened, a [`RetryPolicy`] turns that into a
//! [`Verdict`], and the engine acts on the verdict. Swapping the policy
//! (another API, a stricter operator preference) touches neither.
//!
//! # Meta's rules ([`MetaRetryPolicy`], capi-reference.md §8.3)
//!
//! Decide by `error.code` (and subcode) first, then by `is_transient`, then
//! by HTTP status. Throttling arrives as HTTP 4xx with the code in the body
//! (not as 429, usually without `is_transient`), so "every 4xx is
//! permanent" would drop every throttled batch.
//!
//! | outcome | verdict |
//! |---|---|
//! | 2xx with Meta's success object | `Delivered` |
//! | code 1 (unknown), 2 (service unavailable), 341 (app limit) | `RetryNow` |
//! | code 368 (temporarily blocked for policy) | `RetryAfter(policy_block_pause)`; alert |
//! | code 4, 17, 32, 613, 80000–80014 (throttling) | `RetryAfter(BUC/Retry-After wait, else rate_limit_pause)` |
//! | code 190, 102 (token invalid/expired; any subcode, e.g. 458–467, 492) | `FixCredentials` |
//! | code 10, 200–299 (permission), 3 (capability) | `FixCredentials` |
//! | code 100, subcode 33 (dataset missing or not shared with the token) | `FixCredentials` |
//! | code 100, any other or no subcode (bad payload) | `Permanent` |
//! | other code, `is_transient: true` | `RetryNow` |
//! | other code, HTTP 5xx | `RetryNow` |
//! | other code, HTTP 429 | `RetryAfter` |
//! | other code, other status | `Permanent` |
//! | transport error (timeout, connect, dropped body) | `RetryNow` |
//! | non-Graph 5xx, 408, or unreadable 2xx | `RetryNow` (a resend is safe: Meta dedups on `event_id`) |
//! | non-Graph 429 | `RetryAfter(Retry-After, else rate_limit_pause)` |
//! | non-Graph other 4xx (a proxy page, a wrong base URL) | `FixCredentials` |
//! | batch refused before sending (empty, > 1000) | `Permanent` |
//!
//! Two decisions the table in the reference leaves open:
//!
//! - **100/33 is a configuration problem, not a payload problem.** It means
//!   the dataset does not exist or the token cannot see it (typically the
//!   pixel is not shared with the system user). Every event of the pixel
//!   fails the same way, so splitting the batch would only dead-letter all
//!   of them one by one; pausing the lane and alerting is the useful answer.
//! - **A 4xx without a Graph error object is a configuration problem too.**
//!   Graph always answers with its error object; a bare 404 or 403 page comes
//!   from something else on the path (a wrong base URL, a proxy). Pausing
//!   beats bisecting a healthy batch into the dead-letter queue.
//!
//! `is_transient: false` decides nothing: the status then decides.

use std::time::Duration;

use sluice_core::EventResponse;
use sluice_core::graph_error::codes;

use crate::error::DeliveryError;

/// What the engine should do with a batch after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Meta accepted the batch: acknowledge it.
    Delivered,
    /// A transient failure: try again after an exponential backoff.
    RetryNow,
    /// Throttled or temporarily blocked: wait at least this long, and let
    /// the whole lane wait (the limit is per app/account, not per batch).
    RetryAfter(Duration),
    /// The token or its permissions are wrong: pause the lane and alert;
    /// retrying cannot help until someone fixes the configuration.
    FixCredentials,
    /// The batch itself is invalid: split it to isolate the bad events and
    /// dead-letter them.
    Permanent,
}

impl Verdict {
    /// A stable lowercase name for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Delivered => "delivered",
            Verdict::RetryNow => "transient",
            Verdict::RetryAfter(_) => "rate_limited",
            Verdict::FixCredentials => "fix_credentials",
            Verdict::Permanent => "permanent",
        }
    }
}

/// Turns the outcome of one send into a [`Verdict`].
pub trait RetryPolicy: Send + Sync {
    /// Classifies one outcome. Must be cheap and pure.
    fn classify(&self, result: &Result<EventResponse, DeliveryError>) -> Verdict;
}

/// Default pause when a throttling answer carries no wait hint.
pub const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(60);

/// Default pause after code 368 (temporarily blocked for policy reasons).
pub const DEFAULT_POLICY_BLOCK_PAUSE: Duration = Duration::from_secs(30 * 60);

/// Meta's retry rules; see the module documentation for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaRetryPolicy {
    /// The wait after throttling when neither `X-Business-Use-Case-Usage`
    /// nor `Retry-After` says how long.
    pub rate_limit_pause: Duration,
    /// The wait after code 368.
    pub policy_block_pause: Duration,
}

impl Default for MetaRetryPolicy {
    fn default() -> Self {
        MetaRetryPolicy {
            rate_limit_pause: DEFAULT_RATE_LIMIT_PAUSE,
            policy_block_pause: DEFAULT_POLICY_BLOCK_PAUSE,
        }
    }
}

/// Codes that signal throttling (§8.3).
pub fn is_rate_limit_code(code: i64) -> bool {
    matches!(
        code,
        codes::APP_RATE_LIMIT
            | codes::USER_RATE_LIMIT
            | codes::PAGE_RATE_LIMIT
            | codes::CUSTOM_RATE_LIMIT
            | codes::BUC_RATE_LIMIT_FIRST..=codes::BUC_RATE_LIMIT_LAST
    )
}

/// Codes that mean the token or its permissions must be fixed (§8.3).
pub fn is_credentials_code(code: i64) -> bool {
    matches!(
        code,
        codes::ACCESS_TOKEN
            | codes::SESSION_INVALID
            | codes::PERMISSION_DENIED
            | codes::CAPABILITY_MISSING
            | 200..=299
    )
}

impl MetaRetryPolicy {
    fn classify_graph(
        &self,
        status: u16,
        code: i64,
        subcode: Option<i64>,
        is_transient: Option<bool>,
        wait: Option<Duration>,
    ) -> Verdict {
        match code {
            codes::UNKNOWN | codes::SERVICE_UNAVAILABLE | codes::APP_LIMIT_REACHED => {
                return Verdict::RetryNow;
            }
            codes::POLICY_BLOCK => {
                return Verdict::RetryAfter(wait.unwrap_or_default().max(self.policy_block_pause));
            }
            code if is_rate_limit_code(code) => {
                return Verdict::RetryAfter(wait.unwrap_or(self.rate_limit_pause));
            }
            code if is_credentials_code(code) => return Verdict::FixCredentials,
            codes::INVALID_PARAMETER => {
                return if subcode == Some(codes::subcodes::OBJECT_MISSING) {
                    Verdict::FixCredentials
                } else {
                    Verdict::Permanent
                };
            }
            _ => {}
        }
        if is_transient == Some(true) {
            return Verdict::RetryNow;
        }
        match status {
            500..=599 => Verdict::RetryNow,
            429 => Verdict::RetryAfter(wait.unwrap_or(self.rate_limit_pause)),
            _ => Verdict::Permanent,
        }
    }
}

impl RetryPolicy for MetaRetryPolicy {
    fn classify(&self, result: &Result<EventResponse, DeliveryError>) -> Verdict {
        let err = match result {
            Ok(_) => return Verdict::Delivered,
            Err(err) => err,
        };
        match err {
            DeliveryError::Graph {
                status,
                error,
                buc_wait,
            } => self.classify_graph(
                *status,
                error.code,
                error.error_subcode,
                error.is_transient,
                *buc_wait,
            ),
            DeliveryError::Transport { .. } => Verdict::RetryNow,
            DeliveryError::UnexpectedResponse {
                status,
                retry_after,
                ..
            } => match *status {
                429 => Verdict::RetryAfter(retry_after.unwrap_or(self.rate_limit_pause)),
                200..=299 | 408 | 500..=599 => Verdict::RetryNow,
                _ => Verdict::FixCredentials,
            },
            DeliveryError::InvalidBatch { .. } => Verdict::Permanent,
        }
    }
}

#[cfg(test)]
mod tests;
