//! `sluice.toml`: the gateway's configuration.
//!
//! One TOML file, unknown keys rejected (a typo must not silently fall back to a
//! default), and every key overridable by an environment variable named after
//! its path: `SLUICE_` + the keys joined by `__`, upper-cased. For example
//! `SLUICE_SERVER__LISTEN=0.0.0.0:8080`, `SLUICE_DELIVERY__BATCH_SIZE=500`,
//! `SLUICE_PIXELS__0__ACCESS_TOKEN=EAAB…`. Environment variables whose first key
//! is not a configuration section (such as `SLUICE_ACCESS_TOKEN`, read by
//! `sluice send`) are ignored here.
//!
//! Secrets (access tokens, API keys, the admin key) come from the file, the
//! environment or a `*_file` path, and live in [`Secret`], which never prints.

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use sluice_core::Secret;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a configuration could not be loaded. Messages name the key, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration{}: {message}", .origin.as_deref().map(|o| format!(" in {o}")).unwrap_or_default())]
    Parse {
        origin: Option<String>,
        message: String,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the SQLite queue and other state live (default `./sluice-data`).
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub delivery: DeliveryConfig,
    pub normalize: NormalizeConfig,
    /// The pixels (datasets) sluice delivers to.
    pub pixels: Vec<PixelConfig>,
    /// Keys for the backend API (`/v1/events`), each bound to pixels.
    pub api_keys: Vec<ApiKeyConfig>,
    pub admin: AdminConfig,
    pub consent: ConsentConfig,
    pub browser: BrowserConfig,
    pub dedup: DedupConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("sluice-data"),
            server: ServerConfig::default(),
            store: StoreConfig::default(),
            delivery: DeliveryConfig::default(),
            normalize: NormalizeConfig::default(),
            pixels: Vec::new(),
            api_keys: Vec::new(),
            admin: AdminConfig::default(),
            consent: ConsentConfig::default(),
            browser: BrowserConfig::default(),
            dedup: DedupConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. The default stays on the loopback interface.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes (413 above it). The default,
    /// 8 MiB, takes the 1000 events Meta allows per request as the official
    /// SDKs send them (the Python SDK form-encodes about 1.8 KB per event).
    pub max_body_bytes: usize,
    /// Proxies whose `X-Forwarded-For` is believed (CIDR list). The client IP is
    /// the right-most address not in this list.
    pub trusted_proxies: Vec<IpNet>,
    /// Time allowed for a whole ingest request, in milliseconds.
    pub request_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 8 * 1024 * 1024,
            trusted_proxies: Vec::new(),
            request_timeout_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite` (default, a file under `data_dir`) or `postgres` (implied by `url`).
    pub backend: String,
    /// PostgreSQL URL (`postgres://user@host:5432/db?sslmode=require`), for
    /// several nodes sharing one queue. Kept secret: it may hold a password.
    pub url: Option<Secret>,
    /// PostgreSQL schema holding sluice's tables.
    pub schema: String,
    /// PostgreSQL connections per node.
    pub pool_size: usize,
    /// PostgreSQL `statement_timeout`, in ms (0 = none).
    pub statement_timeout_ms: u64,
    /// CA certificate (PEM) the PostgreSQL server must chain to (verify-full).
    pub tls_root_cert: Option<PathBuf>,
    /// SQLite file; default `<data_dir>/queue.sqlite`.
    pub path: Option<PathBuf>,
    /// `full` (default: every acknowledged event survives power loss) or
    /// `normal` (survives a process crash, may lose the last commits on power loss).
    pub synchronous: String,
    /// How long duplicates are recognised, in hours (Meta uses 48).
    pub dedup_window_hours: u32,
    /// How often expired dedup entries, consent-audit rows older than
    /// `consent.audit_retention_days` and dead letters older than
    /// `dlq_retention_days` are deleted, in seconds (also once at start).
    pub purge_interval_secs: u64,
    /// Dead letters are deleted this many days after they were
    /// dead-lettered (unless replayed first); `0` keeps them until replayed
    /// or deleted by hand.
    pub dlq_retention_days: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: "sqlite".into(),
            url: None,
            schema: "sluice".into(),
            pool_size: 16,
            statement_timeout_ms: 30_000,
            tls_root_cert: None,
            path: None,
            synchronous: "full".into(),
            dedup_window_hours: 48,
            purge_interval_secs: 600,
            dlq_retention_days: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Graph API base URL; default Meta's, or the built-in sandbox in zero-config mode.
    pub graph_url: Option<String>,
    pub graph_version: String,
    /// Events per request to Meta (at most 1000; smaller batches limit the blast
    /// radius of one bad event).
    pub batch_size: usize,
    /// How long a lane waits to fill a batch before sending what it has, in ms.
    pub linger_ms: u64,
    /// Requests in flight per pixel.
    pub concurrency_per_pixel: usize,
    /// Per-request timeout to Meta, in ms.
    pub timeout_ms: u64,
    /// How long a node owns the events it takes for delivery, in ms. When a
    /// node dies, the events it held become due again on the other nodes
    /// after this long (raised to at least `linger_ms` + 3 × `timeout_ms` +
    /// 5 s, so a lease never runs out under a request still in flight).
    pub lease_ms: u64,
    /// First retry delay and the cap of the exponential backoff, in ms.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Attempts before an event that keeps failing transiently is dead-lettered.
    pub max_attempts: u32,
    /// The longest a lane pauses after repeated transient failures (timeouts,
    /// 5xx) before it probes again, in ms: once the destination is back,
    /// delivery resumes within this, however long the outage lasted.
    pub breaker_max_transient_cooldown_ms: u64,
    /// `partner_agent` sent with every request.
    pub partner_agent: Option<String>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            graph_url: None,
            graph_version: sluice_core::DEFAULT_GRAPH_VERSION.into(),
            batch_size: 500,
            linger_ms: 200,
            concurrency_per_pixel: 2,
            timeout_ms: 5_000,
            lease_ms: 120_000,
            backoff_base_ms: 500,
            backoff_max_ms: 300_000,
            max_attempts: 20,
            breaker_max_transient_cooldown_ms: 30_000,
            partner_agent: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeConfig {
    /// ISO 3166 alpha-2 region for national phone numbers when the event carries
    /// no country (e.g. `US`, `DE`).
    pub default_region: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PixelConfig {
    /// The pixel (dataset) id.
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    pub access_token: Option<Secret>,
    /// A file holding the access token (trailing whitespace ignored).
    pub access_token_file: Option<PathBuf>,
    /// App secret for `appsecret_proof`.
    pub app_secret: Option<Secret>,
    /// Route this pixel's events to Meta's Test Events tool.
    pub test_event_code: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// A name for logs and metrics (the key itself is never shown).
    pub name: String,
    pub key: Option<Secret>,
    pub key_file: Option<PathBuf>,
    /// Pixels this key may write to.
    pub pixels: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer key for `/admin/*` (dead letters, replay). Without it the admin
    /// API is off.
    pub key: Option<Secret>,
    pub key_file: Option<PathBuf>,
}

/// `[browser]`: the first-party endpoint for sluice.js (`/collect`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrowserConfig {
    /// Where the gateway serves sluice.js.
    pub script_path: String,
    /// Page origins allowed to send events (`https://www.shop.example`). In
    /// zero-config mode every origin is allowed; otherwise an empty list turns
    /// the browser endpoint off.
    pub allowed_origins: Vec<String>,
    /// Domain of the `_fbp`/`_fbc` cookies sluice sets (the site's registrable
    /// domain, e.g. `shop.example`); without it the cookies are host-only.
    pub cookie_domain: Option<String>,
    /// Lifetime of the cookies sluice sets, in days (browsers cap at 400).
    pub cookie_max_age_days: u32,
    /// Requests per minute one client IP may send.
    pub rate_limit_per_minute: u32,
    /// Largest `/collect` body, in bytes.
    pub max_body_bytes: usize,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        BrowserConfig {
            script_path: "/sluice.js".into(),
            allowed_origins: Vec::new(),
            cookie_domain: None,
            cookie_max_age_days: 390,
            rate_limit_per_minute: 600,
            max_body_bytes: 64 * 1024,
        }
    }
}

