//! The hashed `user_data` keys this crate normalises, by their wire names.

use crate::NormalizeError;
use std::fmt;
use std::str::FromStr;

/// A personal-data field of `user_data` that Meta wants normalised and SHA-256 hashed.
///
/// The wire names are Meta's (`em`, `ph`, …). The last six are legacy keys that only the
/// official SDKs still know (`f5first`, `f5last`, `fi`, `dobd`, `dobm`, `doby`); Graph
/// still accepts them, so they are normalised like their full counterparts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiField {
    /// `em`: e-mail address.
    Email,
    /// `ph`: phone number, E.164 digits without `+`.
    Phone,
    /// `fn`: first name.
    FirstName,
    /// `ln`: last name.
    LastName,
    /// `ge`: gender, `f` or `m`.
    Gender,
    /// `db`: date of birth, `YYYYMMDD`.
    DateOfBirth,
    /// `ct`: city.
    City,
    /// `st`: state or province.
    State,
    /// `zp`: postal code.
    Zip,
    /// `country`: ISO 3166-1 alpha-2, lower-case.
    Country,
    /// `external_id`: the advertiser's own user id.
    ExternalId,
    /// `f5first`: first five characters of the first name.
    FirstNameInitial5,
    /// `f5last`: first five characters of the last name.
    LastNameInitial5,
    /// `fi`: first initial.
    FirstInitial,
    /// `dobd`: day of birth, `DD`.
    DobDay,
    /// `dobm`: month of birth, `MM`.
    DobMonth,
    /// `doby`: year of birth, `YYYY`.
    DobYear,
}

impl PiiField {
    /// All fields, in wire order.
    pub const ALL: [PiiField; 17] = [
        Self::Email,
        Self::Phone,
        Self::FirstName,
        Self::LastName,
        Self::Gender,
        Self::DateOfBirth,
        Self::City,
        Self::State,
        Self::Zip,
        Self::Country,
        Self::ExternalId,
        Self::FirstNameInitial5,
        Self::LastNameInitial5,
        Self::FirstInitial,
        Self::DobDay,
        Self::DobMonth,
        Self::DobYear,
    ];

    /// The key used on the wire (`em`, `ph`, `fn`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Email => "em",
            Self::Phone => "ph",
            Self::FirstName => "fn",
            Self::LastName => "ln",
            Self::Gender => "ge",
            Self::DateOfBirth => "db",
            Self::City => "ct",
            Self::State => "st",
            Self::Zip => "zp",
            Self::Country => "country",
            Self::ExternalId => "external_id",
            Self::FirstNameInitial5 => "f5first",
            Self::LastNameInitial5 => "f5last",
            Self::FirstInitial => "fi",
            Self::DobDay => "dobd",
            Self::DobMonth => "dobm",
            Self::DobYear => "doby",
        }
    }
}

impl FromStr for PiiField {
    type Err = NormalizeError;

    /// Parses the exact wire key (case-sensitive, as on the wire).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or(NormalizeError::UnknownField)
    }
}

impl fmt::Display for PiiField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for f in PiiField::ALL {
            assert_eq!(f.as_str().parse::<PiiField>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        assert_eq!("EM".parse::<PiiField>(), Err(NormalizeError::UnknownField));
        assert_eq!(
            "client_ip_address".parse::<PiiField>(),
            Err(NormalizeError::UnknownField)
        );
    }
}
