//! Everything wrong with an event or a request, before it is sent.
//!
//! Meta rejects a whole batch for one bad event and rarely says which one, so
//! sluice checks each event first and reports *every* problem it finds, each with
//! a stable code, a JSON path and a message. Messages never contain the values
//! themselves: an email typed into the wrong field must not end up in a log.
//!
//! Two entry points:
//! * [`validate_event`] / [`validate_request`] check typed values;
//! * [`check_event_value`] / [`parse_document`] start from untrusted JSON, report
//!   structural problems (missing and unknown keys, wrong types) and then the
//!   typed checks.

use crate::cookies::{self, CookieKind};
use crate::currency::is_iso_4217;
use crate::event::{ActionSource, EVENT_KEYS, ServerEvent};
use crate::graph_error::{GraphError, codes};
use crate::request::{EventRequest, MAX_EVENTS_PER_REQUEST};
use crate::user_data::{HashedKey, UserData};
use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// How serious a problem is: errors make Meta reject the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One thing wrong with an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Stable, machine-readable (`event_time_too_old`, `missing_field`, …).
    pub code: &'static str,
    /// JSON path, e.g. `data[3].user_data.fbc`.
    pub path: String,
    pub message: String,
    pub severity: Severity,
}

impl Problem {
    pub fn error(code: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            code,
            path: path.into(),
            message: message.into(),
            severity: Severity::Error,
        }
    }

    pub fn warning(
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            code,
            path: path.into(),
            message: message.into(),
            severity: Severity::Warning,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level} [{}] {}: {}", self.code, self.path, self.message)
    }
}

/// What the checks need to know about the moment and the destination.
#[derive(Debug, Clone, Copy)]
pub struct ValidationContext {
    /// Unix seconds at validation time.
    pub now: i64,
    /// How far in the future `event_time` may be. Meta documents no bound; 60 s
    /// absorbs clock skew and matches what integrators report Meta tolerates.
    pub max_future_skew_s: i64,
    /// True when the event is about to go to Meta: raw contact data is an error.
    /// False on ingest, where sluice hashes it itself.
    pub require_hashed: bool,
}

impl ValidationContext {
    pub fn for_wire(now: i64) -> Self {
        ValidationContext {
            now,
            max_future_skew_s: 60,
            require_hashed: true,
        }
    }

    pub fn for_ingest(now: i64) -> Self {
        ValidationContext {
            require_hashed: false,
            ..ValidationContext::for_wire(now)
        }
    }
}

/// Keys that identify a person well enough on their own for Meta to match.
const STRONG_KEYS: [&str; 14] = [
    "em",
    "ph",
    "external_id",
    "fbc",
    "fbp",
    "client_ip_address",
    "madid",
    "anon_id",
    "lead_id",
    "fb_login_id",
    "subscription_id",
    "page_scoped_user_id",
    "ig_sid",
    "ctwa_clid",
];

/// Meta's LDU state codes: 0 = geolocate, 1000 California, 1001–1013 (§10).
fn is_ldu_state(code: i64) -> bool {
    code == 0 || (1000..=1013).contains(&code)
}

/// Checks one typed event; `path` is its JSON path (e.g. `data[2]`).
pub fn validate_event(
    event: &ServerEvent,
    ctx: &ValidationContext,
    path: &str,
    out: &mut Vec<Problem>,
) {
    let at = |field: &str| format!("{path}.{field}");

    if event.event_name.trim().is_empty() {
        out.push(Problem::error(
            "missing_field",
            at("event_name"),
            "event_name is empty",
        ));
    }
    check_event_time(event, ctx, &at("event_time"), out);

    match event.event_id.as_deref() {
        None => out.push(Problem::warning(
            "missing_event_id",
            at("event_id"),
            "no event_id: Meta cannot deduplicate this event against the pixel or a retry",
        )),
        Some(id) if id.trim().is_empty() => out.push(Problem::error(
            "invalid_event_id",
            at("event_id"),
            "event_id is empty",
        )),
        Some(_) => {}
    }

    if let Some(url) = event.event_source_url.as_deref()
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        out.push(Problem::error(
            "invalid_event_source_url",
            at("event_source_url"),
            "event_source_url must be an http:// or https:// URL",
        ));
    }

    match event.action_source {
        ActionSource::Website => {
            if event.event_source_url.is_none() {
                out.push(Problem::error(
                    "missing_event_source_url",
                    at("event_source_url"),
                    "website events need event_source_url",
                ));
            }
            if event
                .user_data
                .client_user_agent
                .as_deref()
                .is_none_or(str::is_empty)
            {
                out.push(Problem::error(
                    "missing_client_user_agent",
                    at("user_data.client_user_agent"),
                    "website events need user_data.client_user_agent",
                ));
            }
            if event.user_data.client_ip_address.is_none() {
                out.push(Problem::warning(
                    "missing_client_ip_address",
                    at("user_data.client_ip_address"),
                    "website events should carry the browser's IP address",
                ));
            }
        }
        ActionSource::App => check_app_data(event, path, out),
        ActionSource::BusinessMessaging if event.messaging_channel.is_none() => {
            out.push(Problem::error(
                "missing_messaging_channel",
                at("messaging_channel"),
                "business_messaging events need messaging_channel",
            ));
        }
        _ => {}
    }

    check_custom_data(event, path, out);
    check_user_data(&event.user_data, ctx, &at("user_data"), out);
    check_ldu(event, path, out);
}

