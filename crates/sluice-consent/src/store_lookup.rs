//! Consent-store lookups: ask an HTTP service what a user consented to.
//!
//! Backends often send events without consent fields; the consent state lives in
//! the shop's own consent database. [`HttpConsentStore`] asks it with
//! `GET {url}?key=<user key>` and expects a JSON object in the same shape as an
//! event's `consent` object:
//!
//! ```json
//! {"ad_user_data": "granted", "ad_personalization": "denied", "marketing": true}
//! ```
//!
//! `404` means "no record" (the checks then see no signal). The user key must be a
//! SHA-256 hex digest (of the normalized `external_id` or e-mail), so no raw
//! personal data ever appears in a URL or in the store's access logs; anything
//! else is refused before a request is made.
//!
//! Failure semantics — **fail closed**: a timeout, a connection error, a 5xx, a
//! body that is not a JSON object or holds an unknown value all become a
//! [`LookupError`] whose code (`consent_store_timeout`, `consent_store_invalid`,
//! `consent_store_unavailable`) makes the store an *invalid* source for the
//! decision, never a grant. Failures are not cached, so the next event asks
//! again; answers (including "no record") are cached for the configured TTL.

use crate::policy::Source;
use crate::signals::{ConsentMode, ConsentSignals, ErrorCode, FlagState, parse_consent_map};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sluice_core::Secret;
use sluice_core::user_data::{HashedKey, UserData};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Largest answer body read from the store.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What the store knows about one user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConsentAnswer {
    /// False when the store has no record for the key (HTTP 404).
    pub known: bool,
    pub consent_mode: ConsentMode,
    pub categories: BTreeMap<String, FlagState>,
}

impl ConsentAnswer {
    /// "No record for this user."
    pub fn unknown() -> Self {
        ConsentAnswer::default()
    }

    /// Parses an answer body: a JSON object of Consent Mode flags and categories.
    /// Anything malformed is [`LookupError::Invalid`], as a whole.
    pub fn from_json(body: &[u8]) -> Result<Self, LookupError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| LookupError::Invalid)?;
        let serde_json::Value::Object(map) = value else {
            return Err(LookupError::Invalid);
        };
        let parsed = parse_consent_map(&map);
        if !parsed.errors.is_empty() {
            return Err(LookupError::Invalid);
        }
        Ok(ConsentAnswer {
            known: true,
            consent_mode: parsed.consent_mode,
            categories: parsed.categories,
        })
    }
}

/// Why a lookup gave no usable answer. Each maps to a stable [`ErrorCode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("consent store did not answer in time")]
    Timeout,
    #[error("consent store answer is not a valid consent object")]
    Invalid,
    #[error("consent store unavailable")]
    Unavailable,
    #[error("user key is not a sha-256 hex digest")]
    KeyInvalid,
}

impl LookupError {
    pub fn code(self) -> ErrorCode {
        match self {
            LookupError::Timeout => ErrorCode::ConsentStoreTimeout,
            LookupError::Invalid => ErrorCode::ConsentStoreInvalid,
            LookupError::Unavailable => ErrorCode::ConsentStoreUnavailable,
            LookupError::KeyInvalid => ErrorCode::ConsentStoreKeyInvalid,
        }
    }
}

/// A place to look consent up by user key. Object-safe, so the server can hold
/// an `Arc<dyn ConsentStore>` and tests can substitute their own.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    async fn lookup(&self, user_key: &str) -> Result<ConsentAnswer, LookupError>;
}

/// When the server should ask the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookupWhen {
    /// Only when the event itself carries no consent signal.
    #[default]
    NoEventSignal,
    /// For every event of the configured sources (the store can then withdraw
    /// consent the event claims: a denial from either side wins).
    Always,
}

/// `[consent.store]` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpStoreConfig {
    /// Base URL; `?key=<user key>` is appended.
    pub url: String,
    /// Per-lookup deadline. Short, because it is on the ingest path.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How long answers are reused.
    #[serde(default = "default_ttl_secs")]
    pub cache_ttl_secs: u64,
    /// Most cached answers; the oldest go first when full. 0 disables the cache.
    #[serde(default = "default_max_entries")]
    pub cache_max_entries: usize,
    /// Sent as `Authorization: Bearer …` when set.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// Sources whose events are looked up.
    #[serde(default = "default_lookup_sources")]
    pub sources: Vec<Source>,
    #[serde(default)]
    pub when: LookupWhen,
}

