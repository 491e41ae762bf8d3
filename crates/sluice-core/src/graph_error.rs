//! Graph API error objects and the codes that matter for the Conversions API
//! (capi-reference.md §8.2–8.3).
//!
//! What to *do* about an error (retry, pause, alert, give up) is decided in
//! `sluice-delivery`; this module only names the codes and carries the object.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `error` object of a failed Graph call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GraphError {
    pub message: String,
    #[serde(rename = "type", default)]
    pub error_type: String,
    pub code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_subcode: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_transient: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_user_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_user_msg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbtrace_id: Option<String>,
}

/// `{"error": {...}}`, the body of every failed Graph call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GraphErrorEnvelope {
    pub error: GraphError,
}

impl GraphError {
    pub fn new(code: i64, error_type: &str, message: impl Into<String>) -> Self {
        GraphError {
            message: message.into(),
            error_type: error_type.to_owned(),
            code,
            ..GraphError::default()
        }
    }

    pub fn subcode(mut self, subcode: i64) -> Self {
        self.error_subcode = Some(subcode);
        self
    }

    pub fn user_text(mut self, title: impl Into<String>, msg: impl Into<String>) -> Self {
        self.error_user_title = Some(title.into());
        self.error_user_msg = Some(msg.into());
        self
    }

    pub fn transient(mut self, is_transient: bool) -> Self {
        self.is_transient = Some(is_transient);
        self
    }

    pub fn into_envelope(self) -> GraphErrorEnvelope {
        GraphErrorEnvelope { error: self }
    }
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "graph error {}", self.code)?;
        if let Some(sub) = self.error_subcode {
            write!(f, "/{sub}")?;
        }
        write!(f, " ({}): {}", self.error_type, self.message)
    }
}

/// Error codes and subcodes (capi-reference.md §8.3).
pub mod codes {
    pub const UNKNOWN: i64 = 1;
    pub const SERVICE_UNAVAILABLE: i64 = 2;
    pub const CAPABILITY_MISSING: i64 = 3;
    pub const APP_RATE_LIMIT: i64 = 4;
    pub const PERMISSION_DENIED: i64 = 10;
    pub const USER_RATE_LIMIT: i64 = 17;
    pub const PAGE_RATE_LIMIT: i64 = 32;
    pub const INVALID_PARAMETER: i64 = 100;
    pub const SESSION_INVALID: i64 = 102;
    pub const ACCESS_TOKEN: i64 = 190;
    pub const APP_LIMIT_REACHED: i64 = 341;
    pub const POLICY_BLOCK: i64 = 368;
    pub const CUSTOM_RATE_LIMIT: i64 = 613;
    /// Business Use Case rate limits: 80000 through 80014.
    pub const BUC_RATE_LIMIT_FIRST: i64 = 80_000;
    pub const BUC_RATE_LIMIT_LAST: i64 = 80_014;
    pub const BUC_ADS_MANAGEMENT: i64 = 80_004;

    pub mod subcodes {
        /// The object does not exist or the token cannot see it (unknown pixel).
        pub const OBJECT_MISSING: i64 = 33;
        pub const TOKEN_EXPIRED: i64 = 463;
        pub const TOKEN_INVALID: i64 = 467;
        pub const EVENT_TIME_TOO_OLD: i64 = 2_804_003;
        pub const PURCHASE_VALUE_MISSING: i64 = 2_804_009;
        pub const USER_DATA_NOT_HASHED: i64 = 2_804_016;
        pub const LDU_INVALID: i64 = 2_804_030;
        pub const INSUFFICIENT_CUSTOMER_INFO: i64 = 2_804_050;
        /// Our own pick for malformed event parameters Meta documents no code for.
        pub const INVALID_EVENT_PARAMETER: i64 = 2_804_014;
    }
}