impl BrowserConfig {
    /// Warnings about setups in which Safari's tracking prevention treats the
    /// endpoint as third-party (and caps or blocks its cookies).
    pub fn safari_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let Some(domain) = self.cookie_domain.as_deref() else {
            if !self.allowed_origins.is_empty() {
                warnings.push(
                    "browser.cookie_domain is not set: _fbp/_fbc cookies are host-only to the gateway's host; \
                     set it to the site's domain (e.g. shop.example) and serve sluice under a subdomain of it"
                        .to_owned(),
                );
            }
            return warnings;
        };
        let domain = domain.trim_start_matches('.').to_ascii_lowercase();
        for origin in &self.allowed_origins {
            let host = origin
                .split("://")
                .nth(1)
                .unwrap_or(origin)
                .split([':', '/'])
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if host != domain && !host.ends_with(&format!(".{domain}")) {
                warnings.push(format!(
                    "pages at {origin} are not on {domain}: Safari treats the gateway as third-party for them and drops its cookies; \
                     serve sluice from a subdomain of the page's own site"
                ));
            }
            if origin.starts_with("http://") && host != "localhost" && host != "127.0.0.1" {
                warnings.push(format!(
                    "{origin} is not https: cookies cannot be Secure there"
                ));
            }
        }
        warnings
    }
}

