//! What can go wrong when one batch is sent, as data the retry policy reads.
//!
//! Every variant is `Clone` and holds plain strings, so an error can be kept
//! with each event a batch split rejects, shown on `/readyz` and written to
//! the dead-letter queue. No variant holds an access token, an app secret or
//! an event payload: transport messages come from the HTTP stack without the
//! URL, and response snippets are scrubbed of the credentials that were sent.

use std::fmt;
use std::time::Duration;

use sluice_core::GraphError;

/// Why a request never produced an HTTP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// The connect or total timeout elapsed.
    Timeout,
    /// DNS, TCP or TLS setup failed.
    Connect,
    /// The request or response body broke off midway (e.g. a dropped connection).
    Body,
    /// The request could not be sent for another reason (protocol error, reset).
    Request,
    /// Anything the HTTP stack did not classify.
    Other,
}

impl TransportKind {
    /// A stable lowercase name for metrics labels and dead-letter codes.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransportKind::Timeout => "timeout",
            TransportKind::Connect => "connect",
            TransportKind::Body => "body",
            TransportKind::Request => "request",
            TransportKind::Other => "other",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed delivery attempt of one batch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    /// Graph answered with its error object.
    #[error("graph answered http {status}: {error}")]
    Graph {
        /// The HTTP status (throttling arrives as 4xx, not 429).
        status: u16,
        /// The `error` object, to log whole and store with dead letters.
        error: GraphError,
        /// How long the response asked us to wait: the longest
        /// `estimated_time_to_regain_access` of `X-Business-Use-Case-Usage`,
        /// or `Retry-After`, whichever is longer.
        buc_wait: Option<Duration>,
    },
    /// No HTTP response arrived.
    #[error("transport error ({kind}): {message}")]
    Transport {
        /// What broke.
        kind: TransportKind,
        /// The HTTP stack's description, without the URL.
        message: String,
    },
    /// An HTTP response that is neither a success nor a Graph error object
    /// (a proxy page, a truncated body, an HTML error).
    #[error("unexpected http {status} response")]
    UnexpectedResponse {
        /// The HTTP status.
        status: u16,
        /// The start of the body, scrubbed of credentials; `None` if empty.
        snippet: Option<String>,
        /// A `Retry-After` the response carried.
        retry_after: Option<Duration>,
    },
    /// The batch was refused before sending (empty, more than 1000 events,
    /// an unusable pixel id). A bug in the caller, never retried as is.
    #[error("invalid batch: {reason}")]
    InvalidBatch {
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl DeliveryError {
    /// A stable, low-cardinality label: `"190/463"`, `"100"`,
    /// `"transport_timeout"`, `"http_502"`, `"invalid_batch"`. Used as the
    /// dead-letter code and as a metrics label.
    pub fn code_label(&self) -> String {
        match self {
            DeliveryError::Graph { error, .. } => match error.error_subcode {
                Some(sub) => format!("{}/{}", error.code, sub),
                None => error.code.to_string(),
            },
            DeliveryError::Transport { kind, .. } => format!("transport_{kind}"),
            DeliveryError::UnexpectedResponse { status, .. } => format!("http_{status}"),
            DeliveryError::InvalidBatch { .. } => "invalid_batch".to_owned(),
        }
    }

    /// The Graph error code, if Graph sent one.
    pub fn graph_code(&self) -> Option<i64> {
        match self {
            DeliveryError::Graph { error, .. } => Some(error.code),
            _ => None,
        }
    }

    /// The error as JSON for a dead letter's `detail_json`: Graph's error
    /// object as Meta sent it, or a small object describing the failure.
    pub fn detail_json(&self) -> String {
        let value = match self {
            DeliveryError::Graph { status, error, .. } => {
                serde_json::json!({ "http_status": status, "error": error })
            }
            DeliveryError::Transport { kind, message } => {
                serde_json::json!({ "transport": kind.as_str(), "message": message })
            }
            DeliveryError::UnexpectedResponse {
                status, snippet, ..
            } => serde_json::json!({ "http_status": status, "snippet": snippet }),
            DeliveryError::InvalidBatch { reason } => {
                serde_json::json!({ "invalid_batch": reason })
            }
        };
        value.to_string()
    }
}

/// The client could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientBuildError {
    /// The base URL is not an absolute `http(s)://` URL without query or fragment.
    #[error("invalid graph base url: {0}")]
    InvalidBaseUrl(String),
    /// The version is not of the form `v26.0`.
    #[error("invalid graph api version {0:?} (expected e.g. \"v26.0\")")]
    InvalidVersion(String),
    /// A timeout is zero.
    #[error("{0} must be greater than zero")]
    ZeroTimeout(&'static str),
    /// The HTTP stack refused the settings.
    #[error("cannot build http client: {0}")]
    Http(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::graph_error::codes;

    #[test]
    fn code_labels_are_stable() {
        let graph = |error: GraphError| DeliveryError::Graph {
            status: 400,
            error,
            buc_wait: None,
        };
        assert_eq!(
            graph(GraphError::new(190, "OAuthException", "expired").subcode(463)).code_label(),
            "190/463"
        );
        assert_eq!(
            graph(GraphError::new(codes::INVALID_PARAMETER, "x", "y")).code_label(),
            "100"
        );
        let transport = DeliveryError::Transport {
            kind: TransportKind::Timeout,
            message: String::new(),
        };
        assert_eq!(transport.code_label(), "transport_timeout");
        let unexpected = DeliveryError::UnexpectedResponse {
            status: 502,
            snippet: None,
            retry_after: None,
        };
        assert_eq!(unexpected.code_label(), "http_502");
    }

    #[test]
    fn detail_json_carries_the_graph_error_object() {
        let err = DeliveryError::Graph {
            status: 400,
            error: GraphError::new(100, "OAuthException", "Invalid parameter").subcode(2_804_016),
            buc_wait: None,
        };
        let detail: serde_json::Value = serde_json::from_str(&err.detail_json()).unwrap();
        assert_eq!(detail["http_status"], 400);
        assert_eq!(detail["error"]["code"], 100);
        assert_eq!(detail["error"]["error_subcode"], 2_804_016);
    }
}
