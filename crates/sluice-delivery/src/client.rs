//! The Graph API client: one `POST {base}/{version}/{pixel}/events` per batch.
//!
//! # Wire format
//!
//! The body is JSON, `{"data":[...], "access_token": "...", ...}`, the shape
//! the Node SDK sends (capi-reference.md §1.1). The access token travels in
//! the body and never in the URL, so it cannot end up in a proxy's access log
//! or in the URL that the HTTP stack prints in its errors. When an app secret
//! is configured, `appsecret_proof` (lowercase hex HMAC-SHA256 of the token,
//! keyed by the app secret) is sent along.
//!
//! # Two ways in
//!
//! The gateway stores each hashed event as JSON bytes; [`GraphClient::raw_body`]
//! splices those bytes into a [`RawBody`] through [`RawValue`] without building
//! a tree per event, and [`GraphClient::send_body`] sends it
//! ([`GraphClient::send_raw`] does both). Library users hand typed
//! [`ServerEvent`]s to [`GraphClient::send_events`] or a whole [`EventRequest`]
//! to [`GraphClient::send_request`]. Every path serializes through the same
//! body struct, so they produce the same wire format.
//!
//! # Outcome
//!
//! `Ok(EventResponse)` for a 2xx with Meta's success object, otherwise a
//! [`DeliveryError`]. Deciding what to do about the error is the job of
//! [`crate::retry`]; this module only reports what happened.

use std::ops::Range;
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use sluice_core::{
    DEFAULT_GRAPH_VERSION, EventRequest, EventResponse, GraphErrorEnvelope, MAX_EVENTS_PER_REQUEST,
    Secret, ServerEvent,
};

use crate::error::{ClientBuildError, DeliveryError, TransportKind};
use crate::usage;

/// Where Meta's Graph API lives.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";

/// How long to wait for a TCP + TLS connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one request may take in total. Meta suggests 1.5 s for single
/// events (§1.3); a batch of hundreds of events needs more headroom.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The most response body we read; Graph's answers are a few hundred bytes,
/// anything larger is a misdirected URL and only its start is of interest.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How much of an unexpected body is kept for diagnostics.
const SNIPPET_CHARS: usize = 200;

/// The `partner_agent` sent when none is configured: `sluice_<version>`,
/// dots replaced so Meta's agent-name normalisation keeps it intact.
pub fn default_partner_agent() -> String {
    format!("sluice_{}", env!("CARGO_PKG_VERSION").replace('.', "_"))
}

/// Installs `ring` as the process-wide rustls crypto provider, once.
///
/// The HTTP stack is built without a provider of its own (it would compile
/// a C library); it panics when asked for TLS without one. Installing fails
/// harmlessly if someone else already installed a provider, and that one is
/// then used.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Settings shared by every request of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Scheme and host, e.g. `https://graph.facebook.com`; tests and the
    /// sandbox point it at the emulator.
    pub base_url: String,
    /// The pinned Graph version, e.g. `v26.0`.
    pub version: String,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Total time for one request, from sending to the last body byte.
    pub request_timeout: Duration,
    /// `partner_agent` sent with each batch unless the batch sets its own;
    /// `None` sends none.
    pub partner_agent: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            version: DEFAULT_GRAPH_VERSION.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            partner_agent: Some(default_partner_agent()),
            user_agent: format!("sluice/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// The credentials of one pixel: an access token and, optionally, the proof
/// derived from the app secret. `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    access_token: Secret,
    appsecret_proof: Option<Secret>,
}

impl Credentials {
    /// Token only, no `appsecret_proof`.
    pub fn new(access_token: Secret) -> Self {
        Credentials {
            access_token,
            appsecret_proof: None,
        }
    }

    /// Token plus the `appsecret_proof` computed from `app_secret`.
    pub fn with_app_secret(access_token: Secret, app_secret: &Secret) -> Self {
        let proof = appsecret_proof(app_secret, &access_token);
        Credentials {
            access_token,
            appsecret_proof: Some(proof),
        }
    }