/// `[dedup]`: dual tracking (the browser and the server sending the same event).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupConfig {
    /// Identity merge window, in seconds; 0 (the default) turns merging off.
    /// When on, events from the browser (`/collect`) wait this long in the
    /// queue (durably), and a server-side copy of the same event (same pixel,
    /// event_name and event_id, from `/v1/events`, the Graph-compatible
    /// endpoint or an import) arriving in that time is merged into it: one
    /// event is sent, with the identifiers of both. Later copies are
    /// duplicates, as without merging. Browser events are delivered this much
    /// later when no server copy comes.
    pub merge_window_secs: u64,
}

/// Longest identity merge window accepted (browser events wait this long).
pub const MAX_MERGE_WINDOW_SECS: u64 = 3_600;

impl DedupConfig {
    /// The merge window in ms, `None` when merging is off.
    pub fn merge_window_ms(&self) -> Option<i64> {
        (self.merge_window_secs > 0).then(|| {
            i64::try_from(self.merge_window_secs.min(MAX_MERGE_WINDOW_SECS)).unwrap_or(0) * 1000
        })
    }
}

/// `[consent]`: which policy decides, where the region comes from, the
/// consent store, and how long decisions are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentConfig {
    /// A built-in policy (`default`: EEA/UK/CH opt-in, US LDU states, deny when
    /// the region is unknown and no signal arrived).
    pub policy: String,
    /// A policy file (TOML); wins over `policy`. May say `extends = "default"`.
    pub policy_file: Option<PathBuf>,
    /// Headers the edge/CDN sets with the visitor's country and state.
    pub region_headers: sluice_consent::RegionHeaders,
    /// Ask a consent store by user key (`[consent.store]`).
    pub store: Option<sluice_consent::HttpStoreConfig>,
    /// Days consent-audit rows are kept (0 keeps them forever).
    pub audit_retention_days: u32,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        ConsentConfig {
            policy: "default".into(),
            policy_file: None,
            region_headers: sluice_consent::RegionHeaders::default(),
            store: None,
            audit_retention_days: 180,
        }
    }
}

