//! The emulator's configuration: who may send, to which pixels, how much it keeps,
//! and the fault script. Loadable from a TOML or JSON file; unknown keys are an
//! error so a typo cannot silently disable a check.
//!
//! ```toml
//! tokens = ["sandbox-token"]        # absent: any non-empty token is accepted
//! pixels = ["1234567890"]           # absent: every pixel exists
//! app_secret = "s3cr3t"             # check appsecret_proof when sent
//! require_appsecret_proof = false
//! max_stored_events = 1000000
//!
//! [[faults]]
//! after_requests = 3
//! times = 1
//! fault = { kind = "http_status", status = 503 }
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

use crate::EmulatorError;
use crate::faults::FaultRule;

/// Default cap on recorded events (oldest are dropped beyond it).
pub const DEFAULT_MAX_STORED_EVENTS: usize = 1_000_000;
/// Default request-body limit. Meta documents none; 1000 events of a few KB each,
/// form-encoded twice by the Python SDK, fit well within it.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Default upper bound for the `timeout` fault's hold.
pub const DEFAULT_MAX_HOLD_MS: u64 = 120_000;
/// Meta's deduplication window: 48 hours.
pub const DEFAULT_DEDUP_WINDOW_S: i64 = 48 * 3600;

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmulatorConfig {
    /// Accepted access tokens. `None`: any non-empty token is accepted.
    pub tokens: Option<Vec<String>>,
    /// Pixels (datasets) that exist. `None`: every pixel exists.
    pub pixels: Option<Vec<String>>,
    /// The app secret; when set, an `appsecret_proof` that is sent must be
    /// HMAC-SHA256(key = secret, message = token) in hex.
    pub app_secret: Option<String>,
    /// With `app_secret`, also refuse requests that send no proof (Graph does
    /// this when the app has "Require App Secret" on).
    pub require_appsecret_proof: bool,
    /// How many events the inspection API keeps; older ones are dropped.
    pub max_stored_events: usize,
    /// Larger request bodies get HTTP 413 with a Graph error.
    pub max_body_bytes: usize,
    /// How far in the future `event_time` may be (Meta documents no bound).
    pub max_future_skew_s: i64,
    /// Deduplication window for `event_name` + `event_id`.
    pub dedup_window_s: i64,
    /// Upper bound for the `timeout` fault.
    pub max_hold_ms: u64,
    /// The fault script, matched in order.
    pub faults: Vec<FaultRule>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            tokens: None,
            pixels: None,
            app_secret: None,
            require_appsecret_proof: false,
            max_stored_events: DEFAULT_MAX_STORED_EVENTS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_future_skew_s: 60,
            dedup_window_s: DEFAULT_DEDUP_WINDOW_S,
            max_hold_ms: DEFAULT_MAX_HOLD_MS,
            faults: Vec::new(),
        }
    }
}

/// Secrets stay out of logs: tokens and the app secret are counted, not shown.
impl fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field(
                "tokens",
                &self
                    .tokens
                    .as_ref()
                    .map(|t| format!("<{} tokens>", t.len())),
            )
            .field("pixels", &self.pixels)
            .field(
                "app_secret",
                &self.app_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("require_appsecret_proof", &self.require_appsecret_proof)
            .field("max_stored_events", &self.max_stored_events)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_future_skew_s", &self.max_future_skew_s)
            .field("dedup_window_s", &self.dedup_window_s)
            .field("max_hold_ms", &self.max_hold_ms)
            .field("faults", &self.faults)
            .finish()
    }
}

impl EmulatorConfig {
    pub fn from_toml_str(text: &str) -> Result<Self, EmulatorError> {
        let config: EmulatorConfig =
            toml::from_str(text).map_err(|e| EmulatorError::Config(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    pub fn from_json_str(text: &str) -> Result<Self, EmulatorError> {
        let config: EmulatorConfig =
            serde_json::from_str(text).map_err(|e| EmulatorError::Config(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Reads a `.json` file as JSON and anything else as TOML.
    pub fn load(path: &Path) -> Result<Self, EmulatorError> {
        let text = std::fs::read_to_string(path).map_err(|source| EmulatorError::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let parsed = if is_json {
            Self::from_json_str(&text)
        } else {
            Self::from_toml_str(&text)
        };
        parsed.map_err(|e| match e {
            EmulatorError::Config(msg) => {
                EmulatorError::Config(format!("{}: {msg}", path.display()))
            }
            other => other,
        })
    }

    /// Checks what the types cannot.
    pub fn check(&self) -> Result<(), EmulatorError> {
        let bad = |msg: String| Err(EmulatorError::Config(msg));
        if self.max_stored_events == 0 {
            return bad("max_stored_events must be at least 1".to_owned());
        }
        if self.max_body_bytes < 1024 {
            return bad("max_body_bytes must be at least 1024".to_owned());
        }
        if self.max_future_skew_s < 0 || self.dedup_window_s < 0 {
            return bad("max_future_skew_s and dedup_window_s must not be negative".to_owned());
        }
        if self
            .tokens
            .as_ref()
            .is_some_and(|t| t.iter().any(String::is_empty))
        {
            return bad("tokens must not contain an empty token".to_owned());
        }
        if self.require_appsecret_proof && self.app_secret.is_none() {
            return bad("require_appsecret_proof needs app_secret".to_owned());
        }
        for (i, rule) in self.faults.iter().enumerate() {
            if let Err(msg) = rule.check() {
                return bad(format!("faults[{i}]: {msg}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Fault;

    #[test]
    fn toml_with_faults() {
        let config = EmulatorConfig::from_toml_str(
            r#"
            tokens = ["a", "b"]
            pixels = ["1"]
            app_secret = "shh"
            [[faults]]
            after_requests = 3
            fault = { kind = "http_status", status = 503 }
            "#,
        )
        .unwrap();
        assert_eq!(config.tokens.as_deref().map(<[String]>::len), Some(2));
        assert_eq!(config.max_stored_events, DEFAULT_MAX_STORED_EVENTS);
        assert!(matches!(
            config.faults[0].fault,
            Fault::HttpStatus { status: 503, .. }
        ));
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("shh") && !debug.contains("\"a\""),
            "{debug}"
        );
    }

    #[test]
    fn json_and_errors() {
        let config =
            EmulatorConfig::from_json_str(r#"{"pixels": ["9"], "max_stored_events": 10}"#).unwrap();
        assert_eq!(config.max_stored_events, 10);
        assert!(EmulatorConfig::from_json_str(r#"{"pixel": ["9"]}"#).is_err());
        assert!(EmulatorConfig::from_json_str(r#"{"max_stored_events": 0}"#).is_err());
        assert!(EmulatorConfig::from_json_str(r#"{"tokens": [""]}"#).is_err());
        let err = EmulatorConfig::from_toml_str(
            "[[faults]]\nfault = { kind = \"random_failure\", fraction = 2.0, seed = 1 }",
        )
        .unwrap_err();
        assert!(err.to_string().contains("faults[0]"), "{err}");
    }
}
