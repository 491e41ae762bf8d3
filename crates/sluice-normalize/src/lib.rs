//! PII normalisation and SHA-256 hashing for Meta's Conversions API.
//!
//! Meta matches people on SHA-256 hashes of *normalised* contact data; a value
//! normalised differently from Meta's expectation hashes to something that matches
//! nobody. This crate implements Meta's documented rules for every hashed `user_data`
//! key and, where Meta's own libraries disagree (the Python SDK and the param builder,
//! `spec/capi-reference.md` §5.3), the "recommended gateway behaviour". Each field
//! module's header says what it does and why; the test `tests/vectors.rs` checks all of
//! Meta's reference vectors and lists every deliberate difference with its reason.
//!
//! Pure and allocation-free on the hot path: [`hash_field`] writes into a caller-owned
//! scratch `String` and returns the digest as bytes; [`HexDigest`] renders hex on the
//! stack. No function reads the clock or the environment (the year is in
//! [`NormalizeOptions`]). Errors never contain the input ([`NormalizeError`]).
//!
//! ```
//! use sluice_normalize::{hash_field, FieldHash, NormalizeOptions, PiiField};
//!
//! let opts = NormalizeOptions::new(2026);
//! let mut scratch = String::new();
//! let hash = hash_field(PiiField::Email, " John_Smith@Gmail.com ", &opts, &mut scratch).unwrap();
//! assert_eq!(
//!     hash.hex().unwrap().as_str(),
//!     "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
//! );
//! ```

mod currency;
mod date;
mod email;
mod error;
mod field;
mod gender;
mod hash;
mod location;
mod name;
mod options;
mod phone;
#[cfg(test)]
mod phone_meta;
mod prehashed;
mod tables;
mod text;
mod user_data;

pub use currency::{CurrencyCode, normalize_currency};
pub use date::{
    MIN_YEAR, normalize_date_of_birth, normalize_dob_day, normalize_dob_month, normalize_dob_year,
};
pub use email::normalize_email;
pub use error::NormalizeError;
pub use field::PiiField;
pub use gender::normalize_gender;
pub use hash::{HexDigest, sha256, sha256_hex};
pub use location::{
    CountryCode, normalize_city, normalize_country, normalize_state, normalize_zip,
};
pub use name::{normalize_external_id, normalize_name, normalize_name_prefix};
pub use options::{NormalizeOptions, current_year_utc};
pub use phone::normalize_phone;
pub use user_data::{FieldRejection, hash_user_data, hash_user_data_with};

use prehashed::Prehashed;

/// Longest accepted value, in bytes after trimming. Longer input is refused
/// ([`NormalizeError::TooLong`]) before any work, which bounds the cost of a request
/// and keeps pathological input away from the phone parser.
pub const MAX_INPUT_BYTES: usize = 1024;

/// Result of [`normalize_into`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalized<'a> {
    /// Normalised text, ready to hash (never empty). Borrowed from the output buffer.
    Text(&'a str),
    /// The input already was a SHA-256 hex digest (any case); these are its bytes.
    Sha256([u8; 32]),
    /// The input already was an MD5 hex digest (any case); these are its bytes.
    Md5([u8; 16]),
    /// A param-builder value `<hex>.<appendix>`, to forward byte-for-byte (trimmed).
    Verbatim(&'a str),
    /// Nothing left: the field must be omitted, never hashed.
    Empty,
}

/// Result of [`hash_field`]: what goes on the wire for one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldHash<'a> {
    /// SHA-256 of the normalised value, or an input that was a SHA-256 digest already.
    Sha256([u8; 32]),
    /// An input that was an MD5 digest already (passed through, as the SDKs do).
    Md5([u8; 16]),
    /// A param-builder value, forwarded untouched; borrowed from the input.
    Verbatim(&'a str),
    /// Nothing to send.
    Empty,
}

impl FieldHash<'_> {
    /// Lower-case hex of a digest; `None` for [`FieldHash::Verbatim`] and
    /// [`FieldHash::Empty`].
    pub fn hex(&self) -> Option<HexDigest> {
        match self {
            FieldHash::Sha256(d) => Some(HexDigest::new(d)),
            FieldHash::Md5(d) => Some(HexDigest::new(d)),
            FieldHash::Verbatim(_) | FieldHash::Empty => None,
        }
    }

    /// True for [`FieldHash::Empty`].
    pub fn is_empty(&self) -> bool {
        matches!(self, FieldHash::Empty)
    }

    /// Append the wire text (hex, or the verbatim value) to `out`; nothing for `Empty`.
    pub fn write_wire(&self, out: &mut String) {
        match self {
            FieldHash::Verbatim(v) => out.push_str(v),
            FieldHash::Empty => {}
            FieldHash::Sha256(_) | FieldHash::Md5(_) => {
                if let Some(hex) = self.hex() {
                    out.push_str(hex.as_str());
                }
            }
        }
    }
}