fn check_event_time(
    event: &ServerEvent,
    ctx: &ValidationContext,
    path: &str,
    out: &mut Vec<Problem>,
) {
    // Saturating: `event_time` is untrusted and may be i64::MIN.
    let age = ctx.now.saturating_sub(event.event_time);
    if event.event_time > 100_000_000_000 {
        out.push(Problem::error(
            "event_time_in_milliseconds",
            path,
            "event_time must be Unix seconds, this looks like milliseconds",
        ));
    } else if age > event.action_source.max_age_seconds() {
        let days = event.action_source.max_age_seconds() / 86_400;
        out.push(Problem::error(
            "event_time_too_old",
            path,
            format!("event_time is more than {days} days old; Meta rejects the whole request"),
        ));
    } else if age < ctx.max_future_skew_s.saturating_neg() {
        out.push(Problem::error(
            "event_time_in_future",
            path,
            format!("event_time is {} s in the future", age.saturating_neg()),
        ));
    }
}

fn check_app_data(event: &ServerEvent, path: &str, out: &mut Vec<Problem>) {
    let Some(app) = event.app_data.as_ref() else {
        out.push(Problem::error(
            "missing_app_data",
            format!("{path}.app_data"),
            "app events need app_data",
        ));
        return;
    };
    if app.advertiser_tracking_enabled.is_none() {
        out.push(Problem::error(
            "missing_field",
            format!("{path}.app_data.advertiser_tracking_enabled"),
            "app events need advertiser_tracking_enabled (0 or 1)",
        ));
    }
    if app.application_tracking_enabled.is_none() {
        out.push(Problem::warning(
            "missing_field",
            format!("{path}.app_data.application_tracking_enabled"),
            "send application_tracking_enabled (0 or 1); Meta's pages disagree on whether it is required",
        ));
    }
    let extinfo_path = format!("{path}.app_data.extinfo");
    match app.extinfo.as_deref() {
        None => out.push(Problem::error(
            "missing_field",
            extinfo_path,
            "app events need extinfo",
        )),
        Some(ext) if ext.len() != crate::app_data::EXTINFO_LEN => out.push(Problem::error(
            "invalid_extinfo",
            extinfo_path,
            format!("extinfo must have 16 entries, found {}", ext.len()),
        )),
        Some(ext) => {
            if ext[0] != "a2" && ext[0] != "i2" {
                out.push(Problem::error(
                    "invalid_extinfo",
                    format!("{extinfo_path}[0]"),
                    "extinfo[0] must be \"a2\" (Android) or \"i2\" (iOS)",
                ));
            }
            if ext[4].is_empty() {
                out.push(Problem::error(
                    "invalid_extinfo",
                    format!("{extinfo_path}[4]"),
                    "extinfo[4] (OS version) is required",
                ));
            }
        }
    }
}

fn check_custom_data(event: &ServerEvent, path: &str, out: &mut Vec<Problem>) {
    let cd = event.custom_data.as_ref();
    if let Some(currency) = cd.and_then(|c| c.currency.as_deref())
        && !is_iso_4217(currency)
    {
        out.push(Problem::error(
            "invalid_currency",
            format!("{path}.custom_data.currency"),
            "currency must be an ISO 4217 code such as USD or EUR",
        ));
    }
    if let Some(value) = cd.and_then(|c| c.value.as_ref())
        && value.as_f64().is_none_or(|v| !v.is_finite())
    {
        out.push(Problem::error(
            "invalid_value",
            format!("{path}.custom_data.value"),
            "value must be a finite number",
        ));
    }
    if event.event_name == "Purchase" {
        if cd.and_then(|c| c.value.as_ref()).is_none() {
            out.push(Problem::error(
                "missing_purchase_value",
                format!("{path}.custom_data.value"),
                "Purchase events need custom_data.value",
            ));
        }
        if cd.and_then(|c| c.currency.as_ref()).is_none() {
            out.push(Problem::error(
                "missing_purchase_currency",
                format!("{path}.custom_data.currency"),
                "Purchase events need custom_data.currency",
            ));
        }
    }
}

