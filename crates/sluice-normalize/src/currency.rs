//! `custom_data.currency`: ISO 4217, not personal data and never hashed.
//!
//! Rule: trim, must be three ASCII letters, upper-cased, and an assigned ISO 4217 code
//! (metals, the test code and `XXX` excluded). Why: the Node SDK upper-cases and checks
//! the ISO list (`xyz` refused); the Python SDK lower-cases and accepts any three
//! letters. Meta's docs show both `USD` and `usd`; upper case is the ISO spelling and
//! what we put on the wire. An unknown code would make Meta reject the whole batch.

use crate::NormalizeError;
use crate::tables;
use crate::text::trim;
use std::fmt;

/// An ISO 4217 alphabetic code, upper-case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CurrencyCode([u8; 3]);

impl CurrencyCode {
    /// The upper-case code (`USD`).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CurrencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CurrencyCode({})", self.as_str())
    }
}

impl std::str::FromStr for CurrencyCode {
    type Err = NormalizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        normalize_currency(s)
    }
}

/// Normalise a currency code (`' eur '` → `EUR`).
pub fn normalize_currency(input: &str) -> Result<CurrencyCode, NormalizeError> {
    let &[a, b, c] = trim(input).as_bytes() else {
        return Err(NormalizeError::InvalidCurrency);
    };
    let code = [a, b, c].map(|x| x.to_ascii_uppercase());
    if tables::CURRENCY_SET.contains(&code) {
        Ok(CurrencyCode(code))
    } else {
        Err(NormalizeError::InvalidCurrency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies() {
        assert_eq!(
            normalize_currency("usd").map(|c| c.to_string()).as_deref(),
            Ok("USD")
        );
        assert_eq!(
            normalize_currency(" EUR ")
                .map(|c| c.to_string())
                .as_deref(),
            Ok("EUR")
        );
        for bad in ["US$", "xyz", "XXX", "XAU", "", "EURO", "€", "ｕｓｄ"] {
            assert_eq!(
                normalize_currency(bad),
                Err(NormalizeError::InvalidCurrency),
                "{bad}"
            );
        }
    }
}
