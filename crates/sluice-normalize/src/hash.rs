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
    let bytes = text.as_bytes();
    if bytes.len() <= ONE_BLOCK_MAX {
        sha256_one_block(bytes)
    } else {
        Sha256::digest(bytes).into()
    }
}

/// The longest message that fits one 64-byte block with its padding (a 0x80 byte
/// and the 8-byte length).
const ONE_BLOCK_MAX: usize = 55;

/// SHA-256's initial hash value (FIPS 180-4, 5.3.3).
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// SHA-256 of a message of at most 55 bytes, padded by hand into one block and run
/// through `sha2`'s compression function (SHA-NI where the CPU has it). Almost every
/// normalized value is that short, and for one block the streaming API's buffering
/// and finalization cost as much as the compression itself.
fn sha256_one_block(msg: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if let Some(head) = block.get_mut(..msg.len()) {
        head.copy_from_slice(msg);
    }
    if let Some(b) = block.get_mut(msg.len()) {
        *b = 0x80;
    }
    let bits = (msg.len() as u64) * 8;
    block[56..].copy_from_slice(&bits.to_be_bytes());
    let mut state = IV;
    sha2::compress256(&mut state, &[block.into()]);
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
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
    fn one_block_path_matches_the_streaming_api_at_every_length() {
        let mut seed = 0x2545_f491_u32;
        for len in 0..=200 {
            for _ in 0..8 {
                let text: String = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        char::from(b' ' + (seed % 95) as u8)
                    })
                    .collect();
                let want: [u8; 32] = Sha256::digest(text.as_bytes()).into();
                assert_eq!(sha256(&text), want, "length {len}");
            }
        }
        let multibyte = "ü".repeat(27) + "x";
        assert_eq!(multibyte.len(), 55);
        let want: [u8; 32] = Sha256::digest(multibyte.as_bytes()).into();
        assert_eq!(sha256(&multibyte), want);
    }

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