fn check_user_data(ud: &UserData, ctx: &ValidationContext, path: &str, out: &mut Vec<Problem>) {
    let present = ud.present_keys();
    if present.is_empty() {
        out.push(Problem::error(
            "no_customer_information",
            path,
            "user_data carries no customer-information parameter",
        ));
    } else {
        let has = |k: &str| present.contains(&k);
        let strong = STRONG_KEYS.iter().any(|k| has(k));
        // Names with a place or a birth date also match; anything weaker is what
        // Meta refuses with "insufficient customer information".
        let name_combo = has("fn") && has("ln") && (has("zp") || has("ct") || has("db"));
        if !strong && !name_combo {
            out.push(Problem::error(
                "insufficient_customer_information",
                path,
                "user_data has only weak identifiers; add em, ph, external_id, fbp/fbc or the client IP",
            ));
        }
    }
    if ctx.require_hashed {
        // `external_id` is "hashing recommended", not required: both official
        // SDKs send it verbatim and Meta accepts it (capi-reference.md §3, §5.2).
        for key in HashedKey::ALL
            .into_iter()
            .filter(|k| *k != HashedKey::ExternalId)
        {
            let raw = ud.hashed(key).values.iter().filter(|v| v.is_raw()).count();
            if raw > 0 {
                out.push(Problem::error(
                    "unhashed_user_data",
                    format!("{path}.{}", key.as_str()),
                    format!(
                        "{} must be a SHA-256 hash of the normalized value",
                        key.as_str()
                    ),
                ));
            }
        }
    }
    if let Some(fbc) = ud.fbc.as_deref()
        && let Err(e) = cookies::parse(CookieKind::Fbc, fbc)
    {
        out.push(Problem::error(
            "invalid_fbc",
            format!("{path}.fbc"),
            format!("malformed fbc: {e}"),
        ));
    }
    if let Some(fbp) = ud.fbp.as_deref()
        && let Err(e) = cookies::parse(CookieKind::Fbp, fbp)
    {
        out.push(Problem::error(
            "invalid_fbp",
            format!("{path}.fbp"),
            format!("malformed fbp: {e}"),
        ));
    }
    if let Some(ip) = ud.client_ip_address.as_deref()
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        out.push(Problem::error(
            "invalid_client_ip_address",
            format!("{path}.client_ip_address"),
            "client_ip_address must be a valid IPv4 or IPv6 address without port or spaces",
        ));
    }
}

fn check_ldu(event: &ServerEvent, path: &str, out: &mut Vec<Problem>) {
    let options_path = format!("{path}.data_processing_options");
    if let Some(options) = event.data_processing_options.as_ref()
        && options.iter().any(|o| !o.eq_ignore_ascii_case("LDU"))
    {
        out.push(Problem::error(
            "ldu_inconsistent",
            options_path.clone(),
            "data_processing_options may only be [] or [\"LDU\"]",
        ));
    }
    let country = event.data_processing_options_country;
    let state = event.data_processing_options_state;
    if !event.is_ldu() {
        if country.is_some() || state.is_some() {
            out.push(Problem::error(
                "ldu_inconsistent",
                options_path,
                "data_processing_options_country/state are set but data_processing_options is not [\"LDU\"]",
            ));
        }
        return;
    }
    match country {
        Some(0 | 1) | None => {}
        Some(_) => out.push(Problem::error(
            "ldu_inconsistent",
            format!("{path}.data_processing_options_country"),
            "data_processing_options_country must be 1 (USA) or 0 (geolocate)",
        )),
    }
    if country.is_some() && state.is_none() {
        out.push(Problem::error(
            "ldu_inconsistent",
            format!("{path}.data_processing_options_state"),
            "with data_processing_options_country set, data_processing_options_state is required",
        ));
    }
    if let Some(s) = state
        && !is_ldu_state(s)
    {
        out.push(Problem::error(
            "ldu_inconsistent",
            format!("{path}.data_processing_options_state"),
            "data_processing_options_state must be 0 (geolocate) or a state code 1000-1013",
        ));
    }
    if state.is_none() && event.user_data.client_ip_address.is_none() {
        out.push(Problem::error(
            "ldu_inconsistent",
            format!("{path}.data_processing_options_state"),
            "LDU without a client IP needs data_processing_options_state (Meta cannot geolocate)",
        ));
    }
}

