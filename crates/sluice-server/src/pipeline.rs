//! The ingest pipeline, one plain function per stage.
//!
//! ```text
//! take sluice fields → enrich → check (structure + rules) → consent → normalize+hash
//!     → final wire check → score → (dedup + enqueue, in the store)
//! ```
//!
//! Each stage is a function of (event, context) returning the event or a typed
//! rejection, so it is tested alone, without a server. Raw personal data exists
//! only inside these functions' arguments; what leaves [`prepare`] is hashed.

use serde_json::{Map, Value};
use sluice_consent::{ConsentFields, RegionHint};
use sluice_core::validate::{self, Problem, ValidationContext};
use sluice_core::{ServerEvent, match_quality};
use sluice_normalize::NormalizeOptions;
use sluice_store::EventIdOrigin;
use std::net::IpAddr;

/// Which endpoint an event came through; decides enrichment and strictness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Browser,
    Backend,
    Graph,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Browser => "browser",
            Source::Backend => "backend",
            Source::Graph => "graph",
        }
    }

    pub fn store_source(self) -> sluice_store::EventSource {
        match self {
            Source::Browser => sluice_store::EventSource::Browser,
            Source::Backend => sluice_store::EventSource::Backend,
            Source::Graph => sluice_store::EventSource::Graph,
        }
    }
}

/// What the request tells us beyond the event itself.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub source: Source,
    /// Unix seconds when the request arrived.
    pub now: i64,
    /// The browser's address (browser source only; a backend's socket address
    /// is the shop's server, not the buyer).
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// sluice's own fields, taken off an event before it goes to Meta.
#[derive(Debug, Clone, Default)]
pub struct SluiceFields {
    pub pixel_id: Option<String>,
    /// Consent signals (`consent`, `consent_source`, `gdpr`, `gdpr_consent`,
    /// `gpc`), read by the consent stage.
    pub consent: ConsentFields,
}

