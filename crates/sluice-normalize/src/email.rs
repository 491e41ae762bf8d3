//! `em`: e-mail addresses.
//!
//! Rule: trim (JS semantics), lower-case, then accept only an address of the shape
//! `local@domain` where
//!
//! * `local` is one or more dot-separated atoms of ASCII letters, digits and
//!   ``!#$%&'*+/=?^_`{|}~-`` (no leading, trailing or doubled dot);
//! * `domain` is two or more dot-separated labels of ASCII letters, digits and `-`,
//!   a label never starting or ending with `-`.
//!
//! Why: this is the param builder's validation (§5.3 "use the PB algorithms for `em`
//! validation"), and Meta's docs say only "trim and lowercase". The Python SDK's
//! `.+@.+\..+` keeps `user@@example.com`, `mailto:…`, `<…>`, inner spaces, a zero-width
//! space and a trailing dot; none of those can match a Meta account, and hashing them
//! hides a data-quality problem, so we refuse them (`invalid_email`). Internationalised
//! addresses (`josé@…`, `user@münchen.de` without punycode) are refused too, as by the
//! param builder. Deliberately *not* copied from the param builder: its regex has a typo
//! (`(:?\.` instead of `(?:\.`) that accepts a colon before a dot in the local part.

use crate::NormalizeError;
use crate::text::trim;

/// Normalise an e-mail address into `out` (cleared first). An empty result means
/// "nothing to send".
pub fn normalize_email(input: &str, out: &mut String) -> Result<(), NormalizeError> {
    out.clear();
    let value = trim(input);
    if value.is_empty() {
        return Ok(());
    }
    if !value.is_ascii() {
        // Every accepted character is ASCII; a non-ASCII one can only make it invalid
        // (lower-casing never turns a non-ASCII character into an accepted one except
        // KELVIN SIGN → `k`, which is not worth accepting).
        return Err(NormalizeError::InvalidEmail);
    }
    out.push_str(value);
    out.make_ascii_lowercase();
    if is_valid_address(out) {
        Ok(())
    } else {
        out.clear();
        Err(NormalizeError::InvalidEmail)
    }
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b)
}

fn is_valid_address(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext));
    let mut labels = 0usize;
    let domain_ok = domain.split('.').all(|label| {
        labels += 1;
        let bytes = label.as_bytes();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                first.is_ascii_alphanumeric()
                    && last.is_ascii_alphanumeric()
                    && bytes
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            }
            _ => false,
        }
    });
    local_ok && domain_ok && labels >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Result<String, NormalizeError> {
        let mut out = String::new();
        normalize_email(s, &mut out).map(|()| out)
    }

    #[test]
    fn accepts_and_lowercases() {
        assert_eq!(
            norm("  Jane.Doe@Example.COM ").as_deref(),
            Ok("jane.doe@example.com")
        );
        assert_eq!(norm("a@b.c").as_deref(), Ok("a@b.c"));
        assert_eq!(
            norm("o'neil+x@sub-d.example.io").as_deref(),
            Ok("o'neil+x@sub-d.example.io")
        );
        assert_eq!(norm(" \u{a0}").as_deref(), Ok(""));
    }

    #[test]
    fn refuses_malformed() {
        for bad in [
            "user@example",
            "user.example.com",
            "user@@example.com",
            "user name@example.com",
            "josé@example.com",
            "user@münchen.de",
            "mailto:john@example.com",
            "<john@example.com>",
            "john@example.com.",
            "john\u{200b}@example.com",
            ".john@example.com",
            "jo..hn@example.com",
            "john@-example.com",
            "john@example-.com",
            "a:.b@example.com",
            "@example.com",
            "john@",
        ] {
            assert_eq!(norm(bad), Err(NormalizeError::InvalidEmail), "{bad:?}");
        }
    }
}