/// Checks a whole request: the event count, then every event.
pub fn validate_request(request: &EventRequest, ctx: &ValidationContext) -> Vec<Problem> {
    let mut out = Vec::new();
    check_event_count(request.data.len(), &mut out);
    for (i, event) in request.data.iter().enumerate() {
        validate_event(event, ctx, &format!("data[{i}]"), &mut out);
    }
    out
}

fn check_event_count(count: usize, out: &mut Vec<Problem>) {
    if count == 0 {
        out.push(Problem::error(
            "empty_data",
            "data",
            "data must contain at least one event",
        ));
    } else if count > MAX_EVENTS_PER_REQUEST {
        out.push(Problem::error(
            "too_many_events",
            "data",
            format!("{count} events in one request; Meta accepts at most {MAX_EVENTS_PER_REQUEST}"),
        ));
    }
}

/// Checks an untrusted JSON event: structure first, then the typed rules.
/// Returns the typed event when it parses.
pub fn check_event_value(
    value: &Value,
    ctx: &ValidationContext,
    path: &str,
    out: &mut Vec<Problem>,
) -> Option<ServerEvent> {
    let Some(object) = value.as_object() else {
        out.push(Problem::error(
            "invalid_type",
            path,
            "an event must be a JSON object",
        ));
        return None;
    };
    let before = out.len();
    for key in ["event_name", "event_time", "action_source", "user_data"] {
        if !object.contains_key(key) {
            out.push(Problem::error(
                "missing_field",
                format!("{path}.{key}"),
                format!("{key} is required"),
            ));
        }
    }
    for key in object.keys() {
        if !EVENT_KEYS.contains(&key.as_str()) {
            out.push(Problem::error(
                "unknown_field",
                format!("{path}.{}", scrub_key(key)),
                "unexpected key at event level; put custom properties in custom_data",
            ));
        }
    }
    // Most events deserialize: try without the path tracking, which costs
    // a frame per nested value, and track paths only to explain a failure.
    if let Ok(event) = <ServerEvent as serde::Deserialize>::deserialize(value) {
        validate_event(&event, ctx, path, out);
        return Some(event);
    }
    match serde_path_to_error::deserialize::<_, ServerEvent>(value) {
        Ok(event) => {
            validate_event(&event, ctx, path, out);
            Some(event)
        }
        Err(err) => {
            let inner = err.inner().to_string();
            // The event-level key checks above already reported a missing
            // key (serde's path is then the event itself, ".") or an unknown
            // one (its path is the key alone). Nested ones were not.
            let error_path = err.path().to_string();
            let at_event_level = if inner.starts_with("missing field") {
                error_path == "."
            } else if inner.starts_with("unknown field") {
                !error_path.contains(['.', '['])
            } else {
                false
            };
            let structural_already_reported = out.len() > before && at_event_level;
            if !structural_already_reported {
                let field_path = err.path().to_string();
                let full = if field_path == "." || field_path.is_empty() {
                    path.to_owned()
                } else {
                    format!("{path}.{field_path}")
                };
                let code = if field_path == "action_source" {
                    "invalid_action_source"
                } else if inner.starts_with("unknown field") {
                    "unknown_field"
                } else if inner.starts_with("missing field") {
                    "missing_field"
                } else {
                    "invalid_type"
                };
                out.push(Problem::error(code, full, scrub_message(&inner)));
            }
            None
        }
    }
}

/// Keys are shown in paths; cut absurd ones so a payload cannot flood a log line.
fn scrub_key(key: &str) -> String {
    key.chars().take(64).collect()
}