/// Normalisation outcome where the text lives in the caller's buffer.
enum Outcome<'i> {
    Text,
    Pre(Prehashed<'i>),
    Empty,
}

fn normalize_parts<'i>(
    field: PiiField,
    input: &'i str,
    opts: &NormalizeOptions,
    out: &mut String,
) -> Result<Outcome<'i>, NormalizeError> {
    out.clear();
    let value = text::trim(input);
    if value.len() > MAX_INPUT_BYTES {
        return Err(NormalizeError::TooLong);
    }
    if value.is_empty() {
        return Ok(Outcome::Empty);
    }
    if let Some(pre) = prehashed::detect(value) {
        return Ok(Outcome::Pre(pre));
    }
    match field {
        PiiField::Email => normalize_email(value, out)?,
        PiiField::Phone => normalize_phone(value, opts.region(), out)?,
        PiiField::FirstName | PiiField::LastName => normalize_name(value, out),
        PiiField::Gender => normalize_gender(value, out)?,
        PiiField::DateOfBirth => normalize_date_of_birth(value, opts.current_year, out)?,
        PiiField::City => normalize_city(value, out),
        PiiField::State => normalize_state(value, opts.region(), out),
        PiiField::Zip => normalize_zip(value, opts.region(), out)?,
        PiiField::Country => normalize_country(value, out)?,
        PiiField::ExternalId => normalize_external_id(value, out),
        PiiField::FirstNameInitial5 | PiiField::LastNameInitial5 => {
            normalize_name_prefix(value, 5, out);
        }
        PiiField::FirstInitial => normalize_name_prefix(value, 1, out),
        PiiField::DobDay => normalize_dob_day(value, out)?,
        PiiField::DobMonth => normalize_dob_month(value, out)?,
        PiiField::DobYear => normalize_dob_year(value, opts.current_year, out)?,
    }
    Ok(if out.is_empty() {
        Outcome::Empty
    } else {
        Outcome::Text
    })
}

/// Normalise one value of `field` into `out` (cleared first) without hashing it.
///
/// Order: trim; refuse over-long input; empty → [`Normalized::Empty`]; an existing
/// SHA-256/MD5 digest or param-builder value passes through (see `prehashed`); else the
/// field's rule. A value that normalises to nothing is [`Normalized::Empty`] (omit the
/// field); a value that cannot be a valid one is an error.
pub fn normalize_into<'a>(
    field: PiiField,
    input: &'a str,
    opts: &NormalizeOptions,
    out: &'a mut String,
) -> Result<Normalized<'a>, NormalizeError> {
    Ok(match normalize_parts(field, input, opts, out)? {
        Outcome::Text => Normalized::Text(out.as_str()),
        Outcome::Pre(Prehashed::Sha256(d)) => Normalized::Sha256(d),
        Outcome::Pre(Prehashed::Md5(d)) => Normalized::Md5(d),
        Outcome::Pre(Prehashed::Verbatim(v)) => Normalized::Verbatim(v),
        Outcome::Empty => Normalized::Empty,
    })
}

