//! The browser endpoint: `POST /collect` (events from sluice.js) and the script
//! itself (`GET /sluice.js`, path configurable).
//!
//! The request contract is in `js/README.md`: a JSON body sent as `text/plain`
//! (a CORS "simple request", so `sendBeacon` works cross-origin without a
//! preflight), one request per event with `pixel_ids`. For each pixel the
//! gateway builds a website event, takes the user agent and the client IP (via
//! trusted proxies) from the request, the `_fbp`/`_fbc` first-party cookies (or
//! builds `fbc` from the page URL's `fbclid`, mints `fbp`), and runs the same
//! pipeline as every source: consent, checks, hashing, dedup, queue.
//!
//! Cookies are read and set only when the page reports `ad_storage` granted.
//! They are set by the gateway with `Set-Cookie` (domain = `browser.cookie_domain`,
//! long lifetime, `SameSite=Lax`, `Secure` on https), which outlives the 7-day
//! cap Safari puts on cookies written by scripts.

use crate::ingest::{self, IngestItem, ItemOutcome};
use crate::pipeline::{self, RequestContext, Source};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use sluice_core::cookies::{self, CookieKind};
use std::net::SocketAddr;
use std::sync::Arc;

const SOURCE: &str = "browser";

/// The built script, embedded so the binary serves it without Node.
pub const SCRIPT: &str = include_str!("../../../../js/dist/sluice.min.js");

pub async fn script() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// The allowed origin of this request, or `None` (refused).
fn allowed_origin(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match origin {
        Some(o) if state.zero_config() => Some(o.to_owned()),
        Some(o) => state
            .config
            .browser
            .allowed_origins
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(o))
            .then(|| o.to_owned()),
        // No Origin: not a browser POST from a page (curl, a server); allowed
        // only in zero-config mode, where anything goes.
        None if state.zero_config() => Some(String::new()),
        None => None,
    }
}

fn with_cors(mut response: Response, origin: Option<&str>) -> Response {
    let headers = response.headers_mut();
    if let Some(origin) = origin.filter(|o| !o.is_empty())
        && let Ok(value) = HeaderValue::from_str(origin)
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    response
}

