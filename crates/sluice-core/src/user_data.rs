//! `user_data`: the customer-information parameters of a server event.
//!
//! Contact fields (`em`, `ph`, names, address, …) must reach Meta as SHA-256 hashes.
//! A [`UserDataValue`] records what a value *is* the moment it is parsed: a hash we
//! can pass through (lower-cased), a param-builder value with an appendix (passed
//! byte-exact), or raw personal data (kept in a redacting [`Pii`] until the
//! normalizer hashes it). The same type therefore serves the gateway's input, where
//! raw values are expected, and the wire, where only hashes may remain
//! ([`UserData::has_raw_values`] tells which).
//!
//! Keys that Meta wants unhashed (IP, user agent, `fbc`, `fbp`, the ids) are kept as
//! sent, byte for byte.

use crate::redact::Pii;
use crate::wire::IdValue;
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// One value of a hashed key.
#[derive(Clone, PartialEq, Eq)]
pub enum UserDataValue {
    /// A SHA-256 digest; sent as 64 lowercase hex characters.
    Sha256([u8; 32]),
    /// A 32-hex value (MD5-looking). Meta's SDKs pass these through as hashed.
    Md5([u8; 16]),
    /// A param-builder value `<hex>.<appendix>`: case-sensitive, forwarded untouched.
    Verbatim(String),
    /// Unhashed personal data, to be normalized and hashed before it leaves.
    Raw(Pii),
}

impl UserDataValue {
    /// Classifies a received string the way Meta's SDKs and param builder do:
    /// after trimming, 64 or 32 hex digits (any case) are a hash; a 64/32-hex
    /// value followed by `.` and a legacy 2-character token or an 8-character
    /// appendix is a param-builder value; anything else is raw data.
    pub fn classify(input: &str) -> Self {
        // Like JS `trim()` (the param builder), a byte-order mark counts as space.
        let trimmed = input.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
        if let Some(digest) = decode_hex::<32>(trimmed) {
            return UserDataValue::Sha256(digest);
        }
        if let Some(digest) = decode_hex::<16>(trimmed) {
            return UserDataValue::Md5(digest);
        }
        if is_param_builder_value(trimmed) {
            return UserDataValue::Verbatim(trimmed.to_owned());
        }
        UserDataValue::Raw(Pii::new(input))
    }

    pub fn is_raw(&self) -> bool {
        matches!(self, UserDataValue::Raw(_))
    }

    /// The SHA-256 digest when this value is one; used for `forget` look-ups.
    pub fn sha256(&self) -> Option<&[u8; 32]> {
        match self {
            UserDataValue::Sha256(d) => Some(d),
            _ => None,
        }
    }

    /// The wire text of a hashed value (`None` for raw data).
    pub fn hashed_text(&self) -> Option<String> {
        match self {
            UserDataValue::Sha256(d) => Some(const_hex::encode(d)),
            UserDataValue::Md5(d) => Some(const_hex::encode(d)),
            UserDataValue::Verbatim(s) => Some(s.clone()),
            UserDataValue::Raw(_) => None,
        }
    }
}

/// Parses exactly `2*N` hex digits of either case into bytes.
fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    const_hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

const LEGACY_APPENDIX_TOKENS: [&str; 6] = ["AQ", "Ag", "Aw", "BA", "BQ", "Bg"];

/// `<64|32 hex>.<suffix>` where the suffix is a legacy token or an 8-character
/// base64url appendix (what the param builder's v2 appendix always is). A looser
/// rule would let `<hash>.john@x.c` through unhashed.
pub fn is_param_builder_value(text: &str) -> bool {
    let Some((hash, suffix)) = text.split_once('.') else {
        return false;
    };
    let hash_ok =
        (hash.len() == 64 || hash.len() == 32) && hash.bytes().all(|b| b.is_ascii_hexdigit());
    let appendix_ok = suffix.len() == 8
        && suffix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    hash_ok && (LEGACY_APPENDIX_TOKENS.contains(&suffix) || appendix_ok)
}

impl fmt::Debug for UserDataValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserDataValue::Sha256(d) => write!(f, "Sha256({})", const_hex::encode(d)),
            UserDataValue::Md5(d) => write!(f, "Md5({})", const_hex::encode(d)),
            UserDataValue::Verbatim(s) => write!(f, "Verbatim({s})"),
            UserDataValue::Raw(p) => write!(f, "Raw({p:?})"),
        }
    }
}

