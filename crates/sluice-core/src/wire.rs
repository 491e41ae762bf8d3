//! Small wire types for Graph fields that accept more than one JSON type.
//!
//! Meta documents several ids as integers but SDKs and users send them as strings;
//! app flags are documented as `0|1` and sent as booleans too. These types accept
//! both and serialize back exactly what they received, so a round trip through
//! sluice does not change the payload.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An id that arrives as a JSON integer or a JSON string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdValue {
    Int(i64),
    Str(String),
}

impl IdValue {
    /// The id as text, the same for `42` and `"42"`.
    pub fn to_text(&self) -> String {
        match self {
            IdValue::Int(n) => n.to_string(),
            IdValue::Str(s) => s.clone(),
        }
    }
}

impl From<&str> for IdValue {
    fn from(s: &str) -> Self {
        IdValue::Str(s.to_owned())
    }
}

impl From<String> for IdValue {
    fn from(s: String) -> Self {
        IdValue::Str(s)
    }
}

impl From<i64> for IdValue {
    fn from(n: i64) -> Self {
        IdValue::Int(n)
    }
}

impl Serialize for IdValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            IdValue::Int(n) => serializer.serialize_i64(*n),
            IdValue::Str(s) => serializer.serialize_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for IdValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = IdValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string id")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IdValue, E> {
                Ok(IdValue::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IdValue, E> {
                i64::try_from(v)
                    .map(IdValue::Int)
                    .or_else(|_| Ok(IdValue::Str(v.to_string())))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IdValue, E> {
                Ok(IdValue::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<IdValue, E> {
                Ok(IdValue::Str(v))
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

/// A flag sent as `true`/`false` or `1`/`0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoolOrInt {
    Bool(bool),
    Int(i64),
}

impl BoolOrInt {
    /// `Some(true|false)` for `true`, `false`, `1`, `0`; `None` for other integers.
    pub fn as_bool(self) -> Option<bool> {
        match self {
            BoolOrInt::Bool(b) => Some(b),
            BoolOrInt::Int(0) => Some(false),
            BoolOrInt::Int(1) => Some(true),
            BoolOrInt::Int(_) => None,
        }
    }
}

impl From<bool> for BoolOrInt {
    fn from(b: bool) -> Self {
        BoolOrInt::Bool(b)
    }
}

impl Serialize for BoolOrInt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            BoolOrInt::Bool(b) => serializer.serialize_bool(*b),
            BoolOrInt::Int(n) => serializer.serialize_i64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for BoolOrInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FlagVisitor;
        impl Visitor<'_> for FlagVisitor {
            type Value = BoolOrInt;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, 0 or 1")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<BoolOrInt, E> {
                Ok(BoolOrInt::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<BoolOrInt, E> {
                Ok(BoolOrInt::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<BoolOrInt, E> {
                i64::try_from(v)
                    .map(BoolOrInt::Int)
                    .map_err(|_| E::custom("flag out of range"))
            }
        }
        deserializer.deserialize_any(FlagVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_their_json_type() {
        for text in ["42", "\"42\"", "\"abc\""] {
            let id: IdValue = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&id).unwrap(), text);
        }
        assert!(serde_json::from_str::<IdValue>("1.5").is_err());
        assert!(serde_json::from_str::<IdValue>("[]").is_err());
    }

    #[test]
    fn flags_accept_bools_and_ints() {
        let f: BoolOrInt = serde_json::from_str("1").unwrap();
        assert_eq!(f.as_bool(), Some(true));
        let f: BoolOrInt = serde_json::from_str("false").unwrap();
        assert_eq!(serde_json::to_string(&f).unwrap(), "false");
        assert!(serde_json::from_str::<BoolOrInt>("\"1\"").is_err());
    }
}
