//! Metric names, and the one place that emits them.
//!
//! [`crate::decide`] is pure and emits nothing; the server calls
//! [`record_decision`] once per event after deciding, so a dry run
//! (`sluice consent explain`, tests, replays) never counts as traffic. The store
//! client counts its own lookups because only it sees cache hits and timeouts.
//!
//! Label values are bounded: outcomes and error codes are fixed sets, rule ids
//! come from the policy file, store results are a fixed set.

use crate::decision::Decision;
use crate::signals::ConsentSignals;

/// Counter, labels `outcome`, `rule`: one per decided event.
pub const DECISIONS_TOTAL: &str = "sluice_consent_decisions_total";
/// Counter, labels `source`, `code`: malformed or failed signals.
pub const SIGNAL_ERRORS_TOTAL: &str = "sluice_consent_signal_errors_total";
/// Counter, label `result` (`cache_hit`, `found`, `not_found`,
/// `consent_store_timeout`, `consent_store_invalid`, `consent_store_unavailable`,
/// `key_invalid`): consent-store lookups.
pub const STORE_LOOKUPS_TOTAL: &str = "sluice_consent_store_lookups_total";

/// Counts one decision and the signal errors behind it.
pub fn record_decision(decision: &Decision, signals: &ConsentSignals) {
    metrics::counter!(
        DECISIONS_TOTAL,
        "outcome" => decision.outcome.as_str(),
        "rule" => decision.rule_id.clone()
    )
    .increment(1);
    for e in &signals.errors {
        metrics::counter!(
            SIGNAL_ERRORS_TOTAL,
            "source" => e.source.as_str(),
            "code" => e.code.as_str()
        )
        .increment(1);
    }
}

pub(crate) fn record_store_lookup(result: &'static str) {
    metrics::counter!(STORE_LOOKUPS_TOTAL, "result" => result).increment(1);
}
