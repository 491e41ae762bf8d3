//! [`NormalizeOptions`]: the context a normaliser needs beyond the value itself.

use crate::location::CountryCode;

/// Context for normalisation. Cheap to copy; build one per configuration and derive a
/// per-event copy with [`NormalizeOptions::with_event_country`].
///
/// The current year is a plain field so that normalisation stays a pure function
/// (tests pin it; servers use [`NormalizeOptions::from_system_clock`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormalizeOptions {
    /// Region assumed for national phone numbers, state names and ZIP codes when the
    /// event carries no `country` (configuration, e.g. `de` for a German shop).
    pub default_region: Option<CountryCode>,
    /// The event's own (normalised) `country`; it wins over `default_region`.
    pub event_country: Option<CountryCode>,
    /// The current calendar year; dates of birth after `current_year + 1` are refused.
    pub current_year: u16,
}

impl NormalizeOptions {
    /// Options without any region, for the given current year.
    pub const fn new(current_year: u16) -> Self {
        NormalizeOptions {
            default_region: None,
            event_country: None,
            current_year,
        }
    }

    /// Options with the current year read from the system clock (UTC).
    pub fn from_system_clock() -> Self {
        Self::new(current_year_utc())
    }

    /// Set the configured default region.
    #[must_use]
    pub const fn with_default_region(mut self, region: Option<CountryCode>) -> Self {
        self.default_region = region;
        self
    }

    /// Set the event's country (a copy for one event).
    #[must_use]
    pub const fn with_event_country(mut self, country: Option<CountryCode>) -> Self {
        self.event_country = country;
        self
    }

    /// The region that applies: the event's country, else the default region.
    pub const fn region(&self) -> Option<CountryCode> {
        match self.event_country {
            Some(c) => Some(c),
            None => self.default_region,
        }
    }
}

/// The current year in UTC from the system clock (1970 if the clock is before the epoch).
pub fn current_year_utc() -> u16 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    year_of_unix_seconds(secs)
}

/// Civil year of a Unix timestamp (proleptic Gregorian, UTC).
fn year_of_unix_seconds(secs: u64) -> u16 {
    // Howard Hinnant's days-to-civil algorithm, year part only.
    let days = (secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    u16::try_from(year).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years() {
        assert_eq!(year_of_unix_seconds(0), 1970);
        assert_eq!(year_of_unix_seconds(951_782_399), 2000); // 2000-02-28T23:59:59Z
        assert_eq!(year_of_unix_seconds(1_767_225_599), 2025); // 2025-12-31T23:59:59Z
        assert_eq!(year_of_unix_seconds(1_767_225_600), 2026); // 2026-01-01T00:00:00Z
        assert!(current_year_utc() >= 2024);
    }

    #[test]
    fn region_precedence() {
        let de = CountryCode::from_alpha2("de");
        let o = NormalizeOptions::new(2026).with_default_region(de);
        assert_eq!(o.region(), de);
        assert_eq!(
            o.with_event_country(Some(CountryCode::US)).region(),
            Some(CountryCode::US)
        );
    }
}