fn error(status: StatusCode, code: &'static str, message: &str, origin: Option<&str>) -> Response {
    metrics::counter!(crate::metrics::REQUESTS_REJECTED, "source" => SOURCE, "code" => code)
        .increment(1);
    with_cors(
        (
            status,
            axum::Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response(),
        origin,
    )
}

/// `OPTIONS /collect`: sluice.js never needs a preflight, but a page that posts
/// JSON itself does.
pub async fn preflight(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(origin) = allowed_origin(&state, &headers) else {
        return error(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this origin may not send events",
            None,
        );
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    with_cors(response, Some(&origin))
}

pub async fn collect(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(origin) = allowed_origin(&state, &headers) else {
        return error(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this origin is not in browser.allowed_origins",
            None,
        );
    };
    let origin = Some(origin.as_str());
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client_ip = pipeline::client_ip(peer.ip(), forwarded, &state.config.server.trusted_proxies);
    if state.collect_limiter.check_key(&client_ip).is_err() {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many events from this address",
            origin,
        );
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    if !matches!(
        content_type.as_deref(),
        None | Some("text/plain" | "application/json")
    ) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the event as text/plain or application/json",
            origin,
        );
    }
    let body = match body {
        Ok(b) if b.len() <= state.config.browser.max_body_bytes => b,
        Ok(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "body over browser.max_body_bytes",
                origin,
            );
        }
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "body over the size limit",
                origin,
            );
        }
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                "the body could not be read",
                origin,
            );
        }
    };
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body must be a JSON object",
            origin,
        );
    };

    let pixels = match pixel_ids(&mut body) {
        Some(p) if !p.is_empty() => p,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "missing_pixel_id",
                "pixel_ids must list the pixels",
                origin,
            );
        }
    };
    if let Some(bad) = pixels.iter().find(|p| !pixel_allowed(&state, p)) {
        let _ = bad;
        return error(
            StatusCode::FORBIDDEN,
            "pixel_not_allowed",
            "a pixel in pixel_ids is not configured on this gateway",
            origin,
        );
    }

    let now_ms = state.now_ms();
    let ad_storage = body
        .get("consent")
        .and_then(|c| c.get("ad_storage"))
        .and_then(Value::as_str)
        == Some("granted");
    let cookie_header = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let page_url = body
        .get("event_source_url")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let secure = page_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
        || origin.is_some_and(|o| o.starts_with("https://"));
    let ids = if ad_storage {
        Some(browser_ids(
            &state,
            &body,
            cookie_header,
            page_url.as_deref(),
            &headers,
            now_ms,
        ))
    } else {
        None
    };
    body.remove("fbp");
    body.remove("fbc");
    let test_event_code = body
        .remove("test_event_code")
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|_| state.zero_config());
    body.insert("action_source".into(), Value::String("website".into()));
    // Browser clocks drift; a time ahead of ours is taken as now.
    if body
        .get("event_time")
        .and_then(Value::as_i64)
        .is_some_and(|t| t > now_ms.div_euclid(1000))
    {
        body.insert("event_time".into(), Value::from(now_ms.div_euclid(1000)));
    }
    let fields = pipeline::take_sluice_fields(&mut body);
    if let Some(ids) = &ids {
        let user_data = body
            .entry("user_data")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(ud) = user_data {
            if let Some(fbp) = &ids.fbp {
                ud.insert("fbp".into(), Value::String(fbp.clone()));
            }
            if let Some(fbc) = &ids.fbc {
                ud.insert("fbc".into(), Value::String(fbc.clone()));
            }
        }
    }

    let items: Vec<IngestItem> = pixels
        .iter()
        .map(|pixel| IngestItem {
            path: format!("pixel {pixel}"),
            pixel_id: pixel.clone(),
            event: body.clone(),
            test_event_code: test_event_code.clone(),
            consent: fields.consent.clone(),
        })
        .collect();
    let ctx = RequestContext {
        source: Source::Browser,
        now: now_ms.div_euclid(1000),
        client_ip: Some(client_ip),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let request = state.consent.request_signals(&headers, true);
    let outcomes = match ingest::ingest(&state, &ctx, &request, items).await {
        Ok(o) => o,
        Err(_) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the event could not be committed; retry later",
                origin,
            );
        }
    };
    for pixel in &pixels {
        state.wake_delivery(pixel);
    }
    let rejected: Vec<&ItemOutcome> = outcomes
        .iter()
        .filter(|o| matches!(o, ItemOutcome::Rejected { .. }))
        .collect();
    let mut response = if rejected.len() == outcomes.len() {
        // Nothing was taken: say why (visible in the browser's devtools).
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"results": outcomes})),
        )
            .into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    };
    if let Some(ids) = ids {
        for (name, value, set) in [
            ("_fbp", &ids.fbp, ids.set_fbp),
            ("_fbc", &ids.fbc, ids.set_fbc),
        ] {
            if let (true, Some(value)) = (set, value)
                && let Ok(cookie) = HeaderValue::from_str(&set_cookie(&state, name, value, secure))
            {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
        }
    }
    with_cors(response, origin)
}

fn pixel_ids(body: &mut Map<String, Value>) -> Option<Vec<String>> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    if let Some(v) = body.remove("pixel_ids") {
        let Value::Array(items) = v else { return None };
        return items.iter().map(text).collect();
    }
    body.remove("pixel_id")
        .as_ref()
        .and_then(text)
        .map(|p| vec![p])
}

fn pixel_allowed(state: &AppState, pixel: &str) -> bool {
    let numeric =
        !pixel.is_empty() && pixel.len() <= 20 && pixel.bytes().all(|b| b.is_ascii_digit());
    numeric && (state.zero_config() || state.config.pixel(pixel).is_some())
}

/// The browser ids of one event, and whether to (re)set each cookie.
struct BrowserIds {
    fbp: Option<String>,
    fbc: Option<String>,
    set_fbp: bool,
    set_fbc: bool,
}

