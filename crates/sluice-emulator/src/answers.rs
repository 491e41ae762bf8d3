//! What the emulator answers, shaped like Graph's answers (capi-reference.md §8).
//!
//! Every error goes through one of the constructors here so that the same
//! situation always produces the same `code`, `error_subcode`, `type`,
//! `is_transient`, user texts and HTTP status, and so that the table in the crate
//! docs stays true. Messages follow the wording Graph is known to use where it is
//! known; where it is not, they say plainly what is wrong. They never contain an
//! access token or a value from an event.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sluice_core::graph_error::{GraphError, codes};

use crate::rng::trace_id;

/// Graph's code for a request that carries no access token at all. Graph answers
/// 104 here, not 190 (190 is for a token it cannot accept).
pub const ACCESS_TOKEN_MISSING: i64 = 104;
/// Graph's code for a path it does not know (`Unknown path components`).
pub const UNKNOWN_PATH: i64 = 2500;

/// The Graph API version the emulator names in its `facebook-api-version` header
/// when the request path does not carry one.
const DEFAULT_VERSION: &str = sluice_core::DEFAULT_GRAPH_VERSION;

/// One answer: a status, a JSON (or, for the `raw` fault, arbitrary) body and
/// extra headers. The trace id is added when the answer is turned into a response.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: AnswerBody,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug, Clone)]
pub enum AnswerBody {
    Success {
        events_received: u64,
    },
    Error(Box<GraphError>),
    /// `(content type, body)`.
    Raw(Box<(String, String)>),
}

#[derive(Serialize)]
struct SuccessBody<'a> {
    events_received: u64,
    messages: [&'a str; 0],
    fbtrace_id: &'a str,
}

impl Answer {
    pub fn success(events_received: u64) -> Self {
        Answer {
            status: StatusCode::OK,
            body: AnswerBody::Success { events_received },
            headers: Vec::new(),
        }
    }

    pub fn error(status: StatusCode, error: GraphError) -> Self {
        Answer {
            status,
            body: AnswerBody::Error(Box::new(error)),
            headers: Vec::new(),
        }
    }

    pub fn raw(status: StatusCode, content_type: String, body: String) -> Self {
        Answer {
            status,
            body: AnswerBody::Raw(Box::new((content_type, body))),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((HeaderName::from_static(name), value));
        }
        self
    }

    /// `(code, subcode)` when this answer is a Graph error.
    pub fn error_code(&self) -> Option<(i64, Option<i64>)> {
        match &self.body {
            AnswerBody::Error(e) => Some((e.code, e.error_subcode)),
            AnswerBody::Raw(_) | AnswerBody::Success { .. } => None,
        }
    }

