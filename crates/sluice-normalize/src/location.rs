//! `ct`, `st`, `zp`, `country`, and the [`CountryCode`] type.
//!
//! * **`ct`** — lower-case; drop whitespace, digits, controls, ASCII punctuation and
//!   symbols, and the Unicode punctuation/symbol blocks (general punctuation, currency,
//!   arrows and other symbols, CJK punctuation, full-width punctuation, emoji); keep every
//!   letter and combining mark. Why: Meta's docs say "no punctuation, no special
//!   characters, no spaces" *and* allow UTF-8; the param builder keeps only `[a-z0-9]`
//!   (`São Paulo` → `sopaulo`, `東京` → nothing), which destroys non-Latin cities, and
//!   the Python SDK keeps punctuation (`o'fallon`, `washington,dc`). §5.3: keep UTF-8
//!   letters. Digits go because the Python SDK drops them (`29 Palms` → `palms`) and the
//!   docs want letters only.
//! * **`st`** — the `ct` rule, then: two letters are kept as a code; a full US state
//!   name (when the country is unknown or `us`) or Canadian province name (unknown or
//!   `ca`) becomes its two-letter code through an *exact* table (`California` → `ca`,
//!   `Washington DC` → `dc`); anything else stays as normalised (`bayern`,
//!   `newsouthwales`, `îledefrance`). The param builder's substring guesses
//!   (`Kansas City` → `ks`, `Bayern` → `ba`) are deliberately not reproduced.
//! * **`zp`** — lower-case, keep letters and digits only (no whitespace, no dash), as the
//!   docs say (`M1 1AE` → `m11ae`). US ZIP+4 becomes the 5-digit ZIP when the value is
//!   clearly ZIP+4 (`94035-1234`) or the country is `us` and the value is 9 digits.
//!   **Deviation:** both references keep only the text before the first dash, which cuts
//!   non-US codes in half (`100-0001` → `100` in Japan, `01310-100` → `01310` in
//!   Brazil); we remove the dash instead (`1000001`, `01310100`). Fewer than two
//!   characters is refused (`invalid_postal_code`), as by the param builder.
//! * **`country`** — ISO 3166-1 alpha-2, lower-case, through an exact table of alpha-2
//!   and alpha-3 codes, English short and official names and a few common aliases and
//!   endonyms (`USA`, `United Kingdom`, `UK` → `gb`, `Deutschland` → `de`). Unknown
//!   values are refused (`invalid_country`) rather than guessed (the param builder turns
//!   `Great Britain` into `gr` and accepts `xx`).

use crate::NormalizeError;
use crate::tables::{self, countries, regions};
use crate::text::{LookupKey, filter_lower, trim};
use std::fmt;
use std::str::FromStr;

/// An assigned ISO 3166-1 alpha-2 country code, stored lower-case (`us`, `de`, `gb`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// United States.
    pub const US: CountryCode = CountryCode(*b"us");
    /// Canada.
    pub const CA: CountryCode = CountryCode(*b"ca");

    /// Accept only an assigned alpha-2 code (any case); no names, no aliases.
    pub fn from_alpha2(code: &str) -> Option<CountryCode> {
        let bytes = code.as_bytes();
        let &[a, b] = bytes else { return None };
        let lower = [a.to_ascii_lowercase(), b.to_ascii_lowercase()];
        tables::ALPHA2_SET
            .contains(&lower)
            .then_some(CountryCode(lower))
    }

    /// Read any spelling the `country` normaliser accepts (codes, names, aliases).
    pub fn parse(input: &str) -> Result<CountryCode, NormalizeError> {
        lookup_country(input)?.ok_or(NormalizeError::InvalidCountry)
    }

    /// The lower-case code.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The upper-case code, as phone metadata and most other systems spell it.
    pub fn upper(&self) -> [u8; 2] {
        [
            self.0[0].to_ascii_uppercase(),
            self.0[1].to_ascii_uppercase(),
        ]
    }
}

impl FromStr for CountryCode {
    type Err = NormalizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CountryCode::parse(s)
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryCode({})", self.as_str())
    }
}

