//! Recognising values that were hashed before they reached us.
//!
//! Rules (capi-reference §5.1), applied to the trimmed value before any field rule:
//!
//! * exactly 64 or 32 hex digits, any case → an existing SHA-256 / MD5 digest; it is
//!   passed through (on the wire: lower-case hex), never re-hashed. This is what the
//!   Python SDK, the Node SDK and the param builder all do.
//! * `<64 or 32 hex>.<appendix>` → a value produced by Meta's param builder. Meta says
//!   such values are case-sensitive and must be forwarded untouched, so it is returned
//!   byte-for-byte (only the surrounding whitespace, which the param builder also
//!   trims, is not part of it). The appendix is a legacy two-character language token
//!   (`AQ Ag Aw BA BQ Bg`) or an 8-character v2 appendix.
//!
//!   **Decision:** the param builder accepts *any* 8 characters as a v2 appendix; we
//!   require 8 base64url characters, which is what a v2 appendix always is (base64url
//!   of 6 bytes). Forwarding arbitrary text verbatim would let raw data (`…f62f.john@x.c`)
//!   leave unhashed.
//! * A 40-hex SHA-1 or a 63-hex string is not a hash for anyone; it is normalised as
//!   ordinary text.

/// An input that is already hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prehashed<'a> {
    Sha256([u8; 32]),
    Md5([u8; 16]),
    Verbatim(&'a str),
}

const LEGACY_TOKENS: [&str; 6] = ["AQ", "Ag", "Aw", "BA", "BQ", "Bg"];

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Classify an already trimmed value.
pub(crate) fn detect(trimmed: &str) -> Option<Prehashed<'_>> {
    match trimmed.len() {
        64 => {
            let mut out = [0u8; 32];
            return const_hex::decode_to_slice(trimmed, &mut out)
                .ok()
                .map(|()| Prehashed::Sha256(out));
        }
        32 => {
            let mut out = [0u8; 16];
            return const_hex::decode_to_slice(trimmed, &mut out)
                .ok()
                .map(|()| Prehashed::Md5(out));
        }
        _ => {}
    }
    let (digest, appendix) = trimmed.rsplit_once('.')?;
    if !matches!(digest.len(), 64 | 32) || !is_hex(digest) {
        return None;
    }
    let known =
        LEGACY_TOKENS.contains(&appendix) || (appendix.len() == 8 && is_base64url(appendix));
    known.then_some(Prehashed::Verbatim(trimmed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H64: &str = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f";

    #[test]
    fn digests() {
        assert!(matches!(detect(H64), Some(Prehashed::Sha256(b)) if b[0] == 0x62));
        assert!(matches!(
            detect(&H64.to_uppercase()),
            Some(Prehashed::Sha256(_))
        ));
        assert!(matches!(
            detect("5F4DCC3B5AA765D61D8327DEB882CF99"),
            Some(Prehashed::Md5(_))
        ));
        assert_eq!(detect(&H64[..63]), None);
        assert_eq!(detect(&H64[..40]), None);
        assert_eq!(detect(&format!("{}g", &H64[..63])), None);
    }

    #[test]
    fn appendix() {
        let v2 = format!("{H64}.AQQCAQMC");
        assert_eq!(detect(&v2), Some(Prehashed::Verbatim(&v2)));
        let legacy = format!("{}.BA", H64.to_uppercase());
        assert_eq!(detect(&legacy), Some(Prehashed::Verbatim(&legacy)));
        assert_eq!(detect(&format!("{H64}.XX")), None);
        assert_eq!(detect(&format!("{H64}.john@x.c")), None);
        assert_eq!(detect(&format!("{H64}.")), None);
        assert_eq!(detect(&format!("{}.AQQCAQMC", &H64[..40])), None);
        // multi-byte appendix: 8 bytes but not base64url
        assert_eq!(detect(&format!("{H64}.ééé_")), None);
    }
}
