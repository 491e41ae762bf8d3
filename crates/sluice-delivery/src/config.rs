//! The delivery engine's settings: per-pixel credentials and the knobs of
//! batching, retrying and pausing.
//!
//! Every field has a default fit for production (see the `DEFAULT_*`
//! constants); tests shrink the durations. [`EngineConfig::validate`] turns
//! nonsense (a batch of 0 or 1001, a lease shorter than a request) into an
//! error before anything starts.
//!
//! # Dynamic pixels
//!
//! [`EngineConfig::pixels`] is fixed at start. For a zero-config or sandbox
//! setup, where any pixel id is accepted and its token is only known at run
//! time, set [`EngineConfig::pixel_resolver`]: the engine asks it for the
//! [`PixelConfig`] of a pixel that has due events but no lane, and opens a
//! lane for it (at most [`EngineConfig::max_dynamic_lanes`] of them).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sluice_core::{MAX_EVENTS_PER_REQUEST, Secret};

use crate::backoff::Backoff;
use crate::breaker::BreakerConfig;
use crate::client::{ClientConfig, Credentials};
use crate::error::ClientBuildError;
use crate::retry::MetaRetryPolicy;

/// Default events per request. Smaller than Meta's 1000 because one bad
/// event fails the whole batch (capi-reference.md §9).
pub const DEFAULT_MAX_BATCH_SIZE: usize = 200;
/// Default wait for a batch to fill before sending what there is.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(250);
/// Default requests in flight per pixel.
pub const DEFAULT_CONCURRENCY_PER_PIXEL: usize = 2;
/// Default lease: long enough for linger, a request and a batch split.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);
/// Default interval between looks at the queue for due events.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Default number of transient failures after which an event is dead-lettered.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 12;
/// Default request budget for bisecting one rejected batch.
pub const DEFAULT_MAX_SPLIT_REQUESTS: usize = 64;
/// Default safety margin of the age guard.
pub const DEFAULT_AGE_MARGIN: Duration = Duration::from_secs(60);
/// Default cap on lanes opened through a [`PixelResolver`].
pub const DEFAULT_MAX_DYNAMIC_LANES: usize = 1000;

/// What to do with `test_event_code` for one pixel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TestEventMode {
    /// Send each event's own code (events without one go live).
    #[default]
    PerEvent,
    /// Send every batch with this code (a sandbox or staging pixel).
    Force(String),
    /// Never send a code, whatever the events carry. Meta processes test
    /// events for real, so production setups strip stray codes.
    Strip,
}

impl TestEventMode {
    /// The code a batch of events carrying `event_code` is sent with.
    pub fn resolve<'a>(&'a self, event_code: Option<&'a str>) -> Option<&'a str> {
        match self {
            TestEventMode::PerEvent => event_code,
            TestEventMode::Force(code) => Some(code),
            TestEventMode::Strip => None,
        }
    }
}

/// One pixel (dataset) and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PixelConfig {
    /// The pixel (dataset) id; lanes and metrics are keyed by it.
    pub pixel_id: String,
    /// The system-user token. Sent in the request body only; never logged.
    pub access_token: Secret,
    /// When set, `appsecret_proof` is sent with every request.
    pub app_secret: Option<Secret>,
    /// How `test_event_code` is handled.
    pub test_events: TestEventMode,
    /// Overrides [`ClientConfig::base_url`] for this pixel.
    pub base_url: Option<String>,
    /// Overrides [`ClientConfig::version`] for this pixel.
    pub version: Option<String>,
}

impl PixelConfig {
    /// A pixel with a token and defaults for everything else.
    pub fn new(pixel_id: impl Into<String>, access_token: Secret) -> Self {
        PixelConfig {
            pixel_id: pixel_id.into(),
            access_token,
            app_secret: None,
            test_events: TestEventMode::PerEvent,
            base_url: None,
            version: None,
        }
    }
}