    /// The token, for the one place that sends it.
    pub fn access_token(&self) -> &Secret {
        &self.access_token
    }

    /// The proof, if an app secret was given.
    pub fn appsecret_proof(&self) -> Option<&Secret> {
        self.appsecret_proof.as_ref()
    }

    /// A short, non-reversible tag of the token (12 hex digits of its
    /// SHA-256), so that state keyed by (pixel, token), like the circuit
    /// breaker, starts fresh after a token rotation without holding the
    /// token itself.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.access_token.expose().as_bytes());
        const_hex::encode(&digest[..6])
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_token", &self.access_token)
            .field("appsecret_proof", &self.appsecret_proof.is_some())
            .finish()
    }
}

/// `appsecret_proof`: lowercase hex HMAC-SHA256, key = app secret,
/// message = access token (§1.1).
pub fn appsecret_proof(app_secret: &Secret, access_token: &Secret) -> Secret {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac takes keys of any length"));
    mac.update(access_token.expose().as_bytes());
    Secret::new(const_hex::encode(mac.finalize().into_bytes()))
}

/// Top-level request parameters other than `data` and the credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOptions {
    /// Routes the batch to Events Manager's Test Events tool.
    pub test_event_code: Option<String>,
    /// Overrides the client's `partner_agent` for this batch.
    pub partner_agent: Option<String>,
    /// Scope for third-party ids.
    pub namespace_id: Option<String>,
    /// Offline upload set id.
    pub upload_id: Option<String>,
    /// Offline upload tag.
    pub upload_tag: Option<String>,
    /// Offline upload source.
    pub upload_source: Option<String>,
}

/// The JSON body. Generic over the event representation so that stored
/// bytes (`&RawValue`) and typed events produce the same wire format.
#[derive(Serialize)]
struct Body<'a, E: Serialize> {
    data: &'a [E],
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    appsecret_proof: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_event_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partner_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload_tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload_source: Option<&'a str>,
}

/// What every body starts with; the events follow, then `]` and the rest.
const DATA_PREFIX: &[u8] = br#"{"data":["#;

/// A request body for events stored as JSON, and where each event sits in
/// it.
///
/// Built once per batch with the exact capacity it needs
/// ([`GraphClient::raw_body`]), so that the delivery lane can drop the
/// stored payloads before the request goes out: the body is then the only
/// copy of the batch's events while it is in flight (bench/RESULTS.md,
/// "Session 3: memory"). When Meta rejects the batch, [`RawBody::part`] cuts
/// the body of any part of it out of this one, for the bisection in
/// [`crate::split`], without the stored payloads. Cloning shares the bytes.
#[derive(Clone)]
pub struct RawBody {
    bytes: Bytes,
    /// The byte range of each event in `bytes`, in order.
    events: Vec<Range<usize>>,
}

