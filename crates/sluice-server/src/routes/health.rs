//! `/healthz`, `/readyz` and `/metrics`.

use crate::metrics as m;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// The process is up and serving HTTP.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready to take traffic: the store commits writes and no delivery lane is
/// blocked on something a person must fix (an invalid access token). Lanes in
/// backoff are still ready: events are queued safely meanwhile.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let mut problems = Vec::new();
    if let Err(e) = state.store.check_writable().await {
        problems.push(format!("store not writable: {e}"));
    }
    problems.extend(state.readiness.blocking_problems());
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": problems.is_empty(),
        "problems": problems,
        "store": state.store.backend_name(),
        "lanes": state.readiness.lanes(),
    });
    (status, Json(body)).into_response()
}

/// Prometheus text format. Queue gauges are read from the store at scrape time.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Ok(stats) = state.store.stats(state.now_ms()).await {
        metrics::gauge!(m::QUEUE_DEPTH).set(stats.queued as f64);
        metrics::gauge!(m::QUEUE_LEASED).set(stats.leased as f64);
        metrics::gauge!(m::QUEUE_HELD).set(stats.held as f64);
        metrics::gauge!(m::DEAD_LETTERS).set(stats.dead_letters as f64);
        for pixel in &stats.per_pixel {
            let label = state.pixel_label(&pixel.pixel_id);
            metrics::gauge!(m::QUEUE_DEPTH_BY_PIXEL, "pixel" => label).set(pixel.queued as f64);
        }
    }
    let body = m::prometheus().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