impl ConsentConfig {
    /// Loads the policy the configuration names.
    pub fn load_policy(&self) -> Result<sluice_consent::Policy, ConfigError> {
        match &self.policy_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                sluice_consent::Policy::from_toml_str(&text).map_err(|e| ConfigError::Parse {
                    origin: Some(path.display().to_string()),
                    message: e.to_string(),
                })
            }
            None => sluice_consent::Policy::preset(&self.policy)
                .map_err(|e| ConfigError::Invalid(format!("consent.policy: {e}"))),
        }
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(i64),
    }
    Ok(match Id::deserialize(deserializer)? {
        Id::Text(s) => s,
        Id::Number(n) => n.to_string(),
    })
}

const SECTIONS: [&str; 11] = [
    "data_dir",
    "server",
    "store",
    "delivery",
    "normalize",
    "pixels",
    "api_keys",
    "admin",
    "consent",
    "browser",
    "dedup",
];

impl Config {
    /// Parses TOML text, applies environment overrides and checks the result.
    pub fn from_toml_with_env(
        text: &str,
        origin: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Config::from_toml_with_overrides(text, origin, env, |_| {})
    }

    /// Like [`from_toml_with_env`](Self::from_toml_with_env), with
    /// `overrides` (the command line's flags) applied last, before the
    /// checks: they win over the file and the environment, and may supply
    /// what both leave out (`store.url` for `store.backend = "postgres"`).
    pub fn from_toml_with_overrides(
        text: &str,
        origin: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: impl FnOnce(&mut Config),
    ) -> Result<Config, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            origin: origin.map(str::to_owned),
            message,
        };
        let mut root: toml::Table =
            toml::from_str(text).map_err(|e| parse_err(e.message().to_owned()))?;
        let mut overridden = Vec::new();
        for (name, value) in env {
            if let Some(path) = override_path(&name) {
                apply_override(&mut root, &path, &value).map_err(|m| ConfigError::Parse {
                    origin: Some(format!("environment variable {name}")),
                    message: m,
                })?;
                overridden.push(name);
            }
        }
        let mut config: Config = Config::deserialize(toml::Value::Table(root)).map_err(|e| {
            let origin = if overridden.is_empty() {
                origin.map(str::to_owned)
            } else {
                Some(format!(
                    "{} with overrides from {}",
                    origin.unwrap_or("defaults"),
                    overridden.join(", ")
                ))
            };
            ConfigError::Parse {
                origin,
                message: e.message().to_owned(),
            }
        })?;
        overrides(&mut config);
        config.resolve_secret_files()?;
        config.check()?;
        Ok(config)
    }

    /// Loads `path` (or nothing) plus the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_overrides(path, |_| {})
    }

    /// Loads `path` (or nothing) plus the process environment, then applies
    /// `overrides` (command-line flags) before the checks; see
    /// [`from_toml_with_overrides`](Self::from_toml_with_overrides).
    pub fn load_with_overrides(
        path: Option<&Path>,
        overrides: impl FnOnce(&mut Config),
    ) -> Result<Config, ConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.to_owned(),
                source,
            })?,
            None => String::new(),
        };
        let origin = path.map(|p| p.display().to_string());
        Config::from_toml_with_overrides(&text, origin.as_deref(), std::env::vars(), overrides)
    }

    /// True when no pixel is configured: sluice runs against the sandbox.
    pub fn is_zero_config(&self) -> bool {
        self.pixels.is_empty()
    }

    /// True when the queue lives in PostgreSQL.
    pub fn uses_postgres(&self) -> bool {
        self.store.url.is_some()
    }

    pub fn store_path(&self) -> PathBuf {
        self.store
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("queue.sqlite"))
    }

    pub fn pixel(&self, id: &str) -> Option<&PixelConfig> {
        self.pixels.iter().find(|p| p.id == id)
    }

    fn resolve_secret_files(&mut self) -> Result<(), ConfigError> {
        for pixel in &mut self.pixels {
            if let Some(file) = &pixel.access_token_file {
                pixel.access_token = Some(read_secret(file)?);
            }
        }
        for key in &mut self.api_keys {
            if let Some(file) = &key.key_file {
                key.key = Some(read_secret(file)?);
            }
        }
        if let Some(file) = &self.admin.key_file {
            self.admin.key = Some(read_secret(file)?);
        }
        Ok(())
    }

    /// Cross-field checks serde cannot express.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.delivery.batch_size == 0
            || self.delivery.batch_size > sluice_core::MAX_EVENTS_PER_REQUEST
        {
            return invalid(format!(
                "delivery.batch_size must be between 1 and 1000, got {}",
                self.delivery.batch_size
            ));
        }
        if self.delivery.concurrency_per_pixel == 0 {
            return invalid("delivery.concurrency_per_pixel must be at least 1".into());
        }
        if self.delivery.backoff_base_ms == 0
            || self.delivery.backoff_max_ms < self.delivery.backoff_base_ms
        {
            return invalid(
                "delivery.backoff_base_ms must be > 0 and <= delivery.backoff_max_ms".into(),
            );
        }
        if self.delivery.breaker_max_transient_cooldown_ms == 0 {
            return invalid("delivery.breaker_max_transient_cooldown_ms must be > 0".into());
        }
        if !matches!(self.store.synchronous.as_str(), "full" | "normal") {
            return invalid(format!(
                "store.synchronous must be \"full\" or \"normal\", got {:?}",
                self.store.synchronous
            ));
        }
        match (self.store.backend.as_str(), &self.store.url) {
            ("sqlite", None) => {}
            ("sqlite" | "postgres", Some(url))
                if url.expose().starts_with("postgres://")
                    || url.expose().starts_with("postgresql://") => {}
            ("postgres", None) => {
                return invalid(
                    "store.backend = \"postgres\" needs store.url (postgres://…)".into(),
                );
            }
            (_, Some(_)) => {
                return invalid("store.url must start with postgres:// or postgresql://".into());
            }
            (other, None) => {
                return invalid(format!(
                    "store.backend must be \"sqlite\" or \"postgres\", got {other:?}"
                ));
            }
        }
        if let Some(url) = &self.store.url {
            if self.store.pool_size == 0 {
                return invalid("store.pool_size must be at least 1".into());
            }
            // `prefer` (the default) would fall back to plain text when the
            // server, or someone in between, offers no TLS.
            if self.store.tls_root_cert.is_some()
                && url_param(url.expose(), "sslmode") != Some("require")
            {
                return invalid(
                    "store.tls_root_cert needs sslmode=require in store.url (otherwise a server that offers no TLS is accepted in plain text)"
                        .into(),
                );
            }
        }
        if self.store.dedup_window_hours == 0 {
            return invalid("store.dedup_window_hours must be at least 1".into());
        }
        if self.store.purge_interval_secs == 0 {
            return invalid("store.purge_interval_secs must be at least 1".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for pixel in &self.pixels {
            if pixel.id.is_empty() || !pixel.id.bytes().all(|b| b.is_ascii_digit()) {
                return invalid(format!(
                    "pixels: id {:?} must be the numeric pixel (dataset) id",
                    pixel.id
                ));
            }
            if !seen.insert(pixel.id.as_str()) {
                return invalid(format!("pixels: id {} is listed twice", pixel.id));
            }
            if pixel
                .access_token
                .as_ref()
                .is_none_or(|t| t.expose().trim().is_empty())
            {
                return invalid(format!(
                    "pixels: pixel {} needs access_token or access_token_file (or SLUICE_PIXELS__N__ACCESS_TOKEN)",
                    pixel.id
                ));
            }
        }
        for key in &self.api_keys {
            if key.key.as_ref().is_none_or(|k| k.expose().len() < 16) {
                return invalid(format!(
                    "api_keys: key {:?} needs key or key_file with at least 16 characters",
                    key.name
                ));
            }
            for pixel in &key.pixels {
                if self.pixel(pixel).is_none() {
                    return invalid(format!(
                        "api_keys: key {:?} is bound to pixel {pixel}, which is not in [[pixels]]",
                        key.name
                    ));
                }
            }
        }
        self.consent.load_policy()?;
        if !self.browser.script_path.starts_with('/') {
            return invalid(format!(
                "browser.script_path must start with '/', got {:?}",
                self.browser.script_path
            ));
        }
        for origin in &self.browser.allowed_origins {
            if !(origin.starts_with("https://") || origin.starts_with("http://"))
                || origin.ends_with('/')
            {
                return invalid(format!(
                    "browser.allowed_origins: {origin:?} must be an origin like https://www.shop.example (scheme, host, optional port, no path)"
                ));
            }
        }
        if self.dedup.merge_window_secs > MAX_MERGE_WINDOW_SECS {
            return invalid(format!(
                "dedup.merge_window_secs must be at most {MAX_MERGE_WINDOW_SECS} (browser events wait that long), got {}",
                self.dedup.merge_window_secs
            ));
        }
        if self.browser.rate_limit_per_minute == 0 {
            return invalid("browser.rate_limit_per_minute must be at least 1".into());
        }
        if let Some(region) = &self.normalize.default_region
            && (region.len() != 2 || !region.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            return invalid(format!(
                "normalize.default_region must be an ISO 3166 alpha-2 code such as US, got {region:?}"
            ));
        }
        Ok(())
    }
}