impl Serialize for UserDataValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // Lowercase hex on the stack: no allocation on the serialization path.
            UserDataValue::Sha256(d) => {
                serializer.serialize_str(const_hex::Buffer::<32>::new().format(d))
            }
            UserDataValue::Md5(d) => {
                serializer.serialize_str(const_hex::Buffer::<16>::new().format(d))
            }
            UserDataValue::Verbatim(s) => serializer.serialize_str(s),
            UserDataValue::Raw(p) => serializer.serialize_str(p.expose()),
        }
    }
}

impl<'de> Deserialize<'de> for UserDataValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl Visitor<'_> for ValueVisitor {
            type Value = UserDataValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<UserDataValue, E> {
                Ok(UserDataValue::classify(v))
            }
        }
        deserializer.deserialize_str(ValueVisitor)
    }
}

/// The values of one hashed key. Meta accepts a string or a list of strings;
/// `single` remembers which, so a payload round-trips unchanged.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct HashedValues {
    pub values: Vec<UserDataValue>,
    pub single: bool,
}

impl HashedValues {
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn push(&mut self, value: UserDataValue) {
        self.values.push(value);
    }

    pub fn clear(&mut self) {
        self.values.clear();
        self.single = false;
    }
}

impl Serialize for HashedValues {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.single && self.values.len() == 1 {
            return self.values[0].serialize(serializer);
        }
        let mut seq = serializer.serialize_seq(Some(self.values.len()))?;
        for v in &self.values {
            seq.serialize_element(v)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for HashedValues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValuesVisitor;
        impl<'de> Visitor<'de> for ValuesVisitor {
            type Value = HashedValues;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HashedValues, E> {
                Ok(HashedValues {
                    values: vec![UserDataValue::classify(v)],
                    single: true,
                })
            }
            fn visit_unit<E: de::Error>(self) -> Result<HashedValues, E> {
                Ok(HashedValues::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HashedValues, A::Error> {
                let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
                while let Some(v) = seq.next_element::<UserDataValue>()? {
                    values.push(v);
                }
                Ok(HashedValues {
                    values,
                    single: false,
                })
            }
        }
        deserializer.deserialize_any(ValuesVisitor)
    }
}

/// Every key of `user_data` whose values are hashed, in wire spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashedKey {
    Em,
    Ph,
    Fn,
    Ln,
    Ge,
    Db,
    Ct,
    St,
    Zp,
    Country,
    ExternalId,
    F5first,
    F5last,
    Fi,
    Dobd,
    Dobm,
    Doby,
    AppUserId,
}

impl HashedKey {
    pub const ALL: [HashedKey; 18] = [
        HashedKey::Em,
        HashedKey::Ph,
        HashedKey::Fn,
        HashedKey::Ln,
        HashedKey::Ge,
        HashedKey::Db,
        HashedKey::Ct,
        HashedKey::St,
        HashedKey::Zp,
        HashedKey::Country,
        HashedKey::ExternalId,
        HashedKey::F5first,
        HashedKey::F5last,
        HashedKey::Fi,
        HashedKey::Dobd,
        HashedKey::Dobm,
        HashedKey::Doby,
        HashedKey::AppUserId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HashedKey::Em => "em",
            HashedKey::Ph => "ph",
            HashedKey::Fn => "fn",
            HashedKey::Ln => "ln",
            HashedKey::Ge => "ge",
            HashedKey::Db => "db",
            HashedKey::Ct => "ct",
            HashedKey::St => "st",
            HashedKey::Zp => "zp",
            HashedKey::Country => "country",
            HashedKey::ExternalId => "external_id",
            HashedKey::F5first => "f5first",
            HashedKey::F5last => "f5last",
            HashedKey::Fi => "fi",
            HashedKey::Dobd => "dobd",
            HashedKey::Dobm => "dobm",
            HashedKey::Doby => "doby",
            HashedKey::AppUserId => "app_user_id",
        }
    }

