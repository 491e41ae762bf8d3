//! Where the person is: the region hint the policy matches on.
//!
//! The event's own `user_data.country` / `st` are SHA-256 hashes by the time an
//! event is stored, so the region cannot come from the stored event. The server
//! builds a [`RegionHint`] while it still has raw values, from one of:
//!
//! - a header set by the edge/CDN (`CF-IPCountry`, `CF-Region-Code`, …; names
//!   configurable in [`RegionHeaders`]) — the right source for browser requests;
//! - the raw `country` / `st` the sender put in `user_data`, read before hashing
//!   ([`RegionHint::from_raw_user_data`]) — the right source for backend and import
//!   events, where the edge header would describe the shop's server, not the buyer.
//!
//! The hint is used for the decision and then dropped; it is never stored (the
//! audit record keeps only the matched rule and region matcher, e.g. `EEA`).

use serde::{Deserialize, Serialize};
use sluice_core::{UserData, UserDataValue};
use std::fmt;

/// Country codes some CDNs send when they do not know the country (unknown, Tor,
/// anonymous proxy, satellite provider, "Europe"). They mean "no hint".
const NON_COUNTRIES: [&str; 7] = ["XX", "T1", "A1", "A2", "O1", "ZZ", "EU"];

/// A country (ISO 3166-1 alpha-2, upper case) and, for the US, a state (the
/// subdivision part of ISO 3166-2, e.g. `CA`). Deserializing goes through
/// [`RegionHint::new`], so a hint is always normalized.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
pub struct RegionHint {
    country: Option<String>,
    state: Option<String>,
}

impl<'de> Deserialize<'de> for RegionHint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            #[serde(default)]
            country: Option<String>,
            #[serde(default)]
            state: Option<String>,
        }
        let raw = Raw::deserialize(d)?;
        Ok(RegionHint::new(
            raw.country.as_deref(),
            raw.state.as_deref(),
        ))
    }
}

impl RegionHint {
    /// Normalizes what it is given and drops what does not look like a code:
    /// country `de` → `DE`, `UK` → `GB`, `XX`/`T1` → none; state `US-CA` → `CA`
    /// (and country `US` when none was given), `ca` → `CA`.
    pub fn new(country: Option<&str>, state: Option<&str>) -> Self {
        let mut country = country.and_then(normalize_country);
        let state = state.and_then(|raw| {
            let raw = raw.trim();
            let (prefix, code) = match raw.split_once('-') {
                Some((p, c)) => (normalize_country(p), c),
                None => (None, raw),
            };
            if country.is_none() {
                country = prefix;
            }
            normalize_subdivision(code)
        });
        RegionHint { country, state }
    }

    /// No region known.
    pub fn unknown() -> Self {
        RegionHint::default()
    }

    pub fn country(&self) -> Option<&str> {
        self.country.as_deref()
    }

    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    pub fn is_unknown(&self) -> bool {
        self.country.is_none()
    }

    /// Fills what this hint lacks from `fallback`. A state is taken over only
    /// together with (or consistent with) its country.
    pub fn or(self, fallback: RegionHint) -> RegionHint {
        match (&self.country, &fallback.country) {
            (None, _) => fallback,
            (Some(a), Some(b)) if a == b && self.state.is_none() => RegionHint {
                country: self.country,
                state: fallback.state,
            },
            _ => self,
        }
    }

    /// Reads the raw (not yet hashed) `country` and `st` values of `user_data`.
    /// Hashed values are skipped: a hash cannot be matched to a region. Only
    /// values that look like codes are used (`de`, `US`, `ca`), never names.
    pub fn from_raw_user_data(user_data: &UserData) -> Self {
        let first_raw = |values: &[UserDataValue]| {
            values.iter().find_map(|v| match v {
                UserDataValue::Raw(p) => Some(p.expose().to_owned()),
                _ => None,
            })
        };
        let country = first_raw(&user_data.country.values);
        let state = first_raw(&user_data.st.values);
        RegionHint::new(country.as_deref(), state.as_deref())
    }
}

