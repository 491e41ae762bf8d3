//! The one error type of the crate.
//!
//! Raw personal data must never reach logs, so no variant carries the input and no
//! message quotes it: an error says *what kind* of value was refused, never *which*.
//! [`NormalizeError::code`] is a stable machine-readable string for API responses,
//! metrics labels and rejection reports; the `Display` text is for humans and may
//! change.

/// Why a value was refused. Carries no part of the input, by design.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum NormalizeError {
    /// `em`: not an address of the form `local@domain.tld` (ASCII, see `email`).
    #[error("invalid email address")]
    InvalidEmail,
    /// `ph`: not a phone number (letters, too few or too many digits, unknown
    /// country calling code, impossible length for the country).
    #[error("invalid phone number")]
    InvalidPhone,
    /// `ge`: not a recognised way of saying female or male.
    #[error("invalid gender")]
    InvalidGender,
    /// `db`: no valid year/month/day could be read.
    #[error("invalid date of birth")]
    InvalidDate,
    /// `dobd`: not a day of the month 1–31.
    #[error("invalid day of birth")]
    InvalidDay,
    /// `dobm`: not a month 1–12.
    #[error("invalid month of birth")]
    InvalidMonth,
    /// `doby`: not a four-digit year in range.
    #[error("invalid year of birth")]
    InvalidYear,
    /// `zp`: fewer than two characters left after normalisation.
    #[error("invalid postal code")]
    InvalidPostalCode,
    /// `country`: not an ISO 3166-1 code or a known country name.
    #[error("invalid country")]
    InvalidCountry,
    /// `currency`: not an ISO 4217 currency code.
    #[error("invalid currency")]
    InvalidCurrency,
    /// The input is longer than [`crate::MAX_INPUT_BYTES`]; refused before any work.
    #[error("value too long")]
    TooLong,
    /// A field name that is not one of the hashed `user_data` keys.
    #[error("unknown field")]
    UnknownField,
}

impl NormalizeError {
    /// Stable, machine-readable code (snake_case). Never changes for a variant.
    pub const fn code(self) -> &'static str {
        match self {
            Self::InvalidEmail => "invalid_email",
            Self::InvalidPhone => "invalid_phone",
            Self::InvalidGender => "invalid_gender",
            Self::InvalidDate => "invalid_date",
            Self::InvalidDay => "invalid_day",
            Self::InvalidMonth => "invalid_month",
            Self::InvalidYear => "invalid_year",
            Self::InvalidPostalCode => "invalid_postal_code",
            Self::InvalidCountry => "invalid_country",
            Self::InvalidCurrency => "invalid_currency",
            Self::TooLong => "too_long",
            Self::UnknownField => "unknown_field",
        }
    }

    /// Every variant, for tests and documentation tables.
    pub const ALL: [NormalizeError; 12] = [
        Self::InvalidEmail,
        Self::InvalidPhone,
        Self::InvalidGender,
        Self::InvalidDate,
        Self::InvalidDay,
        Self::InvalidMonth,
        Self::InvalidYear,
        Self::InvalidPostalCode,
        Self::InvalidCountry,
        Self::InvalidCurrency,
        Self::TooLong,
        Self::UnknownField,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for e in NormalizeError::ALL {
            let code = e.code();
            assert!(
                code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{code}"
            );
            assert!(seen.insert(code), "duplicate {code}");
            assert!(!e.to_string().is_empty());
        }
    }
}
