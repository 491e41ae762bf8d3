//! The wall clock in the units CAPI and the store use.
//!
//! A clock before 1970 reads as 0, and one past `i64::MAX` ms saturates: a
//! broken clock must not panic a command or the gateway.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current Unix time in milliseconds (the store's and the ledger's unit).
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The current Unix time in seconds (CAPI's `event_time` unit).
pub fn unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_agree() {
        let ms = unix_ms();
        let secs = unix_secs();
        // 2020-01-01 or later, and the two readings within a second or two.
        assert!(secs > 1_577_836_800, "{secs}");
        assert!((ms / 1000 - secs).abs() <= 2, "{ms} ms vs {secs} s");
    }
}