/// `Ok(None)` for input without any letter (nothing to send).
fn lookup_country(input: &str) -> Result<Option<CountryCode>, NormalizeError> {
    let key = LookupKey::new(input);
    if key.is_empty() {
        return Ok(None);
    }
    // Most events carry the code itself, which maps to itself (a table test checks).
    if let Some(&[a, b]) = key.as_str().map(str::as_bytes)
        && tables::ALPHA2_SET.contains(&[a, b])
    {
        return Ok(Some(CountryCode([a, b])));
    }
    let code = key
        .as_str()
        .and_then(|k| tables::lookup(countries::COUNTRY_KEYS, k))
        .ok_or(NormalizeError::InvalidCountry)?;
    match code.as_bytes() {
        &[a, b] => Ok(Some(CountryCode([a, b]))),
        _ => Err(NormalizeError::InvalidCountry),
    }
}

/// Normalise a country into `out` (cleared first): its alpha-2 code, lower-case.
pub fn normalize_country(input: &str, out: &mut String) -> Result<(), NormalizeError> {
    out.clear();
    if let Some(code) = lookup_country(input)? {
        out.push_str(code.as_str());
    }
    Ok(())
}

/// Characters kept in cities and states: letters and combining marks; see module docs.
fn is_place_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    if c.is_alphabetic() {
        return true;
    }
    if c.is_whitespace() || c.is_control() || c.is_numeric() {
        return false;
    }
    !matches!(
        u32::from(c),
        0x00A0..=0x00BF        // Latin-1 punctuation and symbols
            | 0x00D7 | 0x00F7  // × ÷
            | 0x2000..=0x2BFF  // general punctuation … miscellaneous symbols and arrows
            | 0x3000..=0x303F  // CJK symbols and punctuation
            | 0xFE00..=0xFE6F  // variation selectors, vertical/compatibility/small forms
            | 0xFEFF           // byte-order mark
            | 0xFF00..=0xFF20  // full-width punctuation
            | 0xFF3B..=0xFF40
            | 0xFF5B..=0xFF65
            | 0x1F000..=0x1FAFF // emoji and pictographs
            | 0xE0000..=0xE007F // tags
    )
}

/// Normalise a city into `out` (cleared first).
pub fn normalize_city(input: &str, out: &mut String) {
    filter_lower(input, is_place_char, out);
}

/// Normalise a state or province into `out` (cleared first). `country` is the event's
/// (or the configured) country, which decides which name tables apply.
pub fn normalize_state(input: &str, country: Option<CountryCode>, out: &mut String) {
    normalize_city(input, out);
    if out.len() == 2 && out.is_ascii() {
        return;
    }
    let key = LookupKey::new(out);
    let Some(key) = key.as_str() else { return };
    let us = matches!(country, None | Some(CountryCode::US));
    let ca = matches!(country, None | Some(CountryCode::CA));
    let code = us
        .then(|| tables::lookup(regions::US_STATES, key))
        .flatten()
        .or_else(|| {
            ca.then(|| tables::lookup(regions::CA_PROVINCES, key))
                .flatten()
        });
    if let Some(code) = code {
        out.clear();
        out.push_str(code);
    }
}

/// True for `12345-6789` (spaces around the dash tolerated).
fn is_zip_plus4(value: &str) -> bool {
    let Some((five, four)) = value.split_once('-') else {
        return false;
    };
    let (five, four) = (five.trim_end(), four.trim_start());
    five.len() == 5
        && four.len() == 4
        && five.bytes().chain(four.bytes()).all(|b| b.is_ascii_digit())
}