fn default_timeout_ms() -> u64 {
    300
}
fn default_ttl_secs() -> u64 {
    300
}
fn default_max_entries() -> usize {
    10_000
}
fn default_lookup_sources() -> Vec<Source> {
    vec![Source::Backend, Source::Import]
}

impl HttpStoreConfig {
    /// Whether the server should look this event up.
    pub fn should_lookup(&self, source: Source, signals: &ConsentSignals) -> bool {
        if !self.sources.contains(&source) {
            return false;
        }
        match self.when {
            LookupWhen::Always => true,
            LookupWhen::NoEventSignal => signals.is_empty(),
        }
    }
}

/// The user key sent to the store: the SHA-256 of `external_id`, else of `em`,
/// when `user_data` already holds that hash. Returns `None` for raw values: the
/// server must normalize and hash first (sluice-normalize), so a raw e-mail
/// never reaches a URL.
pub fn user_key(user_data: &UserData) -> Option<String> {
    [HashedKey::ExternalId, HashedKey::Em]
        .iter()
        .flat_map(|k| user_data.hashed(*k).values.iter())
        .find_map(|v| v.sha256().map(const_hex::encode))
}

/// A 64-character hex digest, lower-cased; `None` for anything else.
fn normalize_key(key: &str) -> Option<String> {
    (key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| key.to_ascii_lowercase())
}

#[derive(Debug, thiserror::Error)]
pub enum StoreConfigError {
    #[error("consent store url is not an absolute http(s) url")]
    Url,
}

/// The HTTP consent-store client with its TTL cache.
pub struct HttpConsentStore {
    client: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
    bearer_token: Option<Secret>,
    cache: Mutex<TtlCache<ConsentAnswer>>,
}

impl std::fmt::Debug for HttpConsentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConsentStore")
            .field("url", &self.url.as_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpConsentStore {
    /// Takes the server's shared `reqwest::Client` (its TLS setup is the
    /// server's business; with `rustls-no-provider` a crypto provider must be
    /// installed before that client is built).
    pub fn new(
        client: reqwest::Client,
        config: &HttpStoreConfig,
    ) -> Result<Self, StoreConfigError> {
        let url = reqwest::Url::parse(&config.url).map_err(|_| StoreConfigError::Url)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(StoreConfigError::Url);
        }
        Ok(HttpConsentStore {
            client,
            url,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            bearer_token: config.bearer_token.clone(),
            cache: Mutex::new(TtlCache::new(
                Duration::from_secs(config.cache_ttl_secs),
                config.cache_max_entries,
            )),
        })
    }

    async fn fetch(&self, key: &str) -> Result<ConsentAnswer, LookupError> {
        let mut url = self.url.clone();
        url.query_pairs_mut().append_pair("key", key);
        let mut request = self.client.get(url).header("accept", "application/json");
        if let Some(token) = &self.bearer_token {
            request = request.bearer_auth(token.expose());
        }
        let mut response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                LookupError::Timeout
            } else {
                LookupError::Unavailable
            }
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(ConsentAnswer::unknown());
        }
        if !status.is_success() {
            return Err(LookupError::Unavailable);
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(LookupError::Invalid);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| LookupError::Unavailable)?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(LookupError::Invalid);
            }
            body.extend_from_slice(&chunk);
        }
        ConsentAnswer::from_json(&body)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, TtlCache<ConsentAnswer>> {
        // A panic while holding the lock cannot leave the cache inconsistent in a
        // way that matters (worst case: a missing entry), so poisoning is ignored.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl ConsentStore for HttpConsentStore {
    async fn lookup(&self, user_key: &str) -> Result<ConsentAnswer, LookupError> {
        let Some(key) = normalize_key(user_key) else {
            crate::metrics::record_store_lookup("key_invalid");
            return Err(LookupError::KeyInvalid);
        };
        if let Some(hit) = self.cache().get(&key, Instant::now()) {
            crate::metrics::record_store_lookup("cache_hit");
            return Ok(hit);
        }
        let result = match tokio::time::timeout(self.timeout, self.fetch(&key)).await {
            Ok(r) => r,
            Err(_) => Err(LookupError::Timeout),
        };
        crate::metrics::record_store_lookup(match &result {
            Ok(a) if a.known => "found",
            Ok(_) => "not_found",
            Err(e) => e.code().as_str(),
        });
        if let Ok(answer) = &result {
            self.cache().insert(key, answer.clone(), Instant::now());
        }
        result
    }
}

/// A bounded map whose entries expire after one fixed TTL. Because every entry
/// lives equally long, insertion order is expiry order, and a queue is enough to
/// evict the oldest in O(1).
pub(crate) struct TtlCache<V> {
    ttl: Duration,
    max_entries: usize,
    map: HashMap<String, (Instant, V)>,
    order: VecDeque<(Instant, String)>,
}

