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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConsentSignals, Policy, RegionHint, Source, decide};
    use metrics::{
        Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };
    use std::sync::{Arc, Mutex};

    /// Records `name{label=value,…} += n` lines.
    #[derive(Default)]
    struct Lines(Arc<Mutex<Vec<String>>>);

    struct Line(Arc<Mutex<Vec<String>>>, String);

    impl CounterFn for Line {
        fn increment(&self, value: u64) {
            if let Ok(mut v) = self.0.lock() {
                v.push(format!("{} += {value}", self.1));
            }
        }
        fn absolute(&self, _value: u64) {}
    }

    impl Recorder for Lines {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let line = format!("{}{{{}}}", key.name(), labels.join(","));
            Counter::from_arc(Arc::new(Line(self.0.clone(), line)))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn records_the_decision_and_each_signal_error() {
        let policy = Policy::preset("default").unwrap();
        let signals =
            ConsentSignals::from_event_fields(None, None, Some("garbage!")).with_gpc(Some("2"));
        let d = decide(
            &policy,
            &signals,
            &RegionHint::new(Some("FR"), None),
            Source::Browser,
        );
        let recorder = Lines::default();
        metrics::with_local_recorder(&recorder, || record_decision(&d, &signals));
        let lines = recorder.0.lock().unwrap().clone();
        assert_eq!(
            lines,
            vec![
                "sluice_consent_decisions_total{outcome=drop,rule=eea-uk-ch-opt-in} += 1",
                "sluice_consent_signal_errors_total{source=tcf,code=tcf_invalid_character} += 1",
                "sluice_consent_signal_errors_total{source=gpc,code=gpc_invalid} += 1",
            ]
        );
    }
}
