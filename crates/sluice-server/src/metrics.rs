//! Metric names and the Prometheus recorder.
//!
//! Labels are bounded: event names outside Meta's standard list become
//! `custom`, and pixel ids only appear when configured (or, in zero-config
//! mode, when they look like pixel ids), so a sender cannot blow up the
//! number of series. No label ever carries personal data.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

pub const EVENTS_RECEIVED: &str = "sluice_events_received_total";
pub const EVENTS_ACCEPTED: &str = "sluice_events_accepted_total";
pub const EVENTS_REJECTED: &str = "sluice_events_rejected_total";
pub const EVENTS_DUPLICATE: &str = "sluice_events_duplicate_total";
/// Server-side copies merged into a held browser copy (identity merge).
pub const EVENTS_MERGED: &str = "sluice_events_merged_total";
pub const EVENTS_DROPPED: &str = "sluice_events_dropped_by_consent_total";
pub const REQUESTS_REJECTED: &str = "sluice_requests_rejected_total";
pub const FIELDS_DROPPED: &str = "sluice_user_data_fields_dropped_total";
pub const MATCH_QUALITY: &str = "sluice_match_quality";
pub const INGEST_LATENCY: &str = "sluice_ingest_latency_seconds";
pub const QUEUE_DEPTH: &str = "sluice_queue_depth";
pub const QUEUE_LEASED: &str = "sluice_queue_leased";
pub const QUEUE_HELD: &str = "sluice_queue_held";
pub const DEAD_LETTERS: &str = "sluice_dead_letters";
pub const QUEUE_DEPTH_BY_PIXEL: &str = "sluice_queue_depth_by_pixel";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle. Several
/// servers in one process (tests) share it.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(MATCH_QUALITY.into()),
                        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full("sluice_batch_size".into()),
                        &[1.0, 10.0, 50.0, 100.0, 200.0, 500.0, 1000.0],
                    )
                })
                .map(|b| b.build_recorder());
            match recorder {
                Ok(recorder) => {
                    let handle = recorder.handle();
                    // Fails only if another recorder was installed first; then our
                    // handle renders nothing, which /metrics makes visible.
                    let _ = metrics::set_global_recorder(recorder);
                    handle
                }
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// The label for an event name: standard names as they are, the rest `custom`.
pub fn event_name_label(name: &str) -> &'static str {
    sluice_core::STANDARD_EVENTS
        .iter()
        .find(|s| **s == name)
        .copied()
        .unwrap_or("custom")
}