impl RawBody {
    /// How many events the body carries.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// `true` if it carries none (never, for a body built here).
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The whole body, as it goes on the wire (it holds the access token:
    /// never log it).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The JSON of the event at `index`, verbatim.
    pub fn event(&self, index: usize) -> Option<&[u8]> {
        self.events.get(index).map(|span| &self.bytes[span.clone()])
    }

    /// A body with the events at `indices` (in that order), and the
    /// parameters and credentials given now: a token refreshed since this
    /// body was built is the one the part carries. An index past the end is
    /// refused ([`DeliveryError::InvalidBatch`]), as is an empty or
    /// oversized part.
    pub fn part(
        &self,
        client: &GraphClient,
        indices: impl IntoIterator<Item = usize>,
        credentials: &Credentials,
        options: &BatchOptions,
    ) -> Result<RawBody, DeliveryError> {
        let spans = indices
            .into_iter()
            .map(|i| self.events.get(i).cloned())
            .collect::<Option<Vec<_>>>()
            .ok_or(DeliveryError::InvalidBatch {
                reason: "event index out of range",
            })?;
        client.build_body(
            spans.iter().map(|span| &self.bytes[span.clone()]),
            credentials,
            options,
        )
    }
}

impl std::fmt::Debug for RawBody {
    /// Leaves out the bytes: they carry the access token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawBody")
            .field("events", &self.events.len())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// A Graph API client for the events edge. Cheap to clone: clones share one
/// connection pool.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base_url: Arc<str>,
    version: Arc<str>,
    partner_agent: Option<Arc<str>>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base_url", &self.base_url)
            .field("version", &self.version)
            .field("partner_agent", &self.partner_agent)
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    /// Builds a client (and its connection pool) from `config`.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientBuildError> {
        if config.connect_timeout.is_zero() {
            return Err(ClientBuildError::ZeroTimeout("connect_timeout"));
        }
        if config.request_timeout.is_zero() {
            return Err(ClientBuildError::ZeroTimeout("request_timeout"));
        }
        let base_url = validate_base_url(&config.base_url)?;
        let version = validate_version(&config.version)?;
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(config.user_agent.clone())
            // Graph never redirects the events edge; following a redirect
            // would re-send the token to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| ClientBuildError::Http(error_chain(&err)))?;
        Ok(GraphClient {
            http,
            base_url: base_url.into(),
            version: version.into(),
            partner_agent: config.partner_agent.as_deref().map(Arc::from),
        })
    }