/// Normalise and hash one value of `field`. `scratch` is a reusable buffer (its
/// content afterwards is unspecified); no allocation happens once it has grown to the
/// size of the largest value.
pub fn hash_field<'i>(
    field: PiiField,
    input: &'i str,
    opts: &NormalizeOptions,
    scratch: &mut String,
) -> Result<FieldHash<'i>, NormalizeError> {
    Ok(match normalize_parts(field, input, opts, scratch)? {
        Outcome::Text => FieldHash::Sha256(sha256(scratch)),
        Outcome::Pre(Prehashed::Sha256(d)) => FieldHash::Sha256(d),
        Outcome::Pre(Prehashed::Md5(d)) => FieldHash::Md5(d),
        Outcome::Pre(Prehashed::Verbatim(v)) => FieldHash::Verbatim(v),
        Outcome::Empty => FieldHash::Empty,
    })
}

/// Convenience for tools and tests (allocates): the wire text of one value, `None`
/// when there is nothing to send.
pub fn hash_to_wire(
    field: PiiField,
    input: &str,
    opts: &NormalizeOptions,
) -> Result<Option<String>, NormalizeError> {
    let mut scratch = String::new();
    let hash = hash_field(field, input, opts, &mut scratch)?;
    if hash.is_empty() {
        return Ok(None);
    }
    let mut out = String::with_capacity(64);
    hash.write_wire(&mut out);
    Ok(Some(out))
}

/// Pay the fast paths' one-time costs up front (tables and the common phone rules; a
/// few milliseconds). Call once at start-up.
pub fn warm_up() {
    phone::warm_up();
}

/// Load `phonenumber`'s database now (~70 ms and ~5 MB) instead of on the first phone
/// number that needs the full parser (unusual formats, trunk prefixes, `011` without a
/// region). For services that prefer memory to a one-time delay, skip it.
pub fn warm_up_parser() {
    phone::warm_up_parser();
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f";

    #[test]
    fn dispatch_order() {
        let opts = NormalizeOptions::new(2026);
        let mut out = String::new();
        let long = "a".repeat(MAX_INPUT_BYTES + 1);
        assert_eq!(
            normalize_into(PiiField::FirstName, &long, &opts, &mut out),
            Err(NormalizeError::TooLong)
        );
        let padded = format!(" {long} ");
        assert_eq!(
            normalize_into(
                PiiField::FirstName,
                &padded[..MAX_INPUT_BYTES + 1],
                &opts,
                &mut out
            ),
            Ok(Normalized::Text(&long[..MAX_INPUT_BYTES]))
        );
        let pb = format!("  {}.AQQCAQMC\n", H.to_uppercase());
        assert_eq!(
            normalize_into(PiiField::City, &pb, &opts, &mut out),
            Ok(Normalized::Verbatim(pb.trim()))
        );
        assert!(matches!(
            normalize_into(PiiField::Country, H, &opts, &mut out),
            Ok(Normalized::Sha256(_))
        ));
        assert_eq!(
            normalize_into(PiiField::Email, "\u{feff} ", &opts, &mut out),
            Ok(Normalized::Empty)
        );
        assert_eq!(
            normalize_into(PiiField::City, "1234", &opts, &mut out),
            Ok(Normalized::Empty)
        );
    }

    #[test]
    fn wire_forms() {
        let opts = NormalizeOptions::new(2026);
        assert_eq!(
            hash_to_wire(PiiField::Country, "United States", &opts)
                .unwrap()
                .as_deref(),
            Some("79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621")
        );
        assert_eq!(
            hash_to_wire(PiiField::Email, &H.to_uppercase(), &opts)
                .unwrap()
                .as_deref(),
            Some(H)
        );
        assert_eq!(hash_to_wire(PiiField::Zip, " ", &opts), Ok(None));
        assert_eq!(
            hash_to_wire(PiiField::Gender, "x", &opts),
            Err(NormalizeError::InvalidGender)
        );
        warm_up();
    }
}