impl<V: Clone> TtlCache<V> {
    pub(crate) fn new(ttl: Duration, max_entries: usize) -> Self {
        TtlCache {
            ttl,
            max_entries,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn get(&mut self, key: &str, now: Instant) -> Option<V> {
        match self.map.get(key) {
            Some((expires, v)) if *expires > now => Some(v.clone()),
            Some(_) => {
                self.map.remove(key);
                None
            }
            None => None,
        }
    }

    pub(crate) fn insert(&mut self, key: String, value: V, now: Instant) {
        if self.max_entries == 0 || self.ttl.is_zero() {
            return;
        }
        // Drop expired entries from the front.
        while let Some((expires, _)) = self.order.front() {
            if *expires > now {
                break;
            }
            if let Some((expires, k)) = self.order.pop_front()
                && self.map.get(&k).is_some_and(|(e, _)| *e == expires)
            {
                self.map.remove(&k);
            }
        }
        // Evict the oldest live entries while full.
        while self.map.len() >= self.max_entries && !self.map.contains_key(&key) {
            let Some((expires, k)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&k).is_some_and(|(e, _)| *e == expires) {
                self.map.remove(&k);
            }
        }
        let expires = now + self.ttl;
        self.map.insert(key.clone(), (expires, value));
        self.order.push_back((expires, key));
        if self.order.len() > 2 * self.max_entries.max(16) {
            let map = &self.map;
            self.order
                .retain(|(e, k)| map.get(k).is_some_and(|(me, _)| me == e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn cache_entries_expire_after_the_ttl() {
        let mut c = TtlCache::new(Duration::from_secs(10), 100);
        c.insert("a".into(), 1, Instant::now());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(c.get("a", Instant::now()), Some(1));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(c.get("a", Instant::now()), None);
        assert_eq!(c.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn cache_evicts_the_oldest_when_full() {
        let mut c = TtlCache::new(Duration::from_secs(60), 2);
        c.insert("a".into(), 1, Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
        c.insert("b".into(), 2, Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
        c.insert("c".into(), 3, Instant::now());
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("a", Instant::now()), None);
        assert_eq!(c.get("b", Instant::now()), Some(2));
        assert_eq!(c.get("c", Instant::now()), Some(3));
        // Re-inserting after expiry keeps the queue bounded.
        for i in 0..200 {
            tokio::time::advance(Duration::from_secs(61)).await;
            c.insert(format!("k{}", i % 3), i, Instant::now());
        }
        assert!(c.order.len() <= 2 * 16 + 1);
        assert!(c.len() <= 2);
    }

    #[test]
    fn disabled_cache_stores_nothing() {
        let mut c = TtlCache::new(Duration::from_secs(60), 0);
        c.insert("a".into(), 1, Instant::now());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn answers_parse_like_consent_objects() {
        let a =
            ConsentAnswer::from_json(br#"{"ad_user_data":"granted","marketing":false}"#).unwrap();
        assert!(a.known);
        assert_eq!(a.consent_mode.ad_user_data, Some(FlagState::Granted));
        assert_eq!(a.categories.get("marketing"), Some(&FlagState::Denied));
        for bad in [
            &b"[]"[..],
            b"not json",
            br#"{"ad_user_data":"sure"}"#,
            b"\"granted\"",
        ] {
            assert_eq!(ConsentAnswer::from_json(bad), Err(LookupError::Invalid));
        }
    }

    #[test]
    fn keys_must_be_hex_digests() {
        let h = "86E0B9E56C17CC4D12387E1949B85053FBE73BC3CE5A1188713A9D300CC6133D";
        assert_eq!(normalize_key(h), Some(h.to_ascii_lowercase()));
        assert_eq!(normalize_key("jane@example.com"), None);
        assert_eq!(normalize_key(&h[..63]), None);
    }

    #[test]
    fn user_key_prefers_hashed_external_id() {
        let em = "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d";
        let ext = "0000000000000000000000000000000000000000000000000000000000000001";
        let mut ud = UserData::default();
        ud.push_classified(HashedKey::Em, em);
        assert_eq!(user_key(&ud).as_deref(), Some(em));
        ud.push_classified(HashedKey::ExternalId, ext);
        assert_eq!(user_key(&ud).as_deref(), Some(ext));
        let mut raw = UserData::default();
        raw.push_raw(HashedKey::Em, "jane@example.com");
        assert_eq!(user_key(&raw), None);
    }
}