fn cookie_value<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// `fbclid` from the page URL's query string (decoded; case kept).
fn fbclid(page_url: Option<&str>) -> Option<String> {
    let query = page_url?.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "fbclid")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty() && !v.contains('.'))
}

fn browser_ids(
    state: &AppState,
    body: &Map<String, Value>,
    cookie_header: Option<&str>,
    page_url: Option<&str>,
    headers: &HeaderMap,
    now_ms: i64,
) -> BrowserIds {
    let valid = |kind, v: &str| cookies::parse(kind, v).is_ok();
    // The gateway's own cookie first, then the value the script read from the
    // page's cookie jar; both forwarded byte for byte.
    let body_value = |key: &str| body.get(key).and_then(Value::as_str);
    let existing_fbp = cookie_value(cookie_header, "_fbp")
        .filter(|v| valid(CookieKind::Fbp, v))
        .or_else(|| body_value("fbp").filter(|v| valid(CookieKind::Fbp, v)))
        .map(str::to_owned);
    let existing_fbc = cookie_value(cookie_header, "_fbc")
        .filter(|v| valid(CookieKind::Fbc, v))
        .or_else(|| body_value("fbc").filter(|v| valid(CookieKind::Fbc, v)))
        .map(str::to_owned);
    let index = subdomain_index(state, headers);
    let clicked = fbclid(page_url);
    let (fbc, set_fbc) = match (existing_fbc, clicked) {
        // A new click replaces an older click id (Meta: refresh when it differs).
        (Some(old), Some(click))
            if cookies::parse(CookieKind::Fbc, &old).is_ok_and(|c| c.payload != click) =>
        {
            (Some(cookies::fbc_from_fbclid(&click, index, now_ms)), true)
        }
        (Some(old), _) => {
            let from_cookie = cookie_value(cookie_header, "_fbc") == Some(old.as_str());
            (Some(old), !from_cookie)
        }
        (None, Some(click)) => (Some(cookies::fbc_from_fbclid(&click, index, now_ms)), true),
        (None, None) => (None, false),
    };
    let (fbp, set_fbp) = match existing_fbp {
        Some(v) => {
            let from_cookie = cookie_value(cookie_header, "_fbp") == Some(v.as_str());
            (Some(v), !from_cookie)
        }
        None => (Some(cookies::mint_fbp(index, now_ms, rand_u32())), true),
    };
    BrowserIds {
        fbp,
        fbc,
        set_fbp,
        set_fbc,
    }
}

fn rand_u32() -> u32 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn subdomain_index(state: &AppState, headers: &HeaderMap) -> u8 {
    match state.config.browser.cookie_domain.as_deref() {
        Some(domain) => cookies::subdomain_index(domain),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(|h| h.rsplit_once(':').map_or(h, |(host, _)| host))
                .unwrap_or("localhost");
            cookies::subdomain_index(host)
        }
    }
}

fn set_cookie(state: &AppState, name: &str, value: &str, secure: bool) -> String {
    let browser = &state.config.browser;
    let max_age = u64::from(browser.cookie_max_age_days.min(400)) * 86_400;
    let mut cookie = format!("{name}={value}; Max-Age={max_age}; Path=/; SameSite=Lax");
    if let Some(domain) = &browser.cookie_domain {
        cookie.push_str("; Domain=");
        cookie.push_str(domain.trim_start_matches('.'));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cookies_and_click_ids() {
        let header = "a=1; _fbp=fb.1.1795859000123.42; _fbc=fb.1.1795858000456.AbC";
        assert_eq!(
            cookie_value(Some(header), "_fbp"),
            Some("fb.1.1795859000123.42")
        );
        assert_eq!(
            cookie_value(Some(header), "_fbc"),
            Some("fb.1.1795858000456.AbC")
        );
        assert_eq!(cookie_value(Some(header), "_x"), None);
        assert_eq!(
            fbclid(Some("https://s.example/p?utm=x&fbclid=IwAR0AbC_d-1#top")).as_deref(),
            Some("IwAR0AbC_d-1")
        );
        assert_eq!(fbclid(Some("https://s.example/p?fbclid=")), None);
        assert_eq!(fbclid(None), None);
    }
}