/// Shows the codes: a country and a state code are coarse enough not to be
/// personal data on their own, and seeing them is the point of `explain`.
impl fmt::Debug for RegionHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionHint({self})")
    }
}

impl fmt::Display for RegionHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.country, &self.state) {
            (None, _) => f.write_str("unknown"),
            (Some(c), None) => f.write_str(c),
            (Some(c), Some(s)) => write!(f, "{c}-{s}"),
        }
    }
}

fn normalize_country(raw: &str) -> Option<String> {
    let c = raw.trim().to_ascii_uppercase();
    if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    if NON_COUNTRIES.contains(&c.as_str()) {
        return None;
    }
    Some(if c == "UK" { "GB".to_owned() } else { c })
}

fn normalize_subdivision(raw: &str) -> Option<String> {
    let s = raw.trim().to_ascii_uppercase();
    (!s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(s)
}

/// Which request headers carry the edge's geolocation. Defaults are Cloudflare's
/// (`CF-IPCountry`, and `CF-Region-Code` from its "visitor location headers").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionHeaders {
    /// Header with the ISO 3166-1 alpha-2 country code.
    pub country: String,
    /// Header with the subdivision (state) code; `US-CA` or `CA`.
    pub state: Option<String>,
}

impl Default for RegionHeaders {
    fn default() -> Self {
        RegionHeaders {
            country: "cf-ipcountry".to_owned(),
            state: Some("cf-region-code".to_owned()),
        }
    }
}

impl RegionHeaders {
    /// Builds a hint from request headers; `get` looks a header up by name
    /// (case-insensitively, as HTTP header maps do).
    pub fn extract<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> RegionHint {
        let country = get(&self.country);
        let state = self.state.as_deref().and_then(&get);
        RegionHint::new(country, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::user_data::HashedKey;

    #[test]
    fn normalizes_codes() {
        let h = RegionHint::new(Some(" de "), None);
        assert_eq!(h.country(), Some("DE"));
        assert_eq!(RegionHint::new(Some("uk"), None).country(), Some("GB"));
        assert!(RegionHint::new(Some("XX"), Some("CA")).is_unknown());
        assert!(RegionHint::new(Some("Germany"), None).is_unknown());
        let us = RegionHint::new(None, Some("US-CA"));
        assert_eq!((us.country(), us.state()), (Some("US"), Some("CA")));
        let us = RegionHint::new(Some("us"), Some("tx"));
        assert_eq!(us.to_string(), "US-TX");
        assert_eq!(RegionHint::new(Some("US"), Some("<b>")).state(), None);
    }

    #[test]
    fn or_fills_gaps_consistently() {
        let header = RegionHint::new(Some("US"), None);
        let event = RegionHint::new(Some("US"), Some("CA"));
        assert_eq!(header.clone().or(event.clone()).to_string(), "US-CA");
        let other = RegionHint::new(Some("DE"), None);
        assert_eq!(other.clone().or(event.clone()).to_string(), "DE");
        assert_eq!(RegionHint::unknown().or(event).to_string(), "US-CA");
    }

    #[test]
    fn reads_raw_user_data_only() {
        let mut ud = UserData::default();
        ud.push_raw(HashedKey::Country, "us");
        ud.push_raw(HashedKey::St, "ca");
        assert_eq!(RegionHint::from_raw_user_data(&ud).to_string(), "US-CA");
        let mut hashed = UserData::default();
        hashed.push_classified(
            HashedKey::Country,
            "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621",
        );
        assert!(RegionHint::from_raw_user_data(&hashed).is_unknown());
    }

    #[test]
    fn deserializing_normalizes() {
        let h: RegionHint = serde_json::from_str(r#"{"country":"us","state":"ca"}"#).unwrap();
        assert_eq!(h.to_string(), "US-CA");
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"country":"US","state":"CA"}"#
        );
    }

    #[test]
    fn headers_extract() {
        let cfg = RegionHeaders::default();
        let hint = cfg.extract(|name| match name {
            "cf-ipcountry" => Some("US"),
            "cf-region-code" => Some("CO"),
            _ => None,
        });
        assert_eq!(hint.to_string(), "US-CO");
    }
}