fn read_secret(path: &Path) -> Result<Secret, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| Secret::new(s.trim_end()))
        .map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })
}

/// The value of query parameter `key` in a URL (`…?sslmode=require&…`).
fn url_param<'a>(url: &'a str, key: &str) -> Option<&'a str> {
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// `SLUICE_DELIVERY__BATCH_SIZE` → `["delivery", "batch_size"]`; `None` for
/// variables that do not name a configuration key.
fn override_path(name: &str) -> Option<Vec<String>> {
    let rest = name.strip_prefix("SLUICE_")?;
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    SECTIONS.contains(&path[0].as_str()).then_some(path)
}

fn apply_override(root: &mut toml::Table, path: &[String], raw: &str) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut table = root;
    let mut walked = String::new();
    for key in parents {
        walked.push_str(key);
        let slot = table
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match slot {
            toml::Value::Table(t) => t,
            toml::Value::Array(items) => {
                return apply_array_override(
                    items,
                    &path[walked.split('.').count()..],
                    raw,
                    &walked,
                );
            }
            _ => return Err(format!("{walked} is not a table")),
        };
        walked.push('.');
    }
    let textual = matches!(table.get(last), Some(toml::Value::String(_))) || is_text_key(last);
    table.insert(last.clone(), parse_env_value(raw, textual));
    Ok(())
}

