//! Consent cookies of the two most used consent banners, and the `Cookie` header.
//!
//! - OneTrust `OptanonConsent`: a URL-encoded query string; consent is in
//!   `groups=C0001:1,C0002:0,…` (group id `:` 1/0). `isGpcEnabled=1` means OneTrust
//!   itself saw GPC. Other keys (`consentId`, `datestamp`, …) are ignored and never
//!   kept: `consentId` is a per-visitor identifier.
//! - Cookiebot `CookieConsent`: a URL-encoded JavaScript-object literal,
//!   `{stamp:'…',necessary:true,preferences:false,statistics:true,marketing:false,
//!   method:'explicit',ver:1,…}`; the special value `-1` means Cookiebot decided
//!   the visitor's region needs no consent.
//!
//! Parsers return an [`ErrorCode`] on anything they do not understand; they do
//! not guess. Input sizes are bounded before any work.

use crate::signals::{CookiebotConsent, ErrorCode, OneTrustConsent, is_identifier};
use std::collections::BTreeMap;

pub const EUCONSENT_V2: &str = "euconsent-v2";
pub const ONETRUST: &str = "OptanonConsent";
pub const COOKIEBOT: &str = "CookieConsent";

/// Longest consent-cookie value parsed; real ones are well under 2 KB.
pub const MAX_COOKIE_VALUE_LEN: usize = 8 * 1024;
/// Most OneTrust groups or Cookiebot keys accepted.
pub const MAX_GROUPS: usize = 64;

/// The values of every cookie named `name` in a `Cookie` header (exact,
/// case-sensitive name match, surrounding double quotes removed).
pub fn values<'a>(header: &'a str, name: &str) -> Vec<&'a str> {
    header
        .split(';')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| {
                let v = v.trim();
                v.strip_prefix('"')
                    .and_then(|x| x.strip_suffix('"'))
                    .unwrap_or(v)
            })
        })
        .collect()
}

/// The one value of a consent cookie. The same cookie set for two paths or
/// domains arrives twice; identical copies are fine, different ones are a
/// conflict (one of them is stale and we cannot tell which).
pub fn single_value<'a>(header: &'a str, name: &str) -> Result<Option<&'a str>, ErrorCode> {
    let all = values(header, name);
    match all.split_first() {
        None => Ok(None),
        Some((first, rest)) if rest.iter().all(|v| v == first) => Ok(Some(first)),
        Some(_) => Err(ErrorCode::CookieConflict),
    }
}

/// A parsed `OptanonConsent` cookie.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OneTrustParsed {
    pub consent: OneTrustConsent,
    /// `isGpcEnabled=1`: OneTrust saw the browser's GPC signal.
    pub gpc: bool,
}

pub fn parse_onetrust(value: &str) -> Result<OneTrustParsed, ErrorCode> {
    if value.len() > MAX_COOKIE_VALUE_LEN {
        return Err(ErrorCode::OnetrustInvalid);
    }
    let mut groups_value: Option<String> = None;
    let mut gpc = false;
    for (k, v) in form_urlencoded::parse(value.as_bytes()) {
        match k.as_ref() {
            "groups" if groups_value.is_none() => groups_value = Some(v.into_owned()),
            "groups" => return Err(ErrorCode::OnetrustInvalid),
            "isGpcEnabled" => gpc = v.trim() == "1",
            _ => {}
        }
    }
    let groups_value = groups_value.ok_or(ErrorCode::OnetrustGroupsMissing)?;

    let mut groups = BTreeMap::new();
    for entry in groups_value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (id, flag) = entry
            .split_once(':')
            .ok_or(ErrorCode::OnetrustGroupInvalid)?;
        let id = id.trim();
        if !is_identifier(id) {
            return Err(ErrorCode::OnetrustGroupInvalid);
        }
        let flag = match flag.trim() {
            "1" => true,
            "0" => false,
            _ => return Err(ErrorCode::OnetrustGroupInvalid),
        };
        if let Some(previous) = groups.insert(id.to_owned(), flag)
            && previous != flag
        {
            return Err(ErrorCode::OnetrustGroupInvalid);
        }
        if groups.len() > MAX_GROUPS {
            return Err(ErrorCode::OnetrustInvalid);
        }
    }
    Ok(OneTrustParsed {
        consent: OneTrustConsent { groups },
        gpc,
    })
}

pub fn parse_cookiebot(value: &str) -> Result<CookiebotConsent, ErrorCode> {
    if value.len() > MAX_COOKIE_VALUE_LEN {
        return Err(ErrorCode::CookiebotInvalid);
    }
    let decoded = percent_decode(value).ok_or(ErrorCode::CookiebotInvalid)?;
    let text = decoded.trim();
    if text == "-1" {
        return Ok(CookiebotConsent {
            categories: BTreeMap::new(),
            consent_not_required: true,
        });
    }
    let body = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or(ErrorCode::CookiebotInvalid)?;

    let mut categories = BTreeMap::new();
    let mut keys = 0usize;
    for pair in split_outside_quotes(body)? {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        keys += 1;
        if keys > MAX_GROUPS {
            return Err(ErrorCode::CookiebotInvalid);
        }
        let (key, val) = pair.split_once(':').ok_or(ErrorCode::CookiebotInvalid)?;
        let key = unquote(key.trim()).to_ascii_lowercase();
        if !is_identifier(&key) {
            return Err(ErrorCode::CookiebotInvalid);
        }
        let flag = match val.trim() {
            "true" => Some(true),
            "false" => Some(false),
            v if is_quoted(v) || is_number(v) => None,
            _ => return Err(ErrorCode::CookiebotInvalid),
        };
        if let Some(flag) = flag
            && let Some(previous) = categories.insert(key, flag)
            && previous != flag
        {
            return Err(ErrorCode::CookiebotInvalid);
        }
    }
    if categories.is_empty() {
        return Err(ErrorCode::CookiebotInvalid);
    }
    Ok(CookiebotConsent {
        categories,
        consent_not_required: false,
    })
}

