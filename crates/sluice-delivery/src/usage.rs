//! Reading Meta's rate-limit hints from response headers.
//!
//! When Graph throttles a caller it answers with an error code in the body
//! (4, 17, 32, 613, 80000–80014) and, for Business Use Case limits, an
//! `X-Business-Use-Case-Usage` header that says how long until the quota
//! comes back (capi-reference.md §8.3, §9):
//!
//! ```text
//! {"<business_id>": [{"type": "ads_management", "call_count": 100,
//!                     "total_cputime": 20, "total_time": 30,
//!                     "estimated_time_to_regain_access": 5}]}
//! ```
//!
//! `estimated_time_to_regain_access` is in **minutes**; the percentages are
//! ignored here. A standard `Retry-After` (delta-seconds) is honoured too, in
//! case a proxy in front of Graph adds one. Both parsers are forgiving: a
//! header they cannot read yields `None`, never an error, because a hint is
//! an optimisation and the retry policy has its own default pause.

use std::time::Duration;

use serde::Deserialize;

/// Header carrying Business Use Case quota usage.
pub const BUSINESS_USE_CASE_USAGE: &str = "x-business-use-case-usage";

/// Standard HTTP header with a wait in seconds.
pub const RETRY_AFTER: &str = "retry-after";

/// One usage entry of one business in the BUC header.
#[derive(Debug, Deserialize)]
struct BucEntry {
    #[serde(default)]
    estimated_time_to_regain_access: Option<f64>,
}

/// The longest `estimated_time_to_regain_access` over every business and
/// entry of an `X-Business-Use-Case-Usage` value, as a duration.
///
/// Returns `None` when the header is not valid JSON of the documented shape
/// or when every estimate is zero (zero means "not throttled").
pub fn parse_business_use_case_usage(value: &str) -> Option<Duration> {
    let parsed: std::collections::HashMap<String, Vec<BucEntry>> =
        serde_json::from_str(value).ok()?;
    let minutes = parsed
        .values()
        .flatten()
        .filter_map(|entry| entry.estimated_time_to_regain_access)
        .filter(|m| m.is_finite() && *m > 0.0)
        .fold(0.0_f64, f64::max);
    // Cap at one day: a larger number is more likely a unit mistake than a
    // real quota reset, and the lane should look again well before then.
    (minutes > 0.0).then(|| Duration::from_secs_f64((minutes * 60.0).min(86_400.0)))
}

/// A `Retry-After` value in delta-seconds. The HTTP-date form is not used by
/// Graph and is ignored.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: u64 = value.trim().parse().ok()?;
    (seconds > 0).then(|| Duration::from_secs(seconds.min(86_400)))
}

/// The wait a response asks for: the longer of the BUC estimate and
/// `Retry-After`, or `None` if neither is present and readable.
pub fn wait_hint(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let buc = headers
        .get(BUSINESS_USE_CASE_USAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_business_use_case_usage);
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    match (buc, retry_after) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buc_takes_the_longest_estimate_in_minutes() {
        let header = r#"{
            "111": [{"type": "ads_management", "call_count": 100, "total_cputime": 10,
                     "total_time": 12, "estimated_time_to_regain_access": 3}],
            "222": [{"type": "ads_insights", "call_count": 5, "total_cputime": 1,
                     "total_time": 1, "estimated_time_to_regain_access": 0},
                    {"type": "custom_audience", "call_count": 99,
                     "estimated_time_to_regain_access": 7}]
        }"#;
        assert_eq!(
            parse_business_use_case_usage(header),
            Some(Duration::from_secs(7 * 60))
        );
    }

    #[test]
    fn buc_without_throttling_or_malformed_is_none() {
        assert_eq!(
            parse_business_use_case_usage(
                r#"{"1":[{"type":"ads_management","call_count":10,"estimated_time_to_regain_access":0}]}"#
            ),
            None
        );
        assert_eq!(
            parse_business_use_case_usage(r#"{"1":[{"type":"x"}]}"#),
            None
        );
        assert_eq!(parse_business_use_case_usage("not json"), None);
        assert_eq!(parse_business_use_case_usage("[1,2]"), None);
        assert_eq!(parse_business_use_case_usage("{}"), None);
    }

    #[test]
    fn buc_is_capped_at_a_day() {
        assert_eq!(
            parse_business_use_case_usage(r#"{"1":[{"estimated_time_to_regain_access":1e9}]}"#),
            Some(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn retry_after_reads_delta_seconds_only() {
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("0"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn wait_hint_takes_the_longer_of_both_headers() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(wait_hint(&headers), None);
        headers.insert(RETRY_AFTER, "90".parse().unwrap());
        assert_eq!(wait_hint(&headers), Some(Duration::from_secs(90)));
        headers.insert(
            BUSINESS_USE_CASE_USAGE,
            r#"{"9":[{"estimated_time_to_regain_access":1}]}"#.parse().unwrap(),
        );
        assert_eq!(wait_hint(&headers), Some(Duration::from_secs(90)));
        headers.insert(RETRY_AFTER, "10".parse().unwrap());
        assert_eq!(wait_hint(&headers), Some(Duration::from_secs(60)));
    }
}