/// Stage 1: removes `pixel_id` and the consent fields.
pub fn take_sluice_fields(event: &mut Map<String, Value>) -> SluiceFields {
    let pixel_id = event.remove("pixel_id").and_then(|v| match v {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    SluiceFields {
        pixel_id,
        consent: ConsentFields::take_from(event),
    }
}

/// The `event_id` used when an event carries none but names an order: the same
/// rule sluice.js applies in the browser, so both copies of a purchase share it.
pub fn event_id_for_order(order_id: &str) -> String {
    format!("order-{order_id}")
}

/// `custom_data.order_id` of a raw event, as text (a number in decimal), when
/// it is a non-empty string or a number.
pub fn order_id(event: &Map<String, Value>) -> Option<String> {
    event
        .get("custom_data")
        .and_then(|cd| cd.get("order_id"))
        .and_then(|v| match v {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
}

/// Stage 2: fills what the sender left out. `event_time` defaults to now;
/// `event_id` to `order-<order_id>` or a random UUID (the return value says
/// which); browser events get the client IP and user agent of the request
/// when they carry none.
pub fn enrich(event: &mut Map<String, Value>, ctx: &RequestContext) -> EventIdOrigin {
    if !event.contains_key("event_time") {
        event.insert("event_time".into(), Value::from(ctx.now));
    }
    let mut origin = EventIdOrigin::Sent;
    if !event.contains_key("event_id") {
        let (id, from) = match order_id(event) {
            Some(order) => (event_id_for_order(&order), EventIdOrigin::OrderId),
            None => (uuid::Uuid::new_v4().to_string(), EventIdOrigin::Generated),
        };
        event.insert("event_id".into(), Value::String(id));
        origin = from;
    }
    if ctx.source == Source::Browser {
        // A page that sent no user data still has a browser: its IP and UA.
        let user_data = event
            .entry("user_data")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(user_data) = user_data {
            enrich_browser_user_data(user_data, ctx);
        }
    }
    origin
}

fn enrich_browser_user_data(user_data: &mut Map<String, Value>, ctx: &RequestContext) {
    if let Some(ip) = ctx.client_ip {
        user_data
            .entry("client_ip_address")
            .or_insert_with(|| Value::String(ip.to_string()));
    }
    if let Some(ua) = &ctx.user_agent {
        user_data
            .entry("client_user_agent")
            .or_insert_with(|| Value::String(ua.clone()));
    }
}

/// An event ready for the store: hashed, checked, serialized.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    pub event: ServerEvent,
    pub payload: Vec<u8>,
    pub match_quality: f32,
    /// Warnings worth returning to the sender (dropped fields, missing event_id…).
    pub warnings: Vec<Problem>,
}

/// Why an event was not accepted.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub problems: Vec<Problem>,
}

/// An event that passed the structural and rule checks, still with raw user data.
#[derive(Debug)]
pub struct Checked {
    pub event: ServerEvent,
    pub warnings: Vec<Problem>,
}

/// Stage 3: structure and rules. Graph-compatible senders must send what Meta
/// accepts (hashed user data), so they see from sluice what Meta would have
/// told them; the other sources may send raw data, which sluice hashes.
pub fn check(value: Value, ctx: &RequestContext, path: &str) -> Result<Checked, Rejection> {
    let mut problems = Vec::new();
    let check_ctx = if ctx.source == Source::Graph {
        ValidationContext::for_wire(ctx.now)
    } else {
        ValidationContext::for_ingest(ctx.now)
    };
    let event = validate::check_event_value(&value, &check_ctx, path, &mut problems);
    drop(value);
    match event {
        Some(event) if !problems.iter().any(Problem::is_error) => Ok(Checked {
            event,
            warnings: problems,
        }),
        _ => Err(Rejection { problems }),
    }
}

/// The region the raw event names (`country`, `st`), for the consent stage.
/// Read before hashing; never stored.
pub fn raw_region(checked: &Checked) -> RegionHint {
    RegionHint::from_raw_user_data(&checked.event.user_data)
}

/// Stage 4: normalize and hash every raw value; values that cannot be valid are
/// dropped with a warning.
pub fn hash(checked: &mut Checked, normalize: &NormalizeOptions, path: &str) {
    for rejected in sluice_normalize::hash_user_data(&mut checked.event.user_data, normalize) {
        checked.warnings.push(Problem::warning(
            rejected.code(),
            format!("{path}.user_data.{}", rejected.field()),
            format!("{} dropped: {}", rejected.field(), rejected.error),
        ));
    }
}

/// Stage 6 (after consent): the final gate — exactly what Meta will see, with
/// hashes only — then score and serialize.
pub fn finish(
    checked: Checked,
    ctx: &RequestContext,
    path: &str,
) -> Result<PreparedEvent, Rejection> {
    let Checked { event, warnings } = checked;
    let mut wire_problems = Vec::new();
    validate::validate_event(
        &event,
        &ValidationContext::for_wire(ctx.now),
        path,
        &mut wire_problems,
    );
    if wire_problems.iter().any(Problem::is_error) {
        wire_problems.retain(Problem::is_error);
        wire_problems.extend(
            warnings
                .into_iter()
                .filter(|w| w.code != "missing_event_id"),
        );
        return Err(Rejection {
            problems: wire_problems,
        });
    }
    // The model's writer: serde_json's bytes without its per-byte escape scan.
    let mut payload = Vec::with_capacity(1024);
    event.write_json(&mut payload);
    let match_quality = match_quality::estimate(&event.user_data).score;
    Ok(PreparedEvent {
        event,
        payload,
        match_quality,
        warnings,
    })
}

/// Stages 3, 4 and 6 without a consent decision (tools and tests).
pub fn prepare(
    value: Value,
    ctx: &RequestContext,
    normalize: &NormalizeOptions,
    path: &str,
) -> Result<PreparedEvent, Rejection> {
    let mut checked = check(value, ctx, path)?;
    hash(&mut checked, normalize, path);
    finish(checked, ctx, path)
}

/// The client IP of a request: walk `X-Forwarded-For` from the right, skipping
/// our own trusted proxies, and stop at the first address we don't control. A
/// socket peer that is not a trusted proxy is the client, whatever the header
/// says (anyone can send that header).
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in header.rsplit(',') {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_795_860_000;

    fn ctx(source: Source) -> RequestContext {
        RequestContext {
            source,
            now: NOW,
            client_ip: Some("2001:db8::9".parse().unwrap()),
            user_agent: Some("Mozilla/5.0 test".into()),
        }
    }

    fn opts() -> NormalizeOptions {
        NormalizeOptions::new(2026)
    }

    fn raw_event() -> Value {
        json!({
            "event_name": "Purchase",
            "action_source": "website",
            "event_source_url": "https://shop.example.com/done",
            "pixel_id": "123",
            "consent": {"ad_user_data": "granted"},
            "user_data": {"em": "  Jane.Doe@Example.COM ", "ph": "+1 (650) 555-1212", "client_user_agent": "UA"},
            "custom_data": {"value": 10, "currency": "EUR", "order_id": "A-77"}
        })
    }

    #[test]
    fn sluice_fields_are_taken_off() {
        let mut v = raw_event();
        let fields = take_sluice_fields(v.as_object_mut().unwrap());
        assert_eq!(fields.pixel_id.as_deref(), Some("123"));
        assert!(fields.consent.consent.is_some());
        assert!(v.get("pixel_id").is_none() && v.get("consent").is_none());
    }

    #[test]
    fn enrich_defaults_time_and_order_based_event_id() {
        let mut v = raw_event();
        let m = v.as_object_mut().unwrap();
        take_sluice_fields(m);
        assert_eq!(enrich(m, &ctx(Source::Backend)), EventIdOrigin::OrderId);
        assert_eq!(m["event_time"], json!(NOW));
        assert_eq!(m["event_id"], json!("order-A-77"));
        // Backend events never get the caller's socket address as the buyer's IP.
        assert!(m["user_data"].get("client_ip_address").is_none());
        let mut b = raw_event();
        let m = b.as_object_mut().unwrap();
        enrich(m, &ctx(Source::Browser));
        assert_eq!(m["user_data"]["client_ip_address"], json!("2001:db8::9"));
        assert_eq!(
            m["user_data"]["client_user_agent"],
            json!("UA"),
            "sent value wins"
        );
    }

    #[test]
    fn enrich_says_where_the_event_id_came_from() {
        let mut sent = json!({"event_name": "Lead", "event_id": "x"});
        assert_eq!(
            enrich(sent.as_object_mut().unwrap(), &ctx(Source::Backend)),
            EventIdOrigin::Sent
        );
        let mut none = json!({"event_name": "Lead"});
        assert_eq!(
            enrich(none.as_object_mut().unwrap(), &ctx(Source::Backend)),
            EventIdOrigin::Generated
        );
        assert!(none["event_id"].as_str().is_some_and(|id| id.len() == 36));
        let mut numeric = json!({"event_name": "Purchase", "custom_data": {"order_id": 7731}});
        assert_eq!(
            enrich(numeric.as_object_mut().unwrap(), &ctx(Source::Backend)),
            EventIdOrigin::OrderId
        );
        assert_eq!(numeric["event_id"], json!("order-7731"));
    }

    #[test]
    fn browser_events_without_user_data_still_get_ip_and_user_agent() {
        let mut v = json!({"event_name": "ViewContent", "event_id": "v"});
        let m = v.as_object_mut().unwrap();
        enrich(m, &ctx(Source::Browser));
        assert_eq!(m["user_data"]["client_ip_address"], json!("2001:db8::9"));
        assert_eq!(
            m["user_data"]["client_user_agent"],
            json!("Mozilla/5.0 test")
        );
        let mut b = json!({"event_name": "Lead", "event_id": "b"});
        enrich(b.as_object_mut().unwrap(), &ctx(Source::Backend));
        assert!(b.get("user_data").is_none(), "backends send their own");
    }

    #[test]
    fn prepare_hashes_and_scores() {
        let mut v = raw_event();
        let m = v.as_object_mut().unwrap();
        take_sluice_fields(m);
        enrich(m, &ctx(Source::Backend));
        let prepared = prepare(v, &ctx(Source::Backend), &opts(), "$").unwrap();
        let payload = String::from_utf8(prepared.payload).unwrap();
        assert!(
            !payload.contains("Jane") && !payload.contains("jane"),
            "{payload}"
        );
        assert!(
            payload.contains("86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d")
        );
        assert!(!prepared.event.user_data.has_raw_values());
        assert!(prepared.match_quality > 4.0);
    }

    #[test]
    fn graph_source_rejects_unhashed_data_like_meta() {
        let mut v = raw_event();
        let m = v.as_object_mut().unwrap();
        take_sluice_fields(m);
        enrich(m, &ctx(Source::Graph));
        let err = prepare(v, &ctx(Source::Graph), &opts(), "data[0]").unwrap_err();
        assert!(err.problems.iter().any(|p| p.code == "unhashed_user_data"));
    }

    #[test]
    fn an_event_left_without_identifiers_is_rejected() {
        let v = json!({
            "event_name": "Lead", "event_time": NOW, "event_id": "x", "action_source": "email",
            "user_data": {"em": "not-an-email"}
        });
        let err = prepare(v, &ctx(Source::Backend), &opts(), "$").unwrap_err();
        let codes: Vec<&str> = err.problems.iter().map(|p| p.code).collect();
        assert!(codes.contains(&"no_customer_information"), "{codes:?}");
    }

    #[test]
    fn client_ip_walks_trusted_proxies_only() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.1.1.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, Some("198.51.100.7, 203.0.113.5, 10.2.2.2"), &trusted).to_string(),
            "203.0.113.5"
        );
        let outsider: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_ip(outsider, Some("203.0.113.5"), &trusted), outsider);
        assert_eq!(client_ip(peer, Some("garbage"), &trusted), peer);
        assert_eq!(client_ip(peer, None, &trusted), peer);
    }
}