    /// The same client (sharing its connection pool) aimed at another base
    /// URL and/or Graph version, for pixels configured differently.
    pub fn with_endpoint(
        &self,
        base_url: Option<&str>,
        version: Option<&str>,
    ) -> Result<Self, ClientBuildError> {
        let mut client = self.clone();
        if let Some(base_url) = base_url {
            client.base_url = validate_base_url(base_url)?.into();
        }
        if let Some(version) = version {
            client.version = validate_version(version)?.into();
        }
        Ok(client)
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The Graph version requests use.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// `{base}/{version}/{pixel}/events`. Carries no credentials.
    pub fn events_url(&self, pixel_id: &str) -> String {
        format!("{}/{}/{}/events", self.base_url, self.version, pixel_id)
    }

    /// Sends events stored as JSON (one object each) as one batch. The bytes
    /// are copied into the body verbatim.
    pub async fn send_raw(
        &self,
        pixel_id: &str,
        credentials: &Credentials,
        events: &[&RawValue],
        options: &BatchOptions,
    ) -> Result<EventResponse, DeliveryError> {
        let body = self.raw_body(events, credentials, options)?;
        self.send_body(pixel_id, credentials, &body).await
    }

    /// Builds the body [`send_raw`](Self::send_raw) would send for events
    /// stored as JSON (one object each), byte for byte, with the events
    /// copied in verbatim. Refuses an empty batch and one of more than 1000
    /// events ([`DeliveryError::InvalidBatch`]).
    pub fn raw_body(
        &self,
        events: &[&RawValue],
        credentials: &Credentials,
        options: &BatchOptions,
    ) -> Result<RawBody, DeliveryError> {
        self.build_body(
            events.iter().map(|event| event.get().as_bytes()),
            credentials,
            options,
        )
    }

    /// Sends a body from [`raw_body`](Self::raw_body) or [`RawBody::part`].
    /// The bytes are shared with the request, not copied. `credentials`
    /// should be the ones the body was built with: they are blanked out of
    /// any unexpected answer kept for diagnostics.
    pub async fn send_body(
        &self,
        pixel_id: &str,
        credentials: &Credentials,
        body: &RawBody,
    ) -> Result<EventResponse, DeliveryError> {
        // Never empty: `build_body` refuses an empty batch.
        self.post(pixel_id, credentials, body.bytes.clone()).await
    }

    /// Sends typed events as one batch.
    pub async fn send_events(
        &self,
        pixel_id: &str,
        credentials: &Credentials,
        events: &[ServerEvent],
        options: &BatchOptions,
    ) -> Result<EventResponse, DeliveryError> {
        self.send(pixel_id, credentials, events, options).await
    }

    /// Sends a whole [`EventRequest`], its top-level parameters included.
    pub async fn send_request(
        &self,
        pixel_id: &str,
        credentials: &Credentials,
        request: &EventRequest,
    ) -> Result<EventResponse, DeliveryError> {
        let options = BatchOptions {
            test_event_code: request.test_event_code.clone(),
            partner_agent: request.partner_agent.clone(),
            namespace_id: request.namespace_id.clone(),
            upload_id: request.upload_id.clone(),
            upload_tag: request.upload_tag.clone(),
            upload_source: request.upload_source.clone(),
        };
        self.send(pixel_id, credentials, &request.data, &options)
            .await
    }

    async fn send<E: Serialize>(
        &self,
        pixel_id: &str,
        credentials: &Credentials,
        events: &[E],
        options: &BatchOptions,
    ) -> Result<EventResponse, DeliveryError> {
        check_count(events.len())?;
        let body = serde_json::to_vec(&self.body(events, credentials, options)).map_err(|_| {
            DeliveryError::InvalidBatch {
                reason: "events could not be serialized",
            }
        })?;
        self.post(pixel_id, credentials, body).await
    }

    /// The body struct for `events`; serialized by `send`, and (with no
    /// events) for the parameters of a [`RawBody`].
    fn body<'a, E: Serialize>(
        &'a self,
        events: &'a [E],
        credentials: &'a Credentials,
        options: &'a BatchOptions,
    ) -> Body<'a, E> {
        Body {
            data: events,
            access_token: credentials.access_token.expose(),
            appsecret_proof: credentials.appsecret_proof.as_ref().map(Secret::expose),
            test_event_code: options.test_event_code.as_deref(),
            partner_agent: options
                .partner_agent
                .as_deref()
                .or(self.partner_agent.as_deref()),
            namespace_id: options.namespace_id.as_deref(),
            upload_id: options.upload_id.as_deref(),
            upload_tag: options.upload_tag.as_deref(),
            upload_source: options.upload_source.as_deref(),
        }
    }

    /// `{"data":[` + the events joined by `,` + `]` + the parameters: what
    /// serde writes for [`Body`] with `&RawValue` events, built in one
    /// allocation of the exact size instead of a vector doubled to up to
    /// twice the body's size. The events must each be one JSON value: they
    /// come from a `&RawValue`, from a body built from them, or (the
    /// delivery lane) from stored payloads its age guard has parsed in full.
    pub(crate) fn build_body<'e>(
        &self,
        events: impl ExactSizeIterator<Item = &'e [u8]> + Clone,
        credentials: &Credentials,
        options: &BatchOptions,
    ) -> Result<RawBody, DeliveryError> {
        check_count(events.len())?;
        let no_events: &[&RawValue] = &[];
        let params =
            serde_json::to_vec(&self.body(no_events, credentials, options)).map_err(|_| {
                DeliveryError::InvalidBatch {
                    reason: "events could not be serialized",
                }
            })?;
        // `{"data":[]` then `,"access_token":...}`: keep what follows the `[`.
        let Some(rest) = params.strip_prefix(DATA_PREFIX) else {
            return Err(DeliveryError::InvalidBatch {
                reason: "events could not be serialized",
            });
        };
        let size = DATA_PREFIX.len()
            + events.clone().map(<[u8]>::len).sum::<usize>()
            + events.len().saturating_sub(1)
            + rest.len();
        let mut bytes = Vec::with_capacity(size);
        let mut spans = Vec::with_capacity(events.len());
        bytes.extend_from_slice(DATA_PREFIX);
        for (i, event) in events.enumerate() {
            if i > 0 {
                bytes.push(b',');
            }
            let start = bytes.len();
            bytes.extend_from_slice(event);
            spans.push(start..bytes.len());
        }
        bytes.extend_from_slice(rest);
        Ok(RawBody {
            bytes: Bytes::from(bytes),
            events: spans,
        })
    }

    /// POSTs a finished body and reads the answer.
    async fn post(
        &self,
        pixel_id: &str,
        credentials: &Credentials,
        body: impl Into<reqwest::Body>,
    ) -> Result<EventResponse, DeliveryError> {
        if !is_valid_pixel_id(pixel_id) {
            return Err(DeliveryError::InvalidBatch {
                reason: "pixel id must be 1-64 ascii letters, digits or underscores",
            });
        }
        let response = self
            .http
            .post(self.events_url(pixel_id))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;

        let status = response.status();
        let wait = usage::wait_hint(response.headers());
        let body = read_limited(response).await?;
        interpret(status.as_u16(), wait, &body, credentials)
    }
}