/// `SLUICE_PIXELS__0__ACCESS_TOKEN`: index into an array of tables; index
/// `len` appends a new table.
fn apply_array_override(
    items: &mut Vec<toml::Value>,
    rest: &[String],
    raw: &str,
    at: &str,
) -> Result<(), String> {
    let (index, rest) = rest.split_first().ok_or(format!("{at} needs an index"))?;
    let i: usize = index
        .parse()
        .map_err(|_| format!("{at}: {index:?} is not an index"))?;
    if i == items.len() {
        items.push(toml::Value::Table(toml::Table::new()));
    }
    let len = items.len();
    let item = items
        .get_mut(i)
        .ok_or(format!("{at}: index {i} is past the end ({len} entries)"))?;
    let toml::Value::Table(table) = item else {
        return Err(format!("{at}[{i}] is not a table"));
    };
    if rest.is_empty() {
        return Err(format!("{at}[{i}] needs a key"));
    }
    apply_override(table, rest, raw)
}

/// Keys whose values are always text, however they look (`12345` is a fine token).
fn is_text_key(key: &str) -> bool {
    const TEXT_SUFFIXES: [&str; 14] = [
        "token", "key", "secret", "id", "code", "url", "path", "dir", "file", "listen", "region",
        "name", "version", "agent",
    ];
    TEXT_SUFFIXES.iter().any(|s| key.ends_with(s)) || matches!(key, "backend" | "synchronous")
}

