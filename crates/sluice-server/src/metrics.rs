//! Metric names and the Prometheus recorder.
//!
//! Labels are bounded: event names outside Meta's standard list become
//! `custom`, and pixel ids only appear when configured (or, in zero-config
//! mode, when they look like pixel ids), so a sender cannot blow up the
//! number of series. No label ever carries personal data.

use crate::pipeline::Source;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sluice_core::STANDARD_EVENTS;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

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
    STANDARD_EVENTS
        .iter()
        .find(|s| **s == name)
        .copied()
        .unwrap_or("custom")
}

/// The per-event metric handles of the ingest path, registered on first use
/// and kept: `metrics::counter!` with labels builds its key (label strings)
/// and looks it up in the registry on every call, several times per event.
/// A handle is registered only when first used, so `/metrics` shows the
/// same series as before. Keyed by pixel label (bounded, see the header).
#[derive(Default)]
pub struct IngestMetrics {
    by_pixel: RwLock<HashMap<String, Arc<PixelMetrics>>>,
}

impl IngestMetrics {
    /// The handles of one pixel label.
    pub fn pixel(&self, label: &str) -> Arc<PixelMetrics> {
        if let Some(found) = self
            .by_pixel
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(label)
        {
            return Arc::clone(found);
        }
        let mut map = self
            .by_pixel
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(
            map.entry(label.to_owned())
                .or_insert_with(|| Arc::new(PixelMetrics::new(label))),
        )
    }
}

/// A source's index in [`PixelMetrics`]' per-source slots.
fn slot(source: Source) -> usize {
    match source {
        Source::Browser => 0,
        Source::Backend => 1,
        Source::Graph => 2,
    }
}

/// One pixel label's handles; each registered on first use.
pub struct PixelMetrics {
    label: String,
    received: [OnceLock<Counter>; 3],
    duplicate: [OnceLock<Counter>; 3],
    merged: [OnceLock<Counter>; 3],
    /// Per source, per event-name label (the standard names, then `custom`).
    accepted: [Vec<OnceLock<Counter>>; 3],
    match_quality: OnceLock<Histogram>,
}

impl PixelMetrics {
    fn new(label: &str) -> Self {
        let names = || {
            (0..=STANDARD_EVENTS.len())
                .map(|_| OnceLock::new())
                .collect()
        };
        PixelMetrics {
            label: label.to_owned(),
            received: Default::default(),
            duplicate: Default::default(),
            merged: Default::default(),
            accepted: [names(), names(), names()],
            match_quality: OnceLock::new(),
        }
    }

    fn per_source<'a>(
        &self,
        slots: &'a [OnceLock<Counter>; 3],
        name: &'static str,
        source: Source,
    ) -> &'a Counter {
        slots[slot(source)].get_or_init(
            || metrics::counter!(name, "source" => source.as_str(), "pixel" => self.label.clone()),
        )
    }

    /// `sluice_events_received_total{source, pixel}`.
    pub fn received(&self, source: Source) -> &Counter {
        self.per_source(&self.received, EVENTS_RECEIVED, source)
    }

    /// `sluice_events_duplicate_total{source, pixel}`.
    pub fn duplicate(&self, source: Source) -> &Counter {
        self.per_source(&self.duplicate, EVENTS_DUPLICATE, source)
    }

    /// `sluice_events_merged_total{source, pixel}`.
    pub fn merged(&self, source: Source) -> &Counter {
        self.per_source(&self.merged, EVENTS_MERGED, source)
    }

    /// `sluice_events_accepted_total{source, pixel, event_name}`, the name
    /// labelled as [`event_name_label`] does.
    pub fn accepted(&self, source: Source, event_name: &str) -> &Counter {
        let at = STANDARD_EVENTS
            .iter()
            .position(|s| *s == event_name)
            .unwrap_or(STANDARD_EVENTS.len());
        self.accepted[slot(source)][at].get_or_init(|| {
            let name = STANDARD_EVENTS.get(at).copied().unwrap_or("custom");
            metrics::counter!(EVENTS_ACCEPTED, "source" => source.as_str(), "pixel" => self.label.clone(), "event_name" => name)
        })
    }

    /// `sluice_match_quality{pixel}`.
    pub fn match_quality(&self) -> &Histogram {
        self.match_quality
            .get_or_init(|| metrics::histogram!(MATCH_QUALITY, "pixel" => self.label.clone()))
    }
}