    /// The HTTP response, with a fresh `fbtrace_id` in the body and the
    /// `x-fb-trace-id` header, as Graph sends both.
    pub fn into_response_for(self, version: Option<&str>) -> Response {
        let trace = trace_id();
        let (content_type, body) = match self.body {
            AnswerBody::Success { events_received } => (
                "application/json; charset=UTF-8".to_owned(),
                serde_json::to_string(&SuccessBody {
                    events_received,
                    messages: [],
                    fbtrace_id: &trace,
                })
                .unwrap_or_default(),
            ),
            AnswerBody::Error(mut error) => {
                error.fbtrace_id = Some(trace.clone());
                (
                    "application/json; charset=UTF-8".to_owned(),
                    serde_json::to_string(&error.into_envelope()).unwrap_or_default(),
                )
            }
            AnswerBody::Raw(raw) => *raw,
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        if let Ok(v) = HeaderValue::from_str(&content_type) {
            headers.insert(header::CONTENT_TYPE, v);
        }
        if let Ok(v) = HeaderValue::from_str(&trace) {
            headers.insert(HeaderName::from_static("x-fb-trace-id"), v);
        }
        let version = version.unwrap_or(DEFAULT_VERSION);
        if let Ok(v) = HeaderValue::from_str(version) {
            headers.insert(HeaderName::from_static("facebook-api-version"), v);
        }
        response
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        self.into_response_for(None)
    }
}

fn oauth(code: i64, message: impl Into<String>) -> GraphError {
    GraphError::new(code, "OAuthException", message)
}

fn bad_request(error: GraphError) -> Answer {
    Answer::error(StatusCode::BAD_REQUEST, error)
}

pub fn missing_token() -> Answer {
    bad_request(oauth(
        ACCESS_TOKEN_MISSING,
        "An access token is required to request this resource.",
    ))
}

pub fn invalid_token() -> Answer {
    bad_request(oauth(
        codes::ACCESS_TOKEN,
        "Invalid OAuth access token - Cannot parse access token",
    ))
}

pub fn expired_token() -> Answer {
    bad_request(
        oauth(
            codes::ACCESS_TOKEN,
            "Error validating access token: Session has expired.",
        )
        .subcode(codes::subcodes::TOKEN_EXPIRED),
    )
}

pub fn missing_appsecret_proof() -> Answer {
    bad_request(GraphError::new(
        codes::INVALID_PARAMETER,
        "GraphMethodException",
        "API calls from the server require an appsecret_proof argument",
    ))
}

pub fn invalid_appsecret_proof() -> Answer {
    bad_request(GraphError::new(
        codes::INVALID_PARAMETER,
        "GraphMethodException",
        "Invalid appsecret_proof provided in the API argument",
    ))
}

/// Cuts a path segment before echoing it, so a request cannot make the answer huge.
fn echo(segment: &str) -> String {
    segment.chars().take(64).collect()
}

pub fn unknown_pixel(pixel: &str) -> Answer {
    bad_request(
        GraphError::new(
            codes::INVALID_PARAMETER,
            "GraphMethodException",
            format!(
                "Unsupported post request. Object with ID '{}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
                echo(pixel)
            ),
        )
        .subcode(codes::subcodes::OBJECT_MISSING),
    )
}

pub fn unsupported_method(method: &str, pixel: &str) -> Answer {
    bad_request(
        GraphError::new(
            codes::INVALID_PARAMETER,
            "GraphMethodException",
            format!(
                "Unsupported {} request. Object with ID '{}' does not exist, cannot be loaded due to missing permissions, or does not support this operation.",
                method.to_ascii_lowercase(),
                echo(pixel)
            ),
        )
        .subcode(codes::subcodes::OBJECT_MISSING),
    )
}

pub fn unknown_path(path: &str) -> Answer {
    bad_request(oauth(
        UNKNOWN_PATH,
        format!("Unknown path components: {}", echo(path)),
    ))
}

/// A `(#100)` parameter error without a subcode: Graph's answer to a request
/// whose envelope (not an event) is wrong.
pub fn invalid_param(message: impl std::fmt::Display) -> Answer {
    bad_request(
        oauth(codes::INVALID_PARAMETER, format!("(#100) {message}"))
            .transient(false)
            .user_text("Invalid Parameter", message.to_string()),
    )
}

pub fn body_too_large(limit: usize) -> Answer {
    Answer::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        oauth(
            codes::INVALID_PARAMETER,
            format!("(#100) The request body is larger than {limit} bytes; send fewer events per request"),
        )
        .transient(false),
    )
}

/// The error for an event that failed a check: core's mapping from a validation
/// problem to Graph's code and subcode.
pub fn event_problem(problem: &sluice_core::Problem) -> Answer {
    bad_request(sluice_core::validate::graph_error_for(problem))
}

/// Text of a rate-limit error, per code (Graph's wording where known).
fn rate_limit_message(code: i64) -> String {
    match code {
        codes::APP_RATE_LIMIT => "(#4) Application request limit reached".to_owned(),
        codes::USER_RATE_LIMIT => "(#17) User request limit reached".to_owned(),
        codes::PAGE_RATE_LIMIT => "(#32) Page request limit reached".to_owned(),
        codes::APP_LIMIT_REACHED => "(#341) Application limit reached".to_owned(),
        codes::CUSTOM_RATE_LIMIT => {
            "(#613) Calls to this api have exceeded the rate limit.".to_owned()
        }
        c if (codes::BUC_RATE_LIMIT_FIRST..=codes::BUC_RATE_LIMIT_LAST).contains(&c) => format!(
            "(#{c}) There have been too many calls to this ad-account. Wait a bit and try again. For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting."
        ),
        c => format!("(#{c}) Request limit reached"),
    }
}

/// The subcode Graph attaches to a rate-limit code, when it attaches one.
pub fn rate_limit_default_subcode(code: i64) -> Option<i64> {
    match code {
        codes::USER_RATE_LIMIT => Some(2_446_079),
        codes::CUSTOM_RATE_LIMIT => Some(1_487_742),
        c if (codes::BUC_RATE_LIMIT_FIRST..=codes::BUC_RATE_LIMIT_LAST).contains(&c) => {
            Some(2_446_079)
        }
        _ => None,
    }
}