/// Environment values are text; read numbers, booleans and arrays as TOML
/// unless the file already holds a string there.
fn parse_env_value(raw: &str, prefer_string: bool) -> toml::Value {
    if !prefer_string
        && let Ok(mut t) = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        && let Some(v) = t.remove("v")
    {
        return v;
    }
    toml::Value::String(raw.to_owned())
}

/// Pretty summary of which keys each pixel and API key has, for `check-config`.
pub fn describe(config: &Config) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("listen".into(), config.server.listen.to_string());
    out.insert(
        "store".into(),
        if config.uses_postgres() {
            format!("postgres (schema {})", config.store.schema)
        } else {
            config.store_path().display().to_string()
        },
    );
    out.insert(
        "destination".into(),
        match (&config.delivery.graph_url, config.is_zero_config()) {
            (Some(url), _) => url.clone(),
            (None, true) => "built-in sandbox (nothing goes to Meta)".into(),
            (None, false) => "https://graph.facebook.com".into(),
        },
    );
    out.insert(
        "pixels".into(),
        config
            .pixels
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
    out.insert(
        "api_keys".into(),
        config
            .api_keys
            .iter()
            .map(|k| format!("{} -> [{}]", k.name, k.pixels.join(", ")))
            .collect::<Vec<_>>()
            .join("; "),
    );
    out.insert(
        "merge_window".into(),
        match config.dedup.merge_window_secs {
            0 => "off".to_owned(),
            secs => format!("{secs} s (browser events wait for a server copy)"),
        },
    );
    out.insert(
        "admin_api".into(),
        if config.admin.key.is_some() {
            "on"
        } else {
            "off"
        }
        .into(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const FILE: &str = r#"
data_dir = "/var/lib/sluice"
[server]
listen = "127.0.0.1:9000"
trusted_proxies = ["10.0.0.0/8"]
[[pixels]]
id = "1234567890"
access_token = "EAAB-file-token"
[[api_keys]]
name = "shop"
key = "0123456789abcdef0123"
pixels = ["1234567890"]
"#;

    #[test]
    fn merge_window_is_off_by_default_and_bounded() {
        let c = Config::from_toml_with_env("", None, env(&[])).unwrap();
        assert_eq!(c.dedup.merge_window_ms(), None);
        let c = Config::from_toml_with_env("[dedup]\nmerge_window_secs = 30\n", None, env(&[]))
            .unwrap();
        assert_eq!(c.dedup.merge_window_ms(), Some(30_000));
        assert!(
            c.is_zero_config(),
            "a [dedup] section alone stays zero-config"
        );
        let c =
            Config::from_toml_with_env("", None, env(&[("SLUICE_DEDUP__MERGE_WINDOW_SECS", "5")]))
                .unwrap();
        assert_eq!(c.dedup.merge_window_secs, 5);
        let err = Config::from_toml_with_env("[dedup]\nmerge_window_secs = 7200\n", None, env(&[]))
            .unwrap_err();
        assert!(err.to_string().contains("dedup.merge_window_secs"), "{err}");
        assert!(Config::from_toml_with_env("[dedup]\nwindow = 3\n", None, env(&[])).is_err());
    }

    #[test]
    fn empty_file_is_zero_config() {
        let c = Config::from_toml_with_env("", None, env(&[])).unwrap();
        assert!(c.is_zero_config());
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.store_path(), PathBuf::from("sluice-data/queue.sqlite"));
    }

    #[test]
    fn file_and_env_overrides() {
        let c = Config::from_toml_with_env(
            FILE,
            Some("sluice.toml"),
            env(&[
                ("SLUICE_SERVER__LISTEN", "0.0.0.0:8081"),
                ("SLUICE_DELIVERY__BATCH_SIZE", "250"),
                ("SLUICE_PIXELS__0__ACCESS_TOKEN", "EAAB-env-token"),
                ("SLUICE_PIXELS__1__ID", "42"),
                ("SLUICE_PIXELS__1__ACCESS_TOKEN", "12345"),
                ("SLUICE_ACCESS_TOKEN", "not-config"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:8081");
        assert_eq!(c.delivery.batch_size, 250);
        assert_eq!(
            c.pixels[0].access_token.as_ref().unwrap().expose(),
            "EAAB-env-token"
        );
        assert_eq!(c.pixels[1].id, "42");
        assert_eq!(c.pixels[1].access_token.as_ref().unwrap().expose(), "12345");
        assert!(!c.is_zero_config());
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err =
            Config::from_toml_with_env("[server]\nlisten_addr = \"x\"", Some("s.toml"), env(&[]))
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("listen_addr") && err.contains("s.toml"),
            "{err}"
        );
        let err = Config::from_toml_with_env("", None, env(&[("SLUICE_SERVER__LISTN", "x")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("listn") && err.contains("SLUICE_SERVER__LISTN"),
            "{err}"
        );
    }

    /// Issue #7: `store.backend = "postgres"` in the file and the URL on
    /// the command line (`sluice serve --store postgres://…`).
    #[test]
    fn command_line_overrides_apply_before_the_checks() {
        let text = "[store]\nbackend = \"postgres\"\n";
        let err = Config::from_toml_with_env(text, None, env(&[])).unwrap_err();
        assert!(err.to_string().contains("store.url"), "{err}");
        let c = Config::from_toml_with_overrides(text, None, env(&[]), |c| {
            c.store.url = Some(Secret::new("postgres://sluice@db.internal/sluice"));
        })
        .unwrap();
        assert!(c.uses_postgres());
        // The flag wins over the environment.
        let c = Config::from_toml_with_overrides(
            text,
            None,
            env(&[("SLUICE_STORE__URL", "postgres://env@db/x")]),
            |c| c.store.url = Some(Secret::new("postgres://flag@db/x")),
        )
        .unwrap();
        assert_eq!(c.store.url.unwrap().expose(), "postgres://flag@db/x");
        // And is checked like the file's value.
        let err = Config::from_toml_with_overrides(text, None, env(&[]), |c| {
            c.store.url = Some(Secret::new("mysql://db/x"));
        })
        .unwrap_err();
        assert!(err.to_string().contains("postgres://"), "{err}");
    }

    #[test]
    fn cross_field_checks_never_print_secrets() {
        let text = FILE.replace("pixels = [\"1234567890\"]", "pixels = [\"999\"]");
        let err = Config::from_toml_with_env(&text, None, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("999") && !err.contains("0123456789abcdef"),
            "{err}"
        );
        let text = FILE.replace("access_token = \"EAAB-file-token\"", "");
        let err = Config::from_toml_with_env(&text, None, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("access_token"), "{err}");
        let err = Config::from_toml_with_env("[delivery]\nbatch_size = 1001", None, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("batch_size"), "{err}");
    }

    #[test]
    fn safari_warnings_flag_other_sites() {
        let browser = BrowserConfig {
            allowed_origins: vec![
                "https://www.shop.example".into(),
                "https://other.example".into(),
            ],
            cookie_domain: Some("shop.example".into()),
            ..BrowserConfig::default()
        };
        let warnings = browser.safari_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("other.example"));
        let err = Config::from_toml_with_env(
            "[browser]\nallowed_origins = [\"shop.example\"]",
            None,
            env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("allowed_origins"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = Config::from_toml_with_env(FILE, None, env(&[])).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("EAAB-file-token") && !dbg.contains("0123456789abcdef"));
    }
}