/// A batch must carry 1 to 1000 events.
fn check_count(events: usize) -> Result<(), DeliveryError> {
    if events == 0 {
        return Err(DeliveryError::InvalidBatch {
            reason: "no events",
        });
    }
    if events > MAX_EVENTS_PER_REQUEST {
        return Err(DeliveryError::InvalidBatch {
            reason: "more than 1000 events",
        });
    }
    Ok(())
}

/// Turns a complete HTTP response into the outcome. Separate from the I/O so
/// that every branch is unit-tested.
fn interpret(
    status: u16,
    wait: Option<Duration>,
    body: &[u8],
    credentials: &Credentials,
) -> Result<EventResponse, DeliveryError> {
    if (200..300).contains(&status) {
        if let Ok(ok) = serde_json::from_slice::<EventResponse>(body) {
            return Ok(ok);
        }
    } else if let Ok(envelope) = serde_json::from_slice::<GraphErrorEnvelope>(body) {
        return Err(DeliveryError::Graph {
            status,
            error: envelope.error,
            buc_wait: wait,
        });
    }
    Err(DeliveryError::UnexpectedResponse {
        status,
        snippet: snippet(body, credentials),
        retry_after: wait,
    })
}

/// The first characters of a body, with the credentials blanked out in case
/// something upstream echoed the request.
fn snippet(body: &[u8], credentials: &Credentials) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let mut text = text.trim().to_owned();
    if text.is_empty() {
        return None;
    }
    let token = credentials.access_token.expose();
    if !token.is_empty() {
        text = text.replace(token, "<redacted>");
    }
    if let Some(proof) = &credentials.appsecret_proof {
        text = text.replace(proof.expose(), "<redacted>");
    }
    Some(text.chars().take(SNIPPET_CHARS).collect())
}

/// Reads at most [`MAX_RESPONSE_BYTES`] of the body.
async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, DeliveryError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        let room = MAX_RESPONSE_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_RESPONSE_BYTES {
            break;
        }
    }
    Ok(body)
}

fn transport_error(err: reqwest::Error) -> DeliveryError {
    let kind = if err.is_timeout() {
        TransportKind::Timeout
    } else if err.is_connect() {
        TransportKind::Connect
    } else if err.is_body() || err.is_decode() {
        TransportKind::Body
    } else if err.is_request() {
        TransportKind::Request
    } else {
        TransportKind::Other
    };
    DeliveryError::Transport {
        kind,
        message: error_chain(&err.without_url()),
    }
}

/// `outer: inner: innermost`, the way the HTTP stack's errors read best.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

fn validate_base_url(base_url: &str) -> Result<String, ClientBuildError> {
    let trimmed = base_url.trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed)
        .map_err(|err| ClientBuildError::InvalidBaseUrl(format!("{trimmed}: {err}")))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(ClientBuildError::InvalidBaseUrl(format!(
            "{}: expected http(s)://host[:port][/path]",
            parsed.scheme()
        )));
    }
    Ok(trimmed.to_owned())
}

fn validate_version(version: &str) -> Result<String, ClientBuildError> {
    let valid = version
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit())
        });
    if valid {
        Ok(version.to_owned())
    } else {
        Err(ClientBuildError::InvalidVersion(version.to_owned()))
    }
}

/// Pixel (dataset) ids are numeric; letters and `_` are allowed for test
/// setups. Anything else could change the URL path.
fn is_valid_pixel_id(pixel_id: &str) -> bool {
    (1..=64).contains(&pixel_id.len())
        && pixel_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests;