    pub fn parse(name: &str) -> Option<HashedKey> {
        HashedKey::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for HashedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `user_data` object of a server event (capi-reference.md §3).
#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserData {
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub em: HashedValues,
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub ph: HashedValues,
    #[serde(default, rename = "fn", skip_serializing_if = "HashedValues::is_empty")]
    pub first_name: HashedValues,
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub ln: HashedValues,
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub ge: HashedValues,
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub db: HashedValues,
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub ct: HashedValues,
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub st: HashedValues,
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub zp: HashedValues,
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub country: HashedValues,
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub external_id: HashedValues,
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub f5first: HashedValues,
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub f5last: HashedValues,
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub fi: HashedValues,
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub dobd: HashedValues,
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub dobm: HashedValues,
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub doby: HashedValues,
    #[serde(default, skip_serializing_if = "HashedValues::is_empty")]
    pub app_user_id: HashedValues,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fb_login_id: Option<IdValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<IdValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anon_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub madid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_id: Option<IdValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_scoped_user_id: Option<IdValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctwa_clid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ig_account_id: Option<IdValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ig_sid: Option<IdValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp_business_account_id: Option<IdValue>,
}

impl UserData {
    pub fn hashed(&self, key: HashedKey) -> &HashedValues {
        match key {
            HashedKey::Em => &self.em,
            HashedKey::Ph => &self.ph,
            HashedKey::Fn => &self.first_name,
            HashedKey::Ln => &self.ln,
            HashedKey::Ge => &self.ge,
            HashedKey::Db => &self.db,
            HashedKey::Ct => &self.ct,
            HashedKey::St => &self.st,
            HashedKey::Zp => &self.zp,
            HashedKey::Country => &self.country,
            HashedKey::ExternalId => &self.external_id,
            HashedKey::F5first => &self.f5first,
            HashedKey::F5last => &self.f5last,
            HashedKey::Fi => &self.fi,
            HashedKey::Dobd => &self.dobd,
            HashedKey::Dobm => &self.dobm,
            HashedKey::Doby => &self.doby,
            HashedKey::AppUserId => &self.app_user_id,
        }
    }

    pub fn hashed_mut(&mut self, key: HashedKey) -> &mut HashedValues {
        match key {
            HashedKey::Em => &mut self.em,
            HashedKey::Ph => &mut self.ph,
            HashedKey::Fn => &mut self.first_name,
            HashedKey::Ln => &mut self.ln,
            HashedKey::Ge => &mut self.ge,
            HashedKey::Db => &mut self.db,
            HashedKey::Ct => &mut self.ct,
            HashedKey::St => &mut self.st,
            HashedKey::Zp => &mut self.zp,
            HashedKey::Country => &mut self.country,
            HashedKey::ExternalId => &mut self.external_id,
            HashedKey::F5first => &mut self.f5first,
            HashedKey::F5last => &mut self.f5last,
            HashedKey::Fi => &mut self.fi,
            HashedKey::Dobd => &mut self.dobd,
            HashedKey::Dobm => &mut self.dobm,
            HashedKey::Doby => &mut self.doby,
            HashedKey::AppUserId => &mut self.app_user_id,
        }
    }

    /// Adds a raw (unhashed) value to a hashed key; the normalizer hashes it later.
    pub fn push_raw(&mut self, key: HashedKey, value: impl Into<String>) -> &mut Self {
        self.hashed_mut(key)
            .push(UserDataValue::Raw(Pii::new(value)));
        self
    }

    /// Adds a value as received: a hash passes, anything else counts as raw.
    pub fn push_classified(&mut self, key: HashedKey, value: &str) -> &mut Self {
        self.hashed_mut(key).push(UserDataValue::classify(value));
        self
    }

    /// True while any hashed key still holds unhashed personal data.
    pub fn has_raw_values(&self) -> bool {
        HashedKey::ALL
            .iter()
            .any(|k| self.hashed(*k).values.iter().any(UserDataValue::is_raw))
    }

    /// The names of every key that carries a value, hashed keys first.
    pub fn present_keys(&self) -> Vec<&'static str> {
        let mut keys: Vec<&'static str> = HashedKey::ALL
            .iter()
            .filter(|k| !self.hashed(**k).is_empty())
            .map(|k| k.as_str())
            .collect();
        let unhashed: [(&'static str, bool); 15] = [
            ("client_ip_address", self.client_ip_address.is_some()),
            ("client_user_agent", self.client_user_agent.is_some()),
            ("fbc", self.fbc.is_some()),
            ("fbp", self.fbp.is_some()),
            ("subscription_id", self.subscription_id.is_some()),
            ("fb_login_id", self.fb_login_id.is_some()),
            ("lead_id", self.lead_id.is_some()),
            ("anon_id", self.anon_id.is_some()),
            ("madid", self.madid.is_some()),
            ("page_id", self.page_id.is_some()),
            ("page_scoped_user_id", self.page_scoped_user_id.is_some()),
            ("ctwa_clid", self.ctwa_clid.is_some()),
            ("ig_account_id", self.ig_account_id.is_some()),
            ("ig_sid", self.ig_sid.is_some()),
            (
                "whatsapp_business_account_id",
                self.whatsapp_business_account_id.is_some(),
            ),
        ];
        keys.extend(unhashed.iter().filter(|(_, p)| *p).map(|(k, _)| *k));
        keys
    }

