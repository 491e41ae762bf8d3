//! A small seeded pseudo-random generator (SplitMix64).
//!
//! Fault injection must be reproducible from a seed in the config file, on every
//! platform and across dependency upgrades, so the emulator carries its own
//! generator instead of depending on a library's unspecified stream. It is not
//! for secrets.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// A float in `[0, 1)` with 53 random bits.
    pub(crate) fn next_f64(&mut self) -> f64 {
        let bits = self.next_u64() >> 11;
        // 2^53 fits f64 exactly; `bits` < 2^53, so the conversion is exact too.
        #[allow(clippy::cast_precision_loss)]
        let value = bits as f64 / (1u64 << 53) as f64;
        value
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Alphabet of Meta's `fbtrace_id`s (base64url).
const TRACE_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

static TRACE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh 23-character trace id shaped like Meta's (`A6UyEgg_HdoiRX9duxcBOjb`).
/// Unique per process; unpredictable enough for a support reference.
pub(crate) fn trace_id() -> String {
    let n = TRACE_COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut rng = SplitMix64::new(seed ^ mix(n.wrapping_add(0x5EED)));
    let mut out = String::with_capacity(23);
    let mut bits = rng.next_u64();
    for i in 0..23 {
        if i == 10 {
            bits = rng.next_u64();
        }
        out.push(char::from(TRACE_ALPHABET[(bits & 63) as usize]));
        bits >>= 6;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let f = SplitMix64::new(7).next_f64();
        assert!((0.0..1.0).contains(&f));
    }

    #[test]
    fn trace_ids_look_like_metas_and_differ() {
        let a = trace_id();
        let b = trace_id();
        assert_eq!(a.len(), 23);
        assert!(a.bytes().all(|c| TRACE_ALPHABET.contains(&c)));
        assert_ne!(a, b);
    }
}
