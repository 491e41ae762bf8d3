//! The age guard: never send an event Meta will refuse for being too old.
//!
//! Meta accepts events up to 7 days old (62 days for `physical_store`), and
//! one older event makes it reject the **whole** request with nothing
//! processed (capi-reference.md §1.3). An event can cross that line while it
//! waits in the queue (a long outage, a paused lane), so the check runs
//! right before each send, against the clock at that moment, and a stale
//! event goes to the dead-letter queue with the code [`EVENT_TOO_OLD`]
//! instead of taking its batch down with it.
//!
//! A safety margin (default one minute) counts an event as too old slightly
//! early, so that one that is fine when the batch is built cannot expire on
//! the way.

use serde::Deserialize;
use sluice_core::ActionSource;

/// Dead-letter code for events past Meta's age limit.
pub const EVENT_TOO_OLD: &str = "event_too_old";

/// Dead-letter code for stored payloads that are not a JSON event object.
pub const MALFORMED_PAYLOAD: &str = "malformed_payload";

/// Default safety margin, in seconds.
pub const DEFAULT_AGE_MARGIN_SECS: i64 = 60;

/// The two fields the guard needs, read without building a JSON tree.
#[derive(Deserialize)]
struct Peek<'a> {
    event_time: i64,
    #[serde(borrow, default)]
    action_source: Option<&'a str>,
}

/// Why an event may not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgeViolation {
    /// Older than Meta's limit for its action source.
    TooOld {
        /// How old it is now, in seconds.
        age_secs: i64,
        /// The limit that applies, in seconds.
        limit_secs: i64,
    },
    /// The payload has no readable `event_time`.
    Malformed,
}

impl AgeViolation {
    /// The dead-letter code.
    pub fn code(&self) -> &'static str {
        match self {
            AgeViolation::TooOld { .. } => EVENT_TOO_OLD,
            AgeViolation::Malformed => MALFORMED_PAYLOAD,
        }
    }

    /// A short explanation without personal data.
    pub fn message(&self) -> String {
        match self {
            AgeViolation::TooOld {
                age_secs,
                limit_secs,
            } => format!(
                "event_time is {} h old at send time; meta accepts at most {} days",
                age_secs / 3600,
                limit_secs / 86_400
            ),
            AgeViolation::Malformed => {
                "stored payload is not an event object with a numeric event_time".to_owned()
            }
        }
    }
}

/// The age limit for an `action_source` value (7 days, 62 for
/// `physical_store`; unknown or missing sources get 7).
pub fn max_age_secs(action_source: Option<&str>) -> i64 {
    let source = ActionSource::ALL
        .into_iter()
        .find(|source| Some(source.as_str()) == action_source)
        .unwrap_or(ActionSource::Website);
    source.max_age_seconds()
}

/// Checks an event's time against the limit at `now_secs`.
pub fn check_time(
    event_time: i64,
    action_source: Option<&str>,
    now_secs: i64,
    margin_secs: i64,
) -> Result<(), AgeViolation> {
    let limit_secs = max_age_secs(action_source);
    let age_secs = now_secs.saturating_sub(event_time);
    if age_secs > limit_secs.saturating_sub(margin_secs.max(0)) {
        Err(AgeViolation::TooOld {
            age_secs,
            limit_secs,
        })
    } else {
        Ok(())
    }
}

/// Checks a stored event (its Graph JSON) at `now_secs`.
pub fn check_payload(payload: &[u8], now_secs: i64, margin_secs: i64) -> Result<(), AgeViolation> {
    let peek: Peek<'_> = serde_json::from_slice(payload).map_err(|_| AgeViolation::Malformed)?;
    check_time(peek.event_time, peek.action_source, now_secs, margin_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_800_000_000;

    #[test]
    fn seven_days_for_the_web_sixty_two_for_stores() {
        assert_eq!(max_age_secs(Some("website")), 7 * DAY);
        assert_eq!(max_age_secs(Some("physical_store")), 62 * DAY);
        assert_eq!(max_age_secs(Some("nonsense")), 7 * DAY);
        assert_eq!(max_age_secs(None), 7 * DAY);
    }

    #[test]
    fn the_limit_and_the_margin_apply_at_send_time() {
        let web = Some("website");
        assert!(check_time(NOW - 7 * DAY + 61, web, NOW, 60).is_ok());
        assert!(check_time(NOW - 7 * DAY + 59, web, NOW, 60).is_err());
        assert!(check_time(NOW - 7 * DAY, web, NOW, 0).is_ok());
        assert!(check_time(NOW - 7 * DAY - 1, web, NOW, 0).is_err());
        assert!(check_time(NOW - 30 * DAY, Some("physical_store"), NOW, 60).is_ok());
        assert!(check_time(NOW - 63 * DAY, Some("physical_store"), NOW, 60).is_err());
        // Future events are not this guard's business.
        assert!(check_time(NOW + DAY, web, NOW, 60).is_ok());
    }

    #[test]
    fn payloads_are_peeked_not_parsed_into_trees() {
        let fresh = format!(
            r#"{{"event_name":"Purchase","user_data":{{"em":["x"]}},"event_time":{},"action_source":"website"}}"#,
            NOW - DAY
        );
        assert_eq!(check_payload(fresh.as_bytes(), NOW, 60), Ok(()));
        let stale = format!(
            r#"{{"event_time":{},"action_source":"email"}}"#,
            NOW - 8 * DAY
        );
        let err = check_payload(stale.as_bytes(), NOW, 60).unwrap_err();
        assert_eq!(err.code(), EVENT_TOO_OLD);
        assert!(err.message().contains("7 days"), "{}", err.message());
        let store = format!(
            r#"{{"event_time":{},"action_source":"physical_store"}}"#,
            NOW - 8 * DAY
        );
        assert_eq!(check_payload(store.as_bytes(), NOW, 60), Ok(()));
        for bad in [&b"[]"[..], b"{}", b"{\"event_time\":\"x\"}", b"not json"] {
            assert_eq!(
                check_payload(bad, NOW, 60),
                Err(AgeViolation::Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