    pub fn is_empty(&self) -> bool {
        self.present_keys().is_empty()
    }

    /// Lowercase-hex SHA-256 values of `em`, `ph` and `external_id`: the keys by
    /// which `sluice forget` finds a person's queued events.
    pub fn person_keys(&self) -> Vec<String> {
        [HashedKey::Em, HashedKey::Ph, HashedKey::ExternalId]
            .iter()
            .flat_map(|k| self.hashed(*k).values.iter())
            .filter_map(|v| v.sha256().map(const_hex::encode))
            .collect()
    }

    /// Removes every identifier, keeping nothing that points at a person.
    pub fn clear(&mut self) {
        *self = UserData::default();
    }
}

/// Lists the keys present, never their values: IPs and user agents are personal
/// data too, and `Debug` output ends up in logs.
impl fmt::Debug for UserData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserData")
            .field("keys", &self.present_keys())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d";

    #[test]
    fn classifies_hashes_appendix_values_and_raw_data() {
        let upper = HASH.to_uppercase();
        assert!(matches!(
            UserDataValue::classify(&upper),
            UserDataValue::Sha256(_)
        ));
        assert!(matches!(
            UserDataValue::classify("d41d8cd98f00b204e9800998ecf8427e"),
            UserDataValue::Md5(_)
        ));
        let pb = format!("{HASH}.AQQCAQMC");
        assert_eq!(
            UserDataValue::classify(&pb),
            UserDataValue::Verbatim(pb.clone())
        );
        let legacy = format!("{HASH}.AQ");
        assert_eq!(
            UserDataValue::classify(&legacy),
            UserDataValue::Verbatim(legacy.clone())
        );
        // A 40-hex SHA-1 or a 63-hex string is not a hash.
        assert!(UserDataValue::classify(&HASH[..40]).is_raw());
        assert!(UserDataValue::classify(&HASH[..63]).is_raw());
        assert!(UserDataValue::classify("jane@example.com").is_raw());
        assert!(UserDataValue::classify(&format!("{HASH}.toolong123")).is_raw());
        assert!(UserDataValue::classify(&format!("{HASH}.john@x.c")).is_raw());
        assert!(matches!(
            UserDataValue::classify(&format!("\u{feff}{HASH}")),
            UserDataValue::Sha256(_)
        ));
    }

    #[test]
    fn hashes_serialize_lowercase() {
        let v = UserDataValue::classify(&HASH.to_uppercase());
        assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{HASH}\""));
    }

    #[test]
    fn user_data_round_trips_strings_and_lists() {
        let json = format!(
            r#"{{"em":["{HASH}"],"ph":"{HASH}","client_ip_address":"2001:db8::7","fbp":"fb.1.1795859000123.1234567890","lead_id":123,"page_id":"99"}}"#
        );
        let ud: UserData = serde_json::from_str(&json).unwrap();
        assert!(ud.ph.single && !ud.em.single);
        assert_eq!(serde_json::to_string(&ud).unwrap(), json);
        assert!(!ud.has_raw_values());
        assert_eq!(ud.person_keys(), vec![HASH.to_string(), HASH.to_string()]);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_json::from_str::<UserData>(r#"{"email":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"));
    }

    #[test]
    fn debug_shows_keys_not_values() {
        let mut ud = UserData::default();
        ud.push_raw(HashedKey::Em, "jane@example.com");
        ud.client_ip_address = Some("203.0.113.9".into());
        let dbg = format!("{ud:?}");
        assert!(dbg.contains("em") && dbg.contains("client_ip_address"));
        assert!(!dbg.contains("jane") && !dbg.contains("203.0"));
        assert!(ud.has_raw_values());
    }
}
