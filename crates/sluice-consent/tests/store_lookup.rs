//! The HTTP consent-store client against a real (tiny) axum server on 127.0.0.1:0.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sluice_consent::{
    ConsentSignals, ConsentStore, ErrorCode, FlagState, HttpConsentStore, HttpStoreConfig,
    LookupError, LookupWhen, Source,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const GRANTED: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const UNKNOWN: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const GARBAGE: &str = "3333333333333333333333333333333333333333333333333333333333333333";
const ERROR: &str = "4444444444444444444444444444444444444444444444444444444444444444";
const HANG: &str = "5555555555555555555555555555555555555555555555555555555555555555";
const HUGE: &str = "6666666666666666666666666666666666666666666666666666666666666666";
const BAD_VALUE: &str = "7777777777777777777777777777777777777777777777777777777777777777";

#[derive(Clone, Default)]
struct Seen {
    requests: Arc<AtomicUsize>,
    keys: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn consent(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    let key = q.get("key").cloned().unwrap_or_default();
    seen.keys.lock().unwrap().push(key.clone());
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer s3cret") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match key.as_str() {
        GRANTED => (
            [("content-type", "application/json")],
            r#"{"ad_user_data":"granted","ad_personalization":"denied","marketing":true}"#,
        )
            .into_response(),
        UNKNOWN => StatusCode::NOT_FOUND.into_response(),
        GARBAGE => "<html>oops</html>".into_response(),
        ERROR => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        HANG => std::future::pending::<Response>().await,
        HUGE => {
            format!("{{\"marketing\":true,\"pad\":\"{}\"}}", "x".repeat(100_000)).into_response()
        }
        BAD_VALUE => r#"{"ad_user_data":"sure"}"#.into_response(),
        _ => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn spawn_server() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/consent", get(consent))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}

fn config(addr: SocketAddr, timeout_ms: u64) -> HttpStoreConfig {
    let text = format!(
        "url = \"http://{addr}/consent\"\ntimeout_ms = {timeout_ms}\ncache_ttl_secs = 300\nbearer_token = \"s3cret\"\n"
    );
    toml::from_str(&text).unwrap()
}

fn client() -> reqwest::Client {
    // The workspace builds reqwest with `rustls-no-provider`; the server installs
    // a provider at start-up, the tests do it here.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn store(timeout_ms: u64) -> (Arc<dyn ConsentStore>, Seen) {
    let (addr, seen) = spawn_server().await;
    let s = HttpConsentStore::new(client(), &config(addr, timeout_ms)).unwrap();
    (Arc::new(s), seen)
}

#[tokio::test]
async fn answer_is_parsed_and_then_served_from_the_cache() {
    let (store, seen) = store(5_000).await;
    let a = store.lookup(GRANTED).await.unwrap();
    assert!(a.known);
    assert_eq!(a.consent_mode.ad_user_data, Some(FlagState::Granted));
    assert_eq!(a.consent_mode.ad_personalization, Some(FlagState::Denied));
    assert_eq!(a.categories.get("marketing"), Some(&FlagState::Granted));
    // Upper-case hex is the same key: served from the cache.
    let again = store.lookup(&GRANTED.to_ascii_uppercase()).await.unwrap();
    assert_eq!(again, a);
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
    assert_eq!(seen.keys.lock().unwrap().as_slice(), [GRANTED]);
}

#[tokio::test]
async fn not_found_is_an_unknown_answer_and_is_cached() {
    let (store, seen) = store(5_000).await;
    let a = store.lookup(UNKNOWN).await.unwrap();
    assert!(!a.known);
    let _ = store.lookup(UNKNOWN).await.unwrap();
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn failures_are_coded_and_not_cached() {
    let (store, seen) = store(5_000).await;
    for (key, want) in [
        (GARBAGE, LookupError::Invalid),
        (ERROR, LookupError::Unavailable),
        (HUGE, LookupError::Invalid),
        (BAD_VALUE, LookupError::Invalid),
    ] {
        assert_eq!(store.lookup(key).await, Err(want), "{key}");
        assert_eq!(store.lookup(key).await, Err(want), "{key}");
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn a_store_that_never_answers_times_out() {
    // The handler never responds, so the outcome does not depend on timing.
    let (store, _) = store(200).await;
    let r = store.lookup(HANG).await;
    assert_eq!(r, Err(LookupError::Timeout));
    assert_eq!(r.unwrap_err().code(), ErrorCode::ConsentStoreTimeout);
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let s = HttpConsentStore::new(client(), &config(addr, 5_000)).unwrap();
    assert_eq!(s.lookup(GRANTED).await, Err(LookupError::Unavailable));
}

#[tokio::test]
async fn raw_keys_never_leave_the_process() {
    let (store, seen) = store(5_000).await;
    assert_eq!(
        store.lookup("jane@example.com").await,
        Err(LookupError::KeyInvalid)
    );
    assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn missing_token_is_unavailable() {
    let (addr, _) = spawn_server().await;
    let mut cfg = config(addr, 5_000);
    cfg.bearer_token = None;
    let s = HttpConsentStore::new(client(), &cfg).unwrap();
    assert_eq!(s.lookup(GRANTED).await, Err(LookupError::Unavailable));
}

#[tokio::test]
async fn lookup_results_feed_the_signals() {
    let (patient, _) = store(5_000).await;
    let ok = ConsentSignals::default().with_store(patient.lookup(GRANTED).await);
    assert!(ok.errors.is_empty());
    assert!(ok.store_answer().is_some());
    let (impatient, _) = store(200).await;
    let failed = ConsentSignals::default().with_store(impatient.lookup(HANG).await);
    assert_eq!(
        failed.errors.first().map(|e| e.code),
        Some(ErrorCode::ConsentStoreTimeout)
    );
}

#[test]
fn config_defaults_and_when_to_look_up() {
    let cfg: HttpStoreConfig = toml::from_str("url = \"https://consent.internal/v1\"").unwrap();
    assert_eq!(
        (cfg.timeout_ms, cfg.cache_ttl_secs, cfg.cache_max_entries),
        (300, 300, 10_000)
    );
    assert_eq!(cfg.when, LookupWhen::NoEventSignal);
    let empty = ConsentSignals::default();
    let with_signal = ConsentSignals::default().with_gpc(Some("1"));
    assert!(cfg.should_lookup(Source::Backend, &empty));
    assert!(!cfg.should_lookup(Source::Backend, &with_signal));
    assert!(!cfg.should_lookup(Source::Browser, &empty));
    let always: HttpStoreConfig =
        toml::from_str("url = \"https://x\"\nwhen = \"always\"\nsources = [\"browser\"]").unwrap();
    assert!(always.should_lookup(Source::Browser, &with_signal));
    assert!(toml::from_str::<HttpStoreConfig>("url = \"https://x\"\ntimeout = 5").is_err());
    assert!(
        HttpConsentStore::new(client(), &toml::from_str("url = \"ftp://x\"").unwrap()).is_err()
    );
    // The token never shows in Debug output.
    let with_token: HttpStoreConfig =
        toml::from_str("url = \"https://x\"\nbearer_token = \"tok123\"").unwrap();
    assert!(!format!("{with_token:?}").contains("tok123"));
}
