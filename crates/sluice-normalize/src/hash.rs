//! SHA-256 and lower-case hex, without heap allocation.
//!
//! Meta wants SHA-256 over the UTF-8 bytes of the normalised value, as 64 lower-case
//! hex characters, no salt. Digests are kept as bytes (`[u8; 32]`) for as long as
//! possible and only turned into hex when written to the wire, into a stack buffer.

use sha2::{Digest, Sha256};
use std::fmt;

/// SHA-256 of the UTF-8 bytes of `text`.
#[inline]
pub fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Lower-case hex of a digest of up to 32 bytes, on the stack.
///
/// ```
/// let hex = sluice_normalize::HexDigest::new(&sluice_normalize::sha256("us"));
/// assert_eq!(hex.as_str(), "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexDigest {
    buf: [u8; 64],
    len: u8,
}

impl HexDigest {
    /// Encode `bytes` (at most 32; longer input is cut to 32 bytes).
    pub fn new(bytes: &[u8]) -> Self {
        let bytes = bytes.get(..32).unwrap_or(bytes);
        let mut buf = [0u8; 64];
        let len = bytes.len() * 2;
        if let Some(dst) = buf.get_mut(..len) {
            // Cannot fail: `dst` is exactly twice as long as `bytes`.
            let _ = const_hex::encode_to_slice(bytes, dst);
        }
        HexDigest {
            buf,
            len: len as u8,
        }
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        self.buf
            .get(..usize::from(self.len))
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

impl fmt::Display for HexDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for HexDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HexDigest({})", self.as_str())
    }
}

impl AsRef<str> for HexDigest {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// SHA-256 of `text` as lower-case hex, on the stack.
#[inline]
pub fn sha256_hex(text: &str) -> HexDigest {
    HexDigest::new(&sha256(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            sha256_hex("").as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex("john_smith@gmail.com").as_str(),
            "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
        );
        assert_eq!(HexDigest::new(&[0xAB, 0x01]).as_str(), "ab01");
        assert_eq!(HexDigest::new(&[0u8; 40]).as_str().len(), 64);
    }
}
