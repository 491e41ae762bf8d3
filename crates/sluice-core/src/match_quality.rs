//! A 0–10 estimate of how well Meta can match an event to a person.
//!
//! Meta computes Event Match Quality itself and publishes no formula; it says
//! that more customer-information keys, and the ones with the highest match
//! value, raise it, and names `fbc`, `fbp` and IP as high-priority keys
//! (capi-reference.md §12). Our weights follow the commonly cited order
//! `em` > `ph` > `external_id` > `fbc` > `fbp` > IP+UA > names and address, and
//! sum to 10 for an event that carries every one of them. The score is a guide
//! for "what should I add", not a prediction of Meta's number.

use crate::user_data::UserData;
use serde::Serialize;

/// Each key's weight; the weights of one event add up to at most 10.
pub const WEIGHTS: [(&str, f32); 15] = [
    ("em", 2.5),
    ("ph", 2.0),
    ("external_id", 1.5),
    ("fbc", 1.5),
    ("fbp", 1.0),
    ("client_ip_address", 0.4),
    ("client_user_agent", 0.2),
    ("fn", 0.2),
    ("ln", 0.2),
    ("zp", 0.1),
    ("ct", 0.1),
    ("country", 0.1),
    ("db", 0.1),
    ("st", 0.05),
    ("ge", 0.05),
];

/// App identifiers stand in for the browser ids on app events.
const APP_WEIGHTS: [(&str, f32); 2] = [("madid", 1.0), ("anon_id", 0.5)];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchQuality {
    /// 0.0–10.0, one decimal.
    pub score: f32,
    /// Missing keys that would raise the score most, best first (at most five).
    pub missing: Vec<&'static str>,
}

/// Scores the keys present in `user_data`.
pub fn estimate(user_data: &UserData) -> MatchQuality {
    let present = user_data.present_keys();
    let has = |k: &str| present.contains(&k);
    let mut score: f32 = WEIGHTS
        .iter()
        .chain(APP_WEIGHTS.iter())
        .filter(|(k, _)| has(k))
        .map(|(_, w)| w)
        .sum();
    score = (score.min(10.0) * 10.0).round() / 10.0;
    // WEIGHTS is sorted by weight, so the first missing keys gain the most.
    let missing = WEIGHTS
        .iter()
        .filter(|(k, _)| !has(k))
        .map(|(k, _)| *k)
        .take(5)
        .collect();
    MatchQuality { score, missing }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user_data::HashedKey;

    #[test]
    fn weights_sum_to_ten_and_are_sorted() {
        let total: f32 = WEIGHTS.iter().map(|(_, w)| w).sum();
        assert!((total - 10.0).abs() < 1e-4, "{total}");
        assert!(WEIGHTS.windows(2).all(|w| w[0].1 >= w[1].1));
    }

    #[test]
    fn empty_scores_zero_and_suggests_the_strongest_keys() {
        let q = estimate(&UserData::default());
        assert_eq!(q.score, 0.0);
        assert_eq!(q.missing, vec!["em", "ph", "external_id", "fbc", "fbp"]);
    }

    #[test]
    fn email_and_browser_ids() {
        let mut ud = UserData::default();
        ud.push_raw(HashedKey::Em, "a@b.co");
        ud.fbp = Some("fb.1.1795859000123.1".into());
        ud.client_ip_address = Some("2001:db8::1".into());
        ud.client_user_agent = Some("UA".into());
        let q = estimate(&ud);
        assert_eq!(q.score, 4.1);
        assert_eq!(q.missing[0], "ph");
        assert!(!q.missing.contains(&"em"));
    }
}