/// Supplies the configuration of pixels that are not in
/// [`EngineConfig::pixels`], at run time.
///
/// The engine calls [`resolve`](Self::resolve) from its dispatcher when it
/// finds due events for a pixel without a lane (at most about once per
/// `poll_interval` per such pixel, plus once after a
/// [`LaneWaker::wake`](crate::LaneWaker::wake) for it). A `Some` opens a
/// lane that lives until the engine stops; a `None` leaves the events
/// queued and the pixel reported as unconfigured, and the resolver is asked
/// again later (a token may become known in the meantime).
///
/// Once the lane is open, its workers ask again for the pixel's credentials
/// before each batch, and every `poll_interval` while the lane is paused
/// for refused credentials: a changed token (or app secret) is used from
/// the next request on, and a lane paused for credentials probes with it
/// at once. A `None` or an unusable answer then keeps the credentials the
/// lane has; the endpoint and the test-event mode stay those the lane
/// opened with.
///
/// It runs on the dispatcher and the lanes' workers: keep it fast and
/// non-blocking (a map look-up, not a network call). It is only asked about numeric pixel ids
/// (as Meta's are; anything else could change the path the token is sent
/// to). The returned `pixel_id` must be the one asked for and the token
/// must not be empty, or the pixel is treated as unconfigured; so is a
/// pixel whose resolver call panics.
///
/// Closures `Fn(&str) -> Option<PixelConfig>` are resolvers.
pub trait PixelResolver: Send + Sync + 'static {
    /// The configuration for `pixel_id`, or `None` if it is unknown (yet).
    fn resolve(&self, pixel_id: &str) -> Option<PixelConfig>;
}

impl<F> PixelResolver for F
where
    F: Fn(&str) -> Option<PixelConfig> + Send + Sync + 'static,
{
    fn resolve(&self, pixel_id: &str) -> Option<PixelConfig> {
        self(pixel_id)
    }
}

impl PixelConfig {
    /// The credentials a lane sends with: the token, and the
    /// `appsecret_proof` when an app secret is set.
    pub(crate) fn credentials(&self) -> Credentials {
        match &self.app_secret {
            Some(app_secret) => Credentials::with_app_secret(self.access_token.clone(), app_secret),
            None => Credentials::new(self.access_token.clone()),
        }
    }

    /// Why a resolver's answer for `pixel_id` cannot be used, if it cannot.
    /// The reason never contains a secret.
    pub(crate) fn refusal_for(&self, pixel_id: &str) -> Option<&'static str> {
        if self.pixel_id != pixel_id {
            return Some("the resolver returned the configuration of another pixel");
        }
        if self.access_token.expose().is_empty() {
            return Some("the resolver returned an empty access token");
        }
        None
    }
}

/// Whether `pixel_id` may get a lane from the resolver: a numeric id, as
/// Meta's are. Anything else could change the path the token is sent to.
pub(crate) fn is_dynamic_pixel_id(pixel_id: &str) -> bool {
    (1..=64).contains(&pixel_id.len()) && pixel_id.bytes().all(|b| b.is_ascii_digit())
}