/// Splits on commas that are not inside single or double quotes.
fn split_outside_quotes(body: &str) -> Result<Vec<&str>, ErrorCode> {
    let mut parts = Vec::new();
    let mut quote: Option<char> = None;
    let mut start = 0;
    for (i, c) in body.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, ',') => {
                parts.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err(ErrorCode::CookiebotInvalid);
    }
    parts.push(&body[start..]);
    Ok(parts)
}

fn is_quoted(v: &str) -> bool {
    v.len() >= 2
        && ((v.starts_with('\'') && v.ends_with('\'')) || (v.starts_with('"') && v.ends_with('"')))
}

fn unquote(v: &str) -> &str {
    if is_quoted(v) { &v[1..v.len() - 1] } else { v }
}

fn is_number(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// `%XX` decoding (as `encodeURIComponent` produces; `+` stays `+`). `None` on a
/// broken escape or a result that is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            out.push((hi << 4) | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A typical OneTrust cookie value (made up, same shape as real ones).
    const ONETRUST_VALUE: &str = "isGpcEnabled=0&datestamp=Mon+Jan+08+2024+10%3A00%3A00+GMT%2B0100&version=202310.1.0&isIABGlobal=false&hosts=&consentId=0f1e2d3c-aaaa-bbbb-cccc-000000000000&interactionCount=1&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A0%2CC0003%3A1%2CC0004%3A1&AwaitingReconsent=false&geolocation=DE%3BBY";

    /// A typical Cookiebot cookie value (made up, same shape as real ones).
    const COOKIEBOT_VALUE: &str = "{stamp:%27AbCdEf0123456789AbCdEf0123456789AbCdEf0123456789AbCdEf==%27%2Cnecessary:true%2Cpreferences:false%2Cstatistics:true%2Cmarketing:false%2Cmethod:%27explicit%27%2Cver:3%2Cutc:1704700000000%2Cregion:%27de%27}";

    #[test]
    fn cookie_header_values() {
        let h = "a=1; euconsent-v2=CPxyz; OptanonConsent=\"x=1\"; b";
        assert_eq!(values(h, "euconsent-v2"), vec!["CPxyz"]);
        assert_eq!(values(h, "OptanonConsent"), vec!["x=1"]);
        assert_eq!(single_value(h, "missing"), Ok(None));
        assert_eq!(single_value("c=1; c=1", "c"), Ok(Some("1")));
        assert_eq!(
            single_value("c=1; c=2", "c"),
            Err(ErrorCode::CookieConflict)
        );
    }

    #[test]
    fn onetrust_groups() {
        let p = parse_onetrust(ONETRUST_VALUE).unwrap();
        assert!(!p.gpc);
        let g = &p.consent.groups;
        assert_eq!(g.len(), 4);
        assert_eq!(g.get("C0002"), Some(&false));
        assert_eq!(g.get("C0004"), Some(&true));
        let with_gpc = ONETRUST_VALUE.replace("isGpcEnabled=0", "isGpcEnabled=1");
        assert!(parse_onetrust(&with_gpc).unwrap().gpc);
    }

    #[test]
    fn onetrust_malformed() {
        assert_eq!(
            parse_onetrust("isGpcEnabled=0&version=1"),
            Err(ErrorCode::OnetrustGroupsMissing)
        );
        for bad in [
            "groups=C0001%3A2",
            "groups=C0001",
            "groups=C0001%3A1%2CC0001%3A0",
            "groups=%3Cb%3E%3A1",
            "groups=C0001:1&groups=C0001:1",
        ] {
            assert!(parse_onetrust(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_onetrust(&"x".repeat(MAX_COOKIE_VALUE_LEN + 1)),
            Err(ErrorCode::OnetrustInvalid)
        );
    }

    #[test]
    fn cookiebot_categories() {
        let c = parse_cookiebot(COOKIEBOT_VALUE).unwrap();
        assert!(!c.consent_not_required);
        assert_eq!(c.categories.get("necessary"), Some(&true));
        assert_eq!(c.categories.get("marketing"), Some(&false));
        assert_eq!(c.categories.get("statistics"), Some(&true));
        assert_eq!(c.categories.len(), 4);
        let decoded = percent_decode(COOKIEBOT_VALUE).unwrap();
        assert_eq!(parse_cookiebot(&decoded).unwrap(), c);
        let not_required = parse_cookiebot("-1").unwrap();
        assert!(not_required.consent_not_required && not_required.categories.is_empty());
    }

    #[test]
    fn cookiebot_malformed() {
        for bad in [
            "",
            "{}",
            "{marketing:maybe}",
            "{marketing:true,marketing:false}",
            "{stamp:'unterminated,marketing:true}",
            "marketing:true",
            "%E0%A4%A",
            "{mark eting:true}",
        ] {
            assert_eq!(
                parse_cookiebot(bad),
                Err(ErrorCode::CookiebotInvalid),
                "{bad}"
            );
        }
    }
}
