//! Request-level errors of sluice's own API, with stable codes.
//!
//! Shape: `{"error": {"code": "...", "message": "..."}}`. Messages never echo
//! the request body or a credential. (The Graph-compatible endpoint answers with
//! Graph-style errors instead; see `routes::graph`.)

use crate::metrics as m;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn store_unavailable() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the event queue could not commit; nothing from this request was accepted, retry later",
        )
    }

    /// Counts the rejection under `source` and returns self.
    pub fn counted(self, source: &'static str) -> Self {
        metrics::counter!(m::REQUESTS_REJECTED, "source" => source, "code" => self.code)
            .increment(1);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

/// Maps axum's body-reading failures (size limit, broken connection) to our codes.
pub fn body_error(err: axum::extract::rejection::BytesRejection) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is larger than server.max_body_bytes",
        )
    } else {
        ApiError::bad_request("unreadable_body", "the request body could not be read")
    }
}
