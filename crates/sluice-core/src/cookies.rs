//! The `_fbp` and `_fbc` cookie formats (capi-reference.md §6).
//!
//! `fb.{subdomain_index}.{creation_time_ms}.{random|fbclid}` with an optional
//! fifth part, the param builder's appendix. Values are forwarded byte for byte:
//! parsing only checks them, it never rewrites them (`fbclid` is case-sensitive).

use std::fmt;

/// Which cookie a value claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieKind {
    Fbp,
    Fbc,
}

/// Why a cookie value is malformed (stable `code()`s, never the value itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieError {
    WrongPartCount,
    BadPrefix,
    BadSubdomainIndex,
    BadCreationTime,
    EmptyPayload,
    BadRandom,
    BadAppendix,
}

impl CookieError {
    pub fn code(self) -> &'static str {
        match self {
            CookieError::WrongPartCount => "wrong_part_count",
            CookieError::BadPrefix => "bad_prefix",
            CookieError::BadSubdomainIndex => "bad_subdomain_index",
            CookieError::BadCreationTime => "bad_creation_time",
            CookieError::EmptyPayload => "empty_payload",
            CookieError::BadRandom => "bad_random",
            CookieError::BadAppendix => "bad_appendix",
        }
    }
}

impl fmt::Display for CookieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            CookieError::WrongPartCount => {
                "expected fb.<index>.<time_ms>.<value> (4 or 5 dot-separated parts)"
            }
            CookieError::BadPrefix => "must start with \"fb.\"",
            CookieError::BadSubdomainIndex => "subdomain index must be a small number (0-9)",
            CookieError::BadCreationTime => "creation time must be Unix milliseconds (13 digits)",
            CookieError::EmptyPayload => "the value after the creation time is empty",
            CookieError::BadRandom => "the fbp random part must be digits",
            CookieError::BadAppendix => {
                "the fifth part must be a param-builder appendix (2 or 8 characters)"
            }
        };
        f.write_str(text)
    }
}

/// The parts of a well-formed cookie value, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FbCookie<'a> {
    pub subdomain_index: u8,
    pub creation_time_ms: i64,
    /// The random number (`fbp`) or the `fbclid` (`fbc`).
    pub payload: &'a str,
    pub appendix: Option<&'a str>,
}

const LEGACY_TOKENS: [&str; 6] = ["AQ", "Ag", "Aw", "BA", "BQ", "Bg"];

/// Parses and checks an `fbp` or `fbc` value.
pub fn parse(kind: CookieKind, value: &str) -> Result<FbCookie<'_>, CookieError> {
    let parts: Vec<&str> = value.split('.').collect();
    if parts.len() != 4 && parts.len() != 5 {
        return Err(CookieError::WrongPartCount);
    }
    if parts[0] != "fb" {
        return Err(CookieError::BadPrefix);
    }
    let subdomain_index = match parts[1].parse::<u8>() {
        Ok(i) if i <= 9 && parts[1].len() == 1 => i,
        _ => return Err(CookieError::BadSubdomainIndex),
    };
    // Meta wants milliseconds; a 10-digit seconds value is the classic mistake.
    let time = parts[2];
    if time.len() != 13 || !time.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CookieError::BadCreationTime);
    }
    let creation_time_ms = time
        .parse::<i64>()
        .map_err(|_| CookieError::BadCreationTime)?;
    let payload = parts[3];
    if payload.is_empty() {
        return Err(CookieError::EmptyPayload);
    }
    if kind == CookieKind::Fbp && !payload.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CookieError::BadRandom);
    }
    let appendix = match parts.get(4) {
        None => None,
        Some(a) if LEGACY_TOKENS.contains(a) || a.len() == 8 => Some(*a),
        Some(_) => return Err(CookieError::BadAppendix),
    };
    Ok(FbCookie {
        subdomain_index,
        creation_time_ms,
        payload,
        appendix,
    })
}

/// Builds an `fbc` from a click id seen in a landing URL. `fbclid` is kept
/// exactly as given. `subdomain_index` is 1 for `example.com`, 2 for
/// `www.example.com`; Meta suggests 1 when generating server-side.
pub fn fbc_from_fbclid(fbclid: &str, subdomain_index: u8, now_ms: i64) -> String {
    format!("fb.{}.{}.{}", subdomain_index.min(9), now_ms, fbclid)
}

/// Mints a new `fbp`; `random` is reduced to the pixel's 31-bit range.
pub fn mint_fbp(subdomain_index: u8, now_ms: i64, random: u32) -> String {
    format!(
        "fb.{}.{}.{}",
        subdomain_index.min(9),
        now_ms,
        random & 0x7fff_ffff
    )
}

/// The subdomain index of a cookie domain: the number of labels minus one
/// (`com` = 0, `example.com` = 1, `www.example.com` = 2); IP hosts are 0.
pub fn subdomain_index(cookie_domain: &str) -> u8 {
    let domain = cookie_domain.trim_start_matches('.');
    if domain.parse::<std::net::IpAddr>().is_ok() || domain.starts_with('[') {
        return 0;
    }
    let labels = domain.split('.').filter(|l| !l.is_empty()).count();
    u8::try_from(labels.saturating_sub(1)).unwrap_or(9).min(9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reference_values() {
        let fbp = parse(CookieKind::Fbp, "fb.1.1795859000123.1234567890").unwrap();
        assert_eq!(fbp.subdomain_index, 1);
        assert_eq!(fbp.creation_time_ms, 1_795_859_000_123);
        let fbc = parse(CookieKind::Fbc, "fb.1.1795858000456.IwAR0abcDEF.AQQCAQMC").unwrap();
        assert_eq!(fbc.payload, "IwAR0abcDEF");
        assert_eq!(fbc.appendix, Some("AQQCAQMC"));
    }

    #[test]
    fn rejects_malformed_values() {
        let cases = [
            ("fb.1.1795859000123", CookieError::WrongPartCount),
            ("fx.1.1795859000123.1", CookieError::BadPrefix),
            ("fb.x.1795859000123.1", CookieError::BadSubdomainIndex),
            ("fb.1.1795859000.1", CookieError::BadCreationTime),
            ("fb.1.1795859000123.", CookieError::EmptyPayload),
            ("fb.1.1795859000123.abc", CookieError::BadRandom),
            ("fb.1.1795859000123.1.XYZ", CookieError::BadAppendix),
        ];
        for (value, want) in cases {
            assert_eq!(parse(CookieKind::Fbp, value).unwrap_err(), want, "{value}");
        }
    }

    #[test]
    fn builds_and_mints() {
        let fbc = fbc_from_fbclid("IwAR0aBc", 1, 1_795_858_000_456);
        assert_eq!(fbc, "fb.1.1795858000456.IwAR0aBc");
        assert!(parse(CookieKind::Fbc, &fbc).is_ok());
        let fbp = mint_fbp(2, 1_795_858_000_456, u32::MAX);
        assert_eq!(fbp, "fb.2.1795858000456.2147483647");
        assert!(parse(CookieKind::Fbp, &fbp).is_ok());
        assert_eq!(subdomain_index("www.example.com"), 2);
        assert_eq!(subdomain_index(".example.com"), 1);
        assert_eq!(subdomain_index("127.0.0.1"), 0);
    }
}
