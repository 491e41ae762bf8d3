//! Metric names and the one place that records them.
//!
//! Recorded through the `metrics` facade; the server installs the Prometheus
//! exporter. Labels stay low-cardinality: the pixel id (a handful per
//! install), a verdict name, an error code label.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `sluice_delivered_events_total` | counter | `pixel` | events Meta accepted |
//! | `sluice_delivery_retries_total` | counter | `pixel`, `reason` | events put back for another attempt (`transient`, `rate_limited`, `fix_credentials`, `split_budget`) |
//! | `sluice_dead_lettered_total` | counter | `pixel`, `code` | events moved to the dead-letter queue, by code (`100/2804016`, `event_too_old`, `max_attempts`) |
//! | `sluice_delivery_latency_seconds` | histogram | – | duration of one Graph request |
//! | `sluice_batch_size` | histogram | – | events per Graph request |
//! | `sluice_breaker_open` | gauge | `pixel` | 1 while the pixel's lane is paused (open or half-open), else 0 |

use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

/// Events Meta accepted.
pub const DELIVERED_EVENTS_TOTAL: &str = "sluice_delivered_events_total";
/// Events put back for another attempt.
pub const DELIVERY_RETRIES_TOTAL: &str = "sluice_delivery_retries_total";
/// Events moved to the dead-letter queue.
pub const DEAD_LETTERED_TOTAL: &str = "sluice_dead_lettered_total";
/// Duration of one Graph request.
pub const DELIVERY_LATENCY_SECONDS: &str = "sluice_delivery_latency_seconds";
/// Events per Graph request.
pub const BATCH_SIZE: &str = "sluice_batch_size";
/// 1 while a lane is paused.
pub const BREAKER_OPEN: &str = "sluice_breaker_open";

/// Registers descriptions with the installed recorder. Call once after
/// installing it; harmless without one.
pub fn describe() {
    describe_counter!(
        DELIVERED_EVENTS_TOTAL,
        Unit::Count,
        "Events accepted by the Graph API."
    );
    describe_counter!(
        DELIVERY_RETRIES_TOTAL,
        Unit::Count,
        "Events put back in the queue for another delivery attempt."
    );
    describe_counter!(
        DEAD_LETTERED_TOTAL,
        Unit::Count,
        "Events moved to the dead-letter queue."
    );
    describe_histogram!(
        DELIVERY_LATENCY_SECONDS,
        Unit::Seconds,
        "Duration of one Graph API events request."
    );
    describe_histogram!(BATCH_SIZE, Unit::Count, "Events per Graph API request.");
    describe_gauge!(
        BREAKER_OPEN,
        "1 while the pixel's delivery lane is paused by its circuit breaker."
    );
}

pub(crate) fn delivered(pixel: &str, events: usize) {
    counter!(DELIVERED_EVENTS_TOTAL, "pixel" => pixel.to_owned()).increment(events as u64);
}

pub(crate) fn retried(pixel: &str, reason: &'static str, events: usize) {
    counter!(DELIVERY_RETRIES_TOTAL, "pixel" => pixel.to_owned(), "reason" => reason)
        .increment(events as u64);
}

pub(crate) fn dead_lettered(pixel: &str, code: &str, events: usize) {
    counter!(DEAD_LETTERED_TOTAL, "pixel" => pixel.to_owned(), "code" => code.to_owned())
        .increment(events as u64);
}

pub(crate) fn request(latency: Duration, batch_size: usize) {
    histogram!(DELIVERY_LATENCY_SECONDS).record(latency.as_secs_f64());
    histogram!(BATCH_SIZE).record(batch_size as f64);
}

pub(crate) fn breaker_open(pixel: &str, open: bool) {
    gauge!(BREAKER_OPEN, "pixel" => pixel.to_owned()).set(if open { 1.0 } else { 0.0 });
}