/// Settings of the whole engine.
///
/// `Debug` shows no secret: tokens are [`Secret`]s and the resolver is
/// shown only as present or absent.
#[derive(Clone)]
pub struct EngineConfig {
    /// The pixels to deliver for. Events queued for any other pixel stay in
    /// the queue (and are reported once in the log), unless
    /// `pixel_resolver` supplies a configuration for it.
    pub pixels: Vec<PixelConfig>,
    /// Supplies, at run time, the configuration of pixels not in `pixels`
    /// (zero-config and sandbox mode). `None`: only `pixels` are delivered.
    pub pixel_resolver: Option<Arc<dyn PixelResolver>>,
    /// Most lanes opened through `pixel_resolver`. Beyond it, further
    /// pixels are treated as unconfigured (and a warning is logged once).
    /// Each such lane runs `concurrency_per_pixel` workers and adds its
    /// pixel id as a metrics label.
    pub max_dynamic_lanes: usize,
    /// HTTP client settings shared by all pixels.
    pub client: ClientConfig,
    /// Most events per request (1..=1000).
    pub max_batch_size: usize,
    /// How long a lane waits for a batch to fill before sending a partial
    /// one; zero sends whatever is due at once.
    pub linger: Duration,
    /// Requests in flight per pixel.
    pub concurrency_per_pixel: usize,
    /// How long leased events stay reserved for one worker. A worker that
    /// dies lets them come back after this.
    pub lease: Duration,
    /// How often the engine asks the store which pixels have due events
    /// (retries coming due, events enqueued without a wake-up).
    pub poll_interval: Duration,
    /// Backoff between transient retries of one event.
    pub backoff: Backoff,
    /// After this many failed attempts with a transient error, an event is
    /// dead-lettered (`max_attempts`). Throttling and credential pauses do
    /// not count: those events wait, bounded by the age guard.
    pub max_attempts: u32,
    /// How outcomes are classified.
    pub retry_policy: MetaRetryPolicy,
    /// When lanes pause.
    pub breaker: BreakerConfig,
    /// Most requests spent bisecting one rejected batch.
    pub max_split_requests: usize,
    /// Events are treated as too old this much before Meta's limit.
    pub age_margin: Duration,
    /// Seeds the backoff jitter, for reproducible tests; `None` seeds from
    /// the operating system.
    pub rng_seed: Option<u64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            pixels: Vec::new(),
            pixel_resolver: None,
            max_dynamic_lanes: DEFAULT_MAX_DYNAMIC_LANES,
            client: ClientConfig::default(),
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
            linger: DEFAULT_LINGER,
            concurrency_per_pixel: DEFAULT_CONCURRENCY_PER_PIXEL,
            lease: DEFAULT_LEASE,
            poll_interval: DEFAULT_POLL_INTERVAL,
            backoff: Backoff::default(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_policy: MetaRetryPolicy::default(),
            breaker: BreakerConfig::default(),
            max_split_requests: DEFAULT_MAX_SPLIT_REQUESTS,
            age_margin: DEFAULT_AGE_MARGIN,
            rng_seed: None,
        }
    }
}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let EngineConfig {
            pixels,
            pixel_resolver,
            max_dynamic_lanes,
            client,
            max_batch_size,
            linger,
            concurrency_per_pixel,
            lease,
            poll_interval,
            backoff,
            max_attempts,
            retry_policy,
            breaker,
            max_split_requests,
            age_margin,
            rng_seed,
        } = self;
        f.debug_struct("EngineConfig")
            .field("pixels", pixels)
            .field(
                "pixel_resolver",
                &pixel_resolver.as_ref().map(|_| "<resolver>"),
            )
            .field("max_dynamic_lanes", max_dynamic_lanes)
            .field("client", client)
            .field("max_batch_size", max_batch_size)
            .field("linger", linger)
            .field("concurrency_per_pixel", concurrency_per_pixel)
            .field("lease", lease)
            .field("poll_interval", poll_interval)
            .field("backoff", backoff)
            .field("max_attempts", max_attempts)
            .field("retry_policy", retry_policy)
            .field("breaker", breaker)
            .field("max_split_requests", max_split_requests)
            .field("age_margin", age_margin)
            .field("rng_seed", rng_seed)
            .finish()
    }
}

/// The engine could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// A setting is out of range.
    #[error("invalid delivery config: {0}")]
    InvalidConfig(String),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] ClientBuildError),
}