/// serde quotes the offending value in some messages (`invalid type: string
/// "…"`); drop what is between double quotes so no value reaches an error.
fn scrub_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            if !inside {
                out.push_str("<value>");
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

/// What [`parse_document`] found.
#[derive(Debug, Default)]
pub struct ParsedDocument {
    /// Each event's path and, when it parsed, its typed value.
    pub events: Vec<(String, Option<ServerEvent>)>,
    /// Request-level fields when the document was `{"data": [...]}`.
    pub test_event_code: Option<String>,
    pub partner_agent: Option<String>,
    pub problems: Vec<Problem>,
}

impl ParsedDocument {
    pub fn error_count(&self) -> usize {
        self.problems.iter().filter(|p| p.is_error()).count()
    }
}

/// Parses one event, a JSON array of events, NDJSON, or a Graph request body
/// `{"data": [...]}`, and checks everything in it.
pub fn parse_document(bytes: &[u8], ctx: &ValidationContext) -> ParsedDocument {
    let mut doc = ParsedDocument::default();
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(items)) => {
            check_event_count(items.len(), &mut doc.problems);
            for (i, item) in items.iter().enumerate() {
                push_event(&mut doc, item, ctx, format!("[{i}]"));
            }
        }
        Ok(Value::Object(object)) if object.contains_key("data") => {
            check_envelope(&object, ctx, &mut doc);
        }
        Ok(value @ Value::Object(_)) => push_event(&mut doc, &value, ctx, "$".to_owned()),
        Ok(_) => doc.problems.push(Problem::error(
            "invalid_type",
            "$",
            "expected an event object, an array of events, NDJSON or {\"data\": [...]}",
        )),
        Err(whole_err) => parse_ndjson(bytes, ctx, &mut doc, &whole_err),
    }
    doc
}

fn push_event(doc: &mut ParsedDocument, value: &Value, ctx: &ValidationContext, path: String) {
    let event = check_event_value(value, ctx, &path, &mut doc.problems);
    doc.events.push((path, event));
}

fn check_envelope(
    object: &serde_json::Map<String, Value>,
    ctx: &ValidationContext,
    doc: &mut ParsedDocument,
) {
    const ENVELOPE_KEYS: [&str; 13] = [
        "data",
        "access_token",
        "appsecret_proof",
        "test_event_code",
        "partner_agent",
        "namespace_id",
        "upload_id",
        "upload_tag",
        "upload_source",
        "platforms",
        "progress",
        "trace",
        "pixel_id",
    ];
    for key in object.keys() {
        if !ENVELOPE_KEYS.contains(&key.as_str()) {
            doc.problems.push(Problem::error(
                "unknown_field",
                scrub_key(key),
                "unexpected key in the request body",
            ));
        }
    }
    doc.test_event_code = object
        .get("test_event_code")
        .and_then(Value::as_str)
        .map(str::to_owned);
    doc.partner_agent = object
        .get("partner_agent")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match object.get("data") {
        Some(Value::Array(items)) => {
            check_event_count(items.len(), &mut doc.problems);
            for (i, item) in items.iter().enumerate() {
                // The Python SDK sends each event as a JSON-encoded string.
                match item {
                    Value::String(text) => match serde_json::from_str::<Value>(text) {
                        Ok(inner) => push_event(doc, &inner, ctx, format!("data[{i}]")),
                        Err(_) => doc.problems.push(Problem::error(
                            "invalid_json",
                            format!("data[{i}]"),
                            "event string is not valid JSON",
                        )),
                    },
                    other => push_event(doc, other, ctx, format!("data[{i}]")),
                }
            }
        }
        _ => doc.problems.push(Problem::error(
            "invalid_type",
            "data",
            "data must be an array of events",
        )),
    }
}

fn parse_ndjson(
    bytes: &[u8],
    ctx: &ValidationContext,
    doc: &mut ParsedDocument,
    whole_err: &serde_json::Error,
) {
    let lines: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .collect();
    if lines.len() < 2 {
        doc.problems.push(Problem::error(
            "invalid_json",
            "$",
            format!(
                "not valid JSON (line {}, column {}: {})",
                whole_err.line(),
                whole_err.column(),
                whole_err.classify_text()
            ),
        ));
        return;
    }
    for (i, line) in lines.iter().enumerate() {
        let path = format!("line {}", i + 1);
        match serde_json::from_slice::<Value>(line) {
            Ok(value) => push_event(doc, &value, ctx, path),
            Err(e) => doc.problems.push(Problem::error(
                "invalid_json",
                path,
                format!(
                    "not valid JSON (column {}: {})",
                    e.column(),
                    e.classify_text()
                ),
            )),
        }
    }
}

trait ClassifyText {
    fn classify_text(&self) -> &'static str;
}

impl ClassifyText for serde_json::Error {
    fn classify_text(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "unexpected end of input",
        }
    }
}

