//! Opaque identifiers for queued events and dead letters.
//!
//! Both are positive 64-bit integers assigned by the backend (SQLite
//! `AUTOINCREMENT`, a PostgreSQL `bigserial`/identity column). They are
//! *never reused*, even after the row is deleted: a late `ack` from a worker
//! whose lease expired must never hit an unrelated newer event.
//!
//! Callers treat them as opaque: they print with [`Display`](std::fmt::Display)
//! and parse back with [`FromStr`](std::str::FromStr) (the CLI shows them and
//! takes them back), and serialize as JSON strings so that clients in
//! languages with 53-bit numbers do not round them. The raw integer is
//! available to backends through `from_raw` / `raw`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The text given to `FromStr` was not an identifier printed by this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id: expected a positive integer")]
pub struct ParseIdError {
    kind: &'static str,
}

macro_rules! opaque_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(into = "String", try_from = "String")]
        pub struct $name(i64);

        // === impl $name ===

        impl $name {
            /// Wraps a backend row id. Backends only; callers parse printed ids.
            pub const fn from_raw(raw: i64) -> Self {
                Self(raw)
            }

            /// The backend row id. Backends only.
            pub const fn raw(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().parse::<i64>() {
                    Ok(raw) if raw > 0 => Ok(Self(raw)),
                    _ => Err(ParseIdError { kind: $kind }),
                }
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.to_string()
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseIdError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
    };
}

opaque_id!(
    /// Identifies one event while it sits in the delivery queue.
    ///
    /// A replayed dead letter gets a new `EventRowId`.
    EventRowId,
    "event"
);

opaque_id!(
    /// Identifies one entry of the dead-letter queue.
    DeadLetterId,
    "dead letter"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_json() {
        let id = DeadLetterId::from_raw(42);
        assert_eq!(id.to_string(), "42");
        assert_eq!("42".parse::<DeadLetterId>().unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"42\"");
        assert_eq!(serde_json::from_str::<DeadLetterId>("\"42\"").unwrap(), id);
    }

    #[test]
    fn ids_reject_garbage() {
        for bad in ["", "0", "-3", "abc", "1.5", "99999999999999999999"] {
            assert!(bad.parse::<EventRowId>().is_err(), "{bad:?}");
        }
    }
}