/// The Business Use Case type Graph reports for a BUC rate-limit code.
fn buc_type(code: i64) -> &'static str {
    match code {
        80_000 => "ads_insights",
        80_001 => "pages",
        80_002 => "instagram",
        80_003 => "custom_audience",
        80_005 => "leadgen",
        80_006 => "messenger",
        80_008 => "whatsapp_business_management",
        80_009 => "catalog_management",
        80_014 => "catalog_batch",
        _ => "ads_management",
    }
}

/// Parameters of a throttling answer.
#[derive(Debug, Clone)]
pub struct RateLimit {
    pub code: i64,
    pub status: StatusCode,
    pub subcode: Option<i64>,
    pub transient: Option<bool>,
    pub regain_minutes: u32,
    pub business_id: String,
}

/// A throttling answer: a 4xx with the code in the body (not 429), usually
/// without `is_transient`; BUC codes carry `X-Business-Use-Case-Usage` whose
/// `estimated_time_to_regain_access` is in minutes, app-level code 4 carries
/// `X-App-Usage`.
pub fn rate_limited(limit: &RateLimit) -> Answer {
    let mut error = oauth(limit.code, rate_limit_message(limit.code));
    error.error_subcode = limit.subcode;
    error.is_transient = limit.transient;
    let answer = Answer::error(limit.status, error);
    if (codes::BUC_RATE_LIMIT_FIRST..=codes::BUC_RATE_LIMIT_LAST).contains(&limit.code) {
        let usage = serde_json::json!({
            limit.business_id.clone(): [{
                "type": buc_type(limit.code),
                "call_count": 100,
                "total_cputime": 100,
                "total_time": 100,
                "estimated_time_to_regain_access": limit.regain_minutes,
            }]
        });
        answer.with_header("x-business-use-case-usage", &usage.to_string())
    } else if limit.code == codes::APP_RATE_LIMIT {
        answer.with_header(
            "x-app-usage",
            r#"{"call_count":100,"total_cputime":100,"total_time":100}"#,
        )
    } else {
        answer
    }
}

/// A server-side failure: 5xx, code 1 (unknown) or 2 (service unavailable),
/// `is_transient: true` unless told otherwise.
pub fn server_error(
    status: StatusCode,
    code: i64,
    subcode: Option<i64>,
    message: Option<&str>,
    transient: bool,
) -> Answer {
    let default_message = match code {
        codes::UNKNOWN => "An unknown error occurred",
        codes::SERVICE_UNAVAILABLE => {
            "An unexpected error has occurred. Please retry your request later."
        }
        _ => "An unexpected error has occurred.",
    };
    let mut error = oauth(code, message.unwrap_or(default_message)).transient(transient);
    error.error_subcode = subcode;
    Answer::error(status, error)
}

/// The answer when a request made the emulator panic (a bug): Graph's "unknown
/// error", so the client sees a Graph error instead of a dropped connection.
pub fn internal_error() -> Answer {
    server_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        codes::UNKNOWN,
        None,
        Some("An unknown error occurred"),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(answer: Answer) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let response = answer.into_response_for(Some("v26.0"));
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn success_has_the_three_fields() {
        let (status, headers, body) = body_of(Answer::success(3)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["events_received"], 3);
        assert_eq!(body["messages"], serde_json::json!([]));
        let trace = body["fbtrace_id"].as_str().unwrap();
        assert_eq!(headers["x-fb-trace-id"], trace);
        assert_eq!(headers["facebook-api-version"], "v26.0");
    }

    #[tokio::test]
    async fn buc_rate_limit_carries_usage_header_in_minutes() {
        let answer = rate_limited(&RateLimit {
            code: 80_004,
            status: StatusCode::BAD_REQUEST,
            subcode: rate_limit_default_subcode(80_004),
            transient: None,
            regain_minutes: 7,
            business_id: "1234".to_owned(),
        });
        let (status, headers, body) = body_of(answer).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], 80_004);
        assert!(body["error"].get("is_transient").is_none());
        let usage: serde_json::Value =
            serde_json::from_str(headers["x-business-use-case-usage"].to_str().unwrap()).unwrap();
        assert_eq!(usage["1234"][0]["estimated_time_to_regain_access"], 7);
        assert_eq!(usage["1234"][0]["type"], "ads_management");
    }

    #[tokio::test]
    async fn errors_get_a_trace_id() {
        let (status, _, body) = body_of(expired_token()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], 190);
        assert_eq!(body["error"]["error_subcode"], 463);
        assert_eq!(body["error"]["type"], "OAuthException");
        assert_eq!(body["error"]["fbtrace_id"].as_str().unwrap().len(), 23);
    }
}