/// The Graph error Meta answers for a request whose first error is `problem`.
/// The emulator and the Graph-compatible endpoint both use this, so a sender sees
/// the same answer from sluice as from Meta.
pub fn graph_error_for(problem: &Problem) -> GraphError {
    use codes::subcodes as sub;
    let base =
        GraphError::new(codes::INVALID_PARAMETER, "OAuthException", String::new()).transient(false);
    let (subcode, title): (Option<i64>, &str) = match problem.code {
        "event_time_too_old" => (Some(sub::EVENT_TIME_TOO_OLD), "Event Timestamp Too Old"),
        "missing_purchase_value" | "missing_purchase_currency" => (
            Some(sub::PURCHASE_VALUE_MISSING),
            "Missing Value for Purchase Event",
        ),
        "unhashed_user_data" => (Some(sub::USER_DATA_NOT_HASHED), "User Parameter Not Hashed"),
        "no_customer_information" | "insufficient_customer_information" => (
            Some(sub::INSUFFICIENT_CUSTOMER_INFO),
            "Insufficient Customer Information",
        ),
        "ldu_inconsistent" => (Some(sub::LDU_INVALID), "Invalid Data Processing Options"),
        "unknown_field" | "missing_field" | "invalid_json" | "invalid_type" | "empty_data"
        | "too_many_events" => (None, "Invalid Parameter"),
        _ => (Some(sub::INVALID_EVENT_PARAMETER), "Invalid Parameter"),
    };
    let (message, user_title, user_msg) = match problem.code {
        // Graph's wording: `Unexpected key "x" on param "$['data'][0]".`
        "unknown_field" => {
            let (parent, key) = problem.path.rsplit_once('.').unwrap_or(("", &problem.path));
            let text = format!(
                "Unexpected key \"{key}\" on param \"{}\".",
                graph_param_path(parent)
            );
            (
                format!("(#100) {text}"),
                "Server Side Api Parameter Error",
                text,
            )
        }
        "missing_field" => {
            let text = format!(
                "The parameter {} is required",
                graph_param_path(&problem.path)
            );
            (format!("(#100) {text}"), title, text)
        }
        _ => (
            "Invalid parameter".to_owned(),
            title,
            format!("{}: {}", problem.path, problem.message),
        ),
    };
    let mut error = base.user_text(user_title, user_msg);
    error.message = message;
    error.error_subcode = subcode;
    error
}