/// Normalise a postal code into `out` (cleared first). `country` is the event's (or the
/// configured) country; `us` turns a 9-digit ZIP+4 into the 5-digit ZIP.
pub fn normalize_zip(
    input: &str,
    country: Option<CountryCode>,
    out: &mut String,
) -> Result<(), NormalizeError> {
    let value = trim(input);
    filter_lower(value, char::is_alphanumeric, out);
    if out.is_empty() {
        return Ok(());
    }
    let nine_digits = out.len() == 9 && out.bytes().all(|b| b.is_ascii_digit());
    if nine_digits && (country == Some(CountryCode::US) || is_zip_plus4(value)) {
        out.truncate(5);
    }
    if out.chars().nth(1).is_none() {
        out.clear();
        return Err(NormalizeError::InvalidPostalCode);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn country(s: &str) -> Result<String, NormalizeError> {
        let mut out = String::new();
        normalize_country(s, &mut out).map(|()| out)
    }

    #[test]
    fn countries() {
        for (input, want) in [
            ("US", "us"),
            (" fr ", "fr"),
            ("United States", "us"),
            ("U.S.A.", "us"),
            ("DEU", "de"),
            ("Deutschland", "de"),
            ("United Kingdom", "gb"),
            ("UK", "gb"),
            ("Great Britain", "gb"),
            ("Côte d'Ivoire", "ci"),
            ("Cote d'Ivoire", "ci"),
            ("Co\u{302}te d'Ivoire", "ci"),
            ("Österreich", "at"),
            ("Korea, Republic of", "kr"),
            ("Republic of Korea", "kr"),
            ("Bolivia", "bo"),
            ("Türkiye", "tr"),
            ("ΕΛΛΆΣ", "gr"),
            ("日本", "jp"),
        ] {
            assert_eq!(country(input).as_deref(), Ok(want), "{input}");
        }
        for bad in [
            "XX",
            "Korea",
            "Atlantis",
            "62a14e44f765419d10fea99367361a727c12365e",
        ] {
            assert_eq!(country(bad), Err(NormalizeError::InvalidCountry), "{bad}");
        }
        assert_eq!(country(" . ").as_deref(), Ok(""));
        assert_eq!(
            CountryCode::from_alpha2("DE")
                .map(|c| c.to_string())
                .as_deref(),
            Some("de")
        );
        assert_eq!(CountryCode::from_alpha2("UK"), None);
        assert_eq!(CountryCode::from_alpha2("é"), None);
    }

    #[test]
    fn table_keys_are_fixed_points_of_the_key_rule() {
        for (key, _) in countries::COUNTRY_KEYS
            .iter()
            .chain(regions::US_STATES)
            .chain(regions::CA_PROVINCES)
        {
            assert_eq!(LookupKey::new(key).as_str(), Some(*key));
        }
    }

    #[test]
    fn cities() {
        let mut out = String::new();
        for (input, want) in [
            ("São Paulo", "sãopaulo"),
            ("Washington, D.C.", "washingtondc"),
            ("O'Fallon", "ofallon"),
            ("29 Palms", "palms"),
            ("東京", "東京"),
            ("Москва", "москва"),
            ("Zoe\u{308}", "zoe\u{308}"),
            ("Saint‑Étienne", "saintétienne"),
            ("🏙️ NYC", "nyc"),
            ("佐々木", "佐々木"),
        ] {
            normalize_city(input, &mut out);
            assert_eq!(out, want, "{input}");
        }
    }

    #[test]
    fn states() {
        let mut out = String::new();
        for (input, country, want) in [
            ("California", None, "ca"),
            ("N.Y.", None, "ny"),
            ("West Virginia State", None, "westvirginiastate"),
            ("Kansas City", None, "kansascity"),
            ("Ontario", None, "on"),
            ("Ontario", Some(CountryCode::US), "ontario"),
            ("Québec", None, "qc"),
            ("Que\u{301}bec", Some(CountryCode::CA), "qc"),
            ("Georgia", Some(CountryCode::US), "ga"),
            ("Bayern", None, "bayern"),
            ("Washington DC", None, "dc"),
            ("Île-de-France", None, "îledefrance"),
        ] {
            normalize_state(input, country, &mut out);
            assert_eq!(out, want, "{input}");
        }
    }

    #[test]
    fn zips() {
        let us = Some(CountryCode::US);
        for (input, country, want) in [
            ("94035-1234", None, "94035"),
            ("94035 - 1234", None, "94035"),
            ("940351234", None, "940351234"),
            ("940351234", us, "94035"),
            ("M1 1AE", None, "m11ae"),
            ("D-10115", None, "d10115"),
            ("100-0001", None, "1000001"),
            ("01310-100", None, "01310100"),
            ("İ1", None, "i1"),
            ("  ", None, ""),
        ] {
            let mut out = String::new();
            assert_eq!(normalize_zip(input, country, &mut out), Ok(()), "{input}");
            assert_eq!(out, want, "{input}");
        }
        let mut out = String::new();
        assert_eq!(
            normalize_zip("1", None, &mut out),
            Err(NormalizeError::InvalidPostalCode)
        );
        assert_eq!(
            normalize_zip("-é-", None, &mut out),
            Err(NormalizeError::InvalidPostalCode)
        );
    }
}