impl EngineConfig {
    /// Checks every setting; the engine refuses to start otherwise.
    pub fn validate(&self) -> Result<(), EngineError> {
        let invalid = |msg: String| Err(EngineError::InvalidConfig(msg));
        if !(1..=MAX_EVENTS_PER_REQUEST).contains(&self.max_batch_size) {
            return invalid(format!(
                "max_batch_size must be 1..={MAX_EVENTS_PER_REQUEST}, got {}",
                self.max_batch_size
            ));
        }
        if self.concurrency_per_pixel == 0 {
            return invalid("concurrency_per_pixel must be at least 1".into());
        }
        if self.poll_interval.is_zero() {
            return invalid("poll_interval must be greater than zero".into());
        }
        if self.max_attempts == 0 {
            return invalid("max_attempts must be at least 1".into());
        }
        if self.max_split_requests == 0 {
            return invalid("max_split_requests must be at least 1".into());
        }
        if self.breaker.failure_threshold == 0 {
            return invalid("breaker.failure_threshold must be at least 1".into());
        }
        if self.breaker.max_transient_cooldown.is_zero() {
            return invalid("breaker.max_transient_cooldown must be above zero".into());
        }
        let needed = self.linger + self.client.request_timeout * 2;
        if self.lease < needed {
            return invalid(format!(
                "lease ({:?}) must be at least linger + 2 x request_timeout ({needed:?})",
                self.lease
            ));
        }
        let mut seen = HashSet::new();
        for pixel in &self.pixels {
            if pixel.pixel_id.is_empty() {
                return invalid("a pixel has an empty pixel_id".into());
            }
            if !seen.insert(pixel.pixel_id.as_str()) {
                return invalid(format!("pixel {} is configured twice", pixel.pixel_id));
            }
            if pixel.access_token.expose().is_empty() {
                return invalid(format!(
                    "pixel {} has an empty access token",
                    pixel.pixel_id
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> EngineConfig {
        EngineConfig {
            pixels: vec![PixelConfig::new("1", Secret::new("t"))],
            ..EngineConfig::default()
        }
    }

    #[test]
    fn the_defaults_are_valid() {
        valid().validate().unwrap();
    }

    #[test]
    fn nonsense_is_refused() {
        let cases: [fn(&mut EngineConfig); 12] = [
            |c| c.max_batch_size = 0,
            |c| c.max_batch_size = 1001,
            |c| c.concurrency_per_pixel = 0,
            |c| c.poll_interval = Duration::ZERO,
            |c| c.max_attempts = 0,
            |c| c.max_split_requests = 0,
            |c| c.breaker.failure_threshold = 0,
            |c| c.breaker.max_transient_cooldown = Duration::ZERO,
            |c| c.lease = Duration::from_secs(1),
            |c| c.pixels.push(PixelConfig::new("1", Secret::new("u"))),
            |c| c.pixels.push(PixelConfig::new("", Secret::new("u"))),
            |c| c.pixels.push(PixelConfig::new("2", Secret::new(""))),
        ];
        for (i, change) in cases.iter().enumerate() {
            let mut config = valid();
            change(&mut config);
            assert!(
                matches!(config.validate(), Err(EngineError::InvalidConfig(_))),
                "case {i}"
            );
        }
    }

    #[test]
    fn closures_are_resolvers_and_debug_shows_no_token() {
        let resolver: Arc<dyn PixelResolver> = Arc::new(|pixel: &str| {
            (pixel == "42").then(|| PixelConfig::new(pixel, Secret::new("TOKEN-FROM-RESOLVER")))
        });
        assert!(resolver.resolve("43").is_none());
        let resolved = resolver.resolve("42").unwrap();
        assert_eq!(resolved.refusal_for("42"), None);
        assert!(resolved.refusal_for("43").is_some());
        assert!(
            PixelConfig::new("42", Secret::new(""))
                .refusal_for("42")
                .is_some()
        );

        let config = EngineConfig {
            pixels: vec![PixelConfig {
                app_secret: Some(Secret::new("APP-SECRET-VALUE")),
                ..PixelConfig::new("1", Secret::new("CONFIGURED-TOKEN"))
            }],
            pixel_resolver: Some(resolver),
            ..EngineConfig::default()
        };
        config.validate().unwrap();
        let debug = format!("{config:?}");
        for secret in [
            "TOKEN-FROM-RESOLVER",
            "CONFIGURED-TOKEN",
            "APP-SECRET-VALUE",
        ] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(
            debug.contains(r#"pixel_resolver: Some("<resolver>")"#),
            "{debug}"
        );
        assert!(debug.contains("max_dynamic_lanes: 1000"), "{debug}");
        assert!(format!("{:?}", EngineConfig::default()).contains("pixel_resolver: None"));
    }

    #[test]
    fn only_numeric_pixel_ids_get_dynamic_lanes() {
        assert!(is_dynamic_pixel_id("1234567890"));
        for id in ["", "abc", "12/../34", "12?x=1", "1 2", &"9".repeat(65)] {
            assert!(!is_dynamic_pixel_id(id), "{id:?}");
        }
    }

    #[test]
    fn test_event_mode_resolves_the_code() {
        assert_eq!(TestEventMode::PerEvent.resolve(Some("A")), Some("A"));
        assert_eq!(TestEventMode::PerEvent.resolve(None), None);
        let force = TestEventMode::Force("F".into());
        assert_eq!(force.resolve(None), Some("F"));
        assert_eq!(force.resolve(Some("A")), Some("F"));
        assert_eq!(TestEventMode::Strip.resolve(Some("A")), None);
    }
}