/// `data[0].user_data` → `$['data'][0]['user_data']`, the path notation Graph
/// uses in its parameter errors.
fn graph_param_path(path: &str) -> String {
    let mut out = String::from("$");
    for segment in path.split('.').filter(|s| !s.is_empty() && *s != "$") {
        let (name, rest) = segment.split_once('[').unwrap_or((segment, ""));
        if !name.is_empty() {
            out.push_str(&format!("['{name}']"));
        }
        if !rest.is_empty() {
            out.push('[');
            out.push_str(rest);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_795_860_000;
    const HASH: &str = "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d";

    fn good() -> Value {
        json!({
            "event_name": "Purchase",
            "event_time": NOW - 10,
            "event_id": "order-1",
            "action_source": "website",
            "event_source_url": "https://shop.example.com/done",
            "user_data": {"em": [HASH], "client_user_agent": "UA", "client_ip_address": "2001:db8::7"},
            "custom_data": {"value": 10, "currency": "EUR"}
        })
    }

    fn codes_of(value: &Value, ctx: ValidationContext) -> Vec<&'static str> {
        let mut out = Vec::new();
        check_event_value(value, &ctx, "$", &mut out);
        out.iter()
            .filter(|p| p.is_error())
            .map(|p| p.code)
            .collect()
    }

    #[test]
    fn a_good_event_has_no_errors() {
        assert!(codes_of(&good(), ValidationContext::for_wire(NOW)).is_empty());
    }

    #[test]
    fn reports_every_problem_not_just_the_first() {
        let mut v = good();
        v["event_time"] = json!(NOW - 8 * 86_400);
        v["user_data"]["client_user_agent"] = Value::Null;
        v["user_data"]
            .as_object_mut()
            .unwrap()
            .remove("client_user_agent");
        v["custom_data"]["currency"] = json!("XYZ");
        v["user_data"]["fbc"] = json!("fb.1.123.x");
        let codes = codes_of(&v, ValidationContext::for_wire(NOW));
        assert_eq!(
            codes,
            vec![
                "event_time_too_old",
                "missing_client_user_agent",
                "invalid_currency",
                "invalid_fbc"
            ]
        );
    }

    #[test]
    fn physical_store_gets_62_days() {
        let mut v = good();
        v["action_source"] = json!("physical_store");
        v["event_time"] = json!(NOW - 30 * 86_400);
        assert!(codes_of(&v, ValidationContext::for_wire(NOW)).is_empty());
        v["event_time"] = json!(NOW - 63 * 86_400);
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(NOW)),
            vec!["event_time_too_old"]
        );
    }

    #[test]
    fn future_and_millisecond_times() {
        let mut v = good();
        v["event_time"] = json!(NOW + 61);
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(NOW)),
            vec!["event_time_in_future"]
        );
        v["event_time"] = json!(NOW + 59);
        assert!(codes_of(&v, ValidationContext::for_wire(NOW)).is_empty());
        v["event_time"] = json!(NOW * 1000);
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(NOW)),
            vec!["event_time_in_milliseconds"]
        );
    }

    #[test]
    fn extreme_event_times_do_not_overflow() {
        let mut v = good();
        v["event_time"] = json!(i64::MIN);
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(NOW)),
            vec!["event_time_too_old"]
        );
        v["event_time"] = json!(i64::MAX);
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(NOW)),
            vec!["event_time_in_milliseconds"]
        );
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(i64::MIN)),
            vec!["event_time_in_milliseconds"]
        );
    }

    #[test]
    fn structural_problems_have_paths() {
        let mut v = good();
        v.as_object_mut().unwrap().remove("event_name");
        v["advertiser_tracking_enabled"] = json!(1);
        let mut out = Vec::new();
        check_event_value(&v, &ValidationContext::for_wire(NOW), "data[0]", &mut out);
        let got: Vec<(&str, &str)> = out.iter().map(|p| (p.code, p.path.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("missing_field", "data[0].event_name"),
                ("unknown_field", "data[0].advertiser_tracking_enabled")
            ]
        );
    }

    #[test]
    fn a_missing_key_is_reported_once() {
        for key in ["event_name", "event_time", "action_source", "user_data"] {
            let mut v = good();
            v.as_object_mut().unwrap().remove(key);
            for ctx in [
                ValidationContext::for_wire(NOW),
                ValidationContext::for_ingest(NOW),
            ] {
                let mut out = Vec::new();
                check_event_value(&v, &ctx, "data[0]", &mut out);
                let got: Vec<(&str, &str)> =
                    out.iter().map(|p| (p.code, p.path.as_str())).collect();
                let expected = format!("data[0].{key}");
                assert_eq!(got, [("missing_field", expected.as_str())], "{key}");
            }
        }
    }

    #[test]
    fn a_nested_problem_is_reported_beside_event_level_ones() {
        let mut v = good();
        v.as_object_mut().unwrap().remove("event_name");
        v["user_data"]["zz"] = json!(1);
        let mut out = Vec::new();
        check_event_value(&v, &ValidationContext::for_wire(NOW), "$", &mut out);
        let got: Vec<(&str, &str)> = out.iter().map(|p| (p.code, p.path.as_str())).collect();
        // serde stops at the first problem it meets: the nested unknown key
        // comes before it notices the missing event_name.
        assert_eq!(
            got,
            [
                ("missing_field", "$.event_name"),
                ("unknown_field", "$.user_data.zz")
            ]
        );
    }

    #[test]
    fn wrong_types_never_echo_the_value() {
        let mut v = good();
        v["event_time"] = json!("jane@example.com");
        let mut out = Vec::new();
        check_event_value(&v, &ValidationContext::for_wire(NOW), "$", &mut out);
        assert_eq!(out[0].code, "invalid_type");
        assert_eq!(out[0].path, "$.event_time");
        assert!(!out[0].message.contains("jane"), "{}", out[0].message);
        let mut v = good();
        v["action_source"] = json!("web");
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(NOW)),
            vec!["invalid_action_source"]
        );
    }

    #[test]
    fn unhashed_contact_data_is_an_error_only_on_the_wire() {
        let mut v = good();
        v["user_data"]["ct"] = json!("Paris");
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(NOW)),
            vec!["unhashed_user_data"]
        );
        assert!(codes_of(&v, ValidationContext::for_ingest(NOW)).is_empty());
    }

    #[test]
    fn purchase_needs_value_and_currency() {
        let mut v = good();
        v.as_object_mut().unwrap().remove("custom_data");
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(NOW)),
            vec!["missing_purchase_value", "missing_purchase_currency"]
        );
    }

    #[test]
    fn customer_information_rules() {
        let mut v = good();
        v["action_source"] = json!("email");
        v["user_data"] = json!({});
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(NOW)),
            vec!["no_customer_information"]
        );
        v["user_data"] = json!({"country": HASH, "ge": HASH});
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(NOW)),
            vec!["insufficient_customer_information"]
        );
        v["user_data"] = json!({"fn": HASH, "ln": HASH, "zp": HASH});
        assert!(codes_of(&v, ValidationContext::for_wire(NOW)).is_empty());
    }

    #[test]
    fn ldu_consistency() {
        let mut v = good();
        v["data_processing_options"] = json!(["LDU"]);
        v["data_processing_options_country"] = json!(1);
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(NOW)),
            vec!["ldu_inconsistent"]
        );
        v["data_processing_options_state"] = json!(1000);
        assert!(codes_of(&v, ValidationContext::for_wire(NOW)).is_empty());
        v["data_processing_options_state"] = json!(77);
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(NOW)),
            vec!["ldu_inconsistent"]
        );
        let mut v = good();
        v["data_processing_options_state"] = json!(1000);
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(NOW)),
            vec!["ldu_inconsistent"]
        );
    }

    #[test]
    fn app_events_need_app_data() {
        let mut v = good();
        v["action_source"] = json!("app");
        v["event_name"] = json!("AppInstall");
        v.as_object_mut().unwrap().remove("event_source_url");
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(NOW)),
            vec!["missing_app_data"]
        );
        v["app_data"] = json!({"advertiser_tracking_enabled": 1, "application_tracking_enabled": 1, "extinfo": ["x"]});
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(NOW)),
            vec!["invalid_extinfo"]
        );
        let mut ext = vec![""; 16];
        ext[0] = "i2";
        ext[4] = "17.1";
        v["app_data"]["extinfo"] = json!(ext);
        assert!(codes_of(&v, ValidationContext::for_wire(NOW)).is_empty());
    }

    #[test]
    fn documents_in_every_shape() {
        let ctx = ValidationContext::for_wire(NOW);
        let one = serde_json::to_vec(&good()).unwrap();
        assert_eq!(parse_document(&one, &ctx).events.len(), 1);
        let array = serde_json::to_vec(&json!([good(), good()])).unwrap();
        assert_eq!(parse_document(&array, &ctx).events.len(), 2);
        let mut nd = one.clone();
        nd.push(b'\n');
        nd.extend_from_slice(&one);
        nd.push(b'\n');
        let doc = parse_document(&nd, &ctx);
        assert_eq!((doc.events.len(), doc.error_count()), (2, 0));
        let envelope =
            serde_json::to_vec(&json!({"data": [good()], "test_event_code": "TEST1"})).unwrap();
        let doc = parse_document(&envelope, &ctx);
        assert_eq!(doc.test_event_code.as_deref(), Some("TEST1"));
        let strings = json!({"data": [serde_json::to_string(&good()).unwrap()]});
        let doc = parse_document(&serde_json::to_vec(&strings).unwrap(), &ctx);
        assert_eq!((doc.events.len(), doc.error_count()), (1, 0));
        let doc = parse_document(b"{not json", &ctx);
        assert_eq!(doc.problems[0].code, "invalid_json");
        let too_many = serde_json::to_vec(&json!({"data": vec![good(); 1001]})).unwrap();
        assert_eq!(
            parse_document(&too_many, &ctx).problems[0].code,
            "too_many_events"
        );
    }

    #[test]
    fn graph_errors_for_problems() {
        let p = Problem::error("event_time_too_old", "data[0].event_time", "old");
        let e = graph_error_for(&p);
        assert_eq!((e.code, e.error_subcode), (100, Some(2_804_003)));
        let p = Problem::error("unknown_field", "data[0].foo", "x");
        let e = graph_error_for(&p);
        assert_eq!(e.error_subcode, None);
        assert_eq!(
            e.error_user_msg.as_deref(),
            Some("Unexpected key \"foo\" on param \"$['data'][0]\".")
        );
        let p = Problem::error("missing_field", "data[2].user_data", "x");
        assert_eq!(
            graph_error_for(&p).message,
            "(#100) The parameter $['data'][2]['user_data'] is required"
        );
    }

    #[test]
    fn external_id_may_be_sent_unhashed_like_the_sdks_do() {
        let mut v = good();
        v["user_data"]["external_id"] = json!(["ext-42"]);
        assert!(codes_of(&v, ValidationContext::for_wire(NOW)).is_empty());
        v["user_data"]["ln"] = json!(["Doe"]);
        assert_eq!(
            codes_of(&v, ValidationContext::for_wire(NOW)),
            vec!["unhashed_user_data"]
        );
    }
}
