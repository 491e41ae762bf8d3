//! Consent, end to end: the real gateway (`Gateway::start` on 127.0.0.1:0 with
//! a temporary data directory) delivering to a spawned emulator.
//!
//! - `matrix_of_events_signals_and_regions`: every signal × region case, through
//!   `/v1/events` and `/collect`, asserted against the default preset's table:
//!   whether the event reached the emulator, with which `user_data` keys, and
//!   its `opt_out` / LDU fields; the audit row of every decision; the decision
//!   counters in `/metrics`.
//! - `no_raw_personal_data_anywhere`: marker values sent through every path
//!   (delivered, dropped by consent, rejected, dead-lettered, still queued,
//!   browser, Graph endpoint) never appear in the store files, the debug logs,
//!   `/metrics`, `/readyz`, `/admin/dlq`, the responses or what reached the
//!   emulator; `Store::forget` then removes the person's events.
//! - `consent_store_answers_and_failures`: a consent store answering granted,
//!   denied, 404, garbage, unknown values, 500 or never; failures are "no
//!   consent", counted and audited with their reason code.
//! - `retention_purges_old_audit_rows_and_expired_ledger_entries`: the
//!   background task with a one-second interval.
//!
//! The expected outcomes are written out from the preset table in
//! crates/sluice-consent/README.md, not computed by calling `decide`.

#[path = "../../sluice-consent/tests/common/tc_encoder.rs"]
mod tc_encoder;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use sluice_emulator::{Emulator, EmulatorConfig, FaultRule, RunningEmulator};
use sluice_normalize::{NormalizeOptions, PiiField, hash_to_wire};
use sluice_server::{Config, Gateway, StartOptions};
use sluice_store::{AuditEntry, AuditFilter, AuditRow, EventIdOrigin, EventSource, NewEvent};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const PIXEL: &str = "111";
const DLQ_PIXEL: &str = "222";
const RETRY_PIXEL: &str = "333";
const API_KEY: &str = "shop-key-0123456789abcdef";
const ADMIN_KEY: &str = "admin-key-0123456789abcdef";
const TOKEN: &str = "EAAB-test-token";
const ORIGIN: &str = "https://shop.example";
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) sluice-e2e";
const CLIENT_IP: &str = "203.0.113.7";
const FBP: &str = "fb.1.1700000000000.1234567890";
/// Generous: the machine running the tests may be heavily loaded.
const DEADLINE: Duration = Duration::from_secs(120);

// === shared harness ===

/// Captured log output of this test binary (every test's gateway logs here,
/// at debug level for every crate).
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::util::SubscriberInitExt;
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .finish()
            .try_init();
        buffer
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn config_text(dir: &Path, graph_url: &str, pixels: &[&str], extra: &str) -> String {
    let mut text = format!(
        r#"
data_dir = '{dir}'
[server]
trusted_proxies = ["127.0.0.1/32"]
[store]
synchronous = "normal"
[delivery]
graph_url = "{graph_url}"
linger_ms = 10
batch_size = 50
timeout_ms = 20000
[admin]
key = "{ADMIN_KEY}"
[browser]
allowed_origins = ["{ORIGIN}"]
rate_limit_per_minute = 100000
[[api_keys]]
name = "shop"
key = "{API_KEY}"
pixels = [{list}]
"#,
        dir = dir.display(),
        list = pixels
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", "),
    );
    for p in pixels {
        text.push_str(&format!(
            "[[pixels]]\nid = \"{p}\"\naccess_token = \"{TOKEN}\"\n"
        ));
    }
    text.push_str(extra);
    text
}

struct Harness {
    gateway: Gateway,
    emulator: RunningEmulator,
    dir: tempfile::TempDir,
    http: reqwest::Client,
    base: String,
}

impl Harness {
    /// A gateway with `pixels` delivering to a fresh emulator. `env` are
    /// `SLUICE_*` overrides, `extra` is appended to the TOML.
    async fn start(pixels: &[&str], extra: &str, env: &[(&str, &str)]) -> Harness {
        logs();
        let emulator = Emulator::new(EmulatorConfig::default())
            .unwrap()
            .bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(dir.path(), &emulator.base_url(), pixels, extra);
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let config = Config::from_toml_with_env(&text, Some("test"), env).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway = Gateway::start(config, listener, StartOptions::default())
            .await
            .unwrap();
        let base = format!("http://{}", gateway.addr);
        Harness {
            gateway,
            emulator,
            dir,
            http: reqwest::Client::new(),
            base,
        }
    }

    async fn post_backend(&self, event: &Value, headers: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut req = self
            .http
            .post(format!("{}/v1/events", self.base))
            .bearer_auth(API_KEY)
            .json(event);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn post_collect(&self, body: &Value, headers: &[(&str, &str)]) -> (StatusCode, String) {
        let mut req = self
            .http
            .post(format!("{}/collect", self.base))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("origin", ORIGIN)
            .header("user-agent", USER_AGENT)
            .header("x-forwarded-for", CLIENT_IP)
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    async fn get_text(&self, path: &str, bearer: Option<&str>) -> String {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req.send().await.unwrap().text().await.unwrap()
    }

    async fn metrics(&self) -> String {
        self.get_text("/metrics", None).await
    }

    async fn queued(&self) -> u64 {
        self.gateway
            .state
            .store
            .stats(now_ms())
            .await
            .unwrap()
            .queued
    }

    async fn audit(&self) -> Vec<AuditEntry> {
        let mut out = Vec::new();
        let mut filter = AuditFilter {
            limit: Some(1000),
            ..AuditFilter::default()
        };
        loop {
            let page = self.gateway.state.store.audit_list(&filter).await.unwrap();
            let Some(last) = page.last() else { break };
            filter.after_id = Some(last.id);
            out.extend(page);
        }
        out
    }

    /// Emulator events of `pixel` by event_id (every copy).
    fn delivered(&self, pixel: &str) -> BTreeMap<String, Vec<Value>> {
        let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for e in self.emulator.emulator().events_for(pixel) {
            let v = e.json();
            let id = v["event_id"].as_str().unwrap_or_default().to_owned();
            out.entry(id).or_default().push(v);
        }
        out
    }
}

/// Polls `condition` until it holds or `DEADLINE` passes.
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `name{labels} value` lines of a Prometheus text body whose labels contain
/// every `want` pair; the sum of their values.
fn metric_sum(text: &str, name: &str, want: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            want.iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn audit_record(entry: &AuditEntry) -> Value {
    serde_json::from_str(&entry.row.record_json).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

// === the matrix ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    D,
    L,
    X,
}
use Out::{D, L, X};

impl Out {
    fn as_str(self) -> &'static str {
        match self {
            D => "deliver",
            L => "deliver_ldu",
            X => "drop",
        }
    }
}

/// Region classes of the default preset: opt-in (EEA, UK, CH, unknown), the
/// US (LDU states and the rest), rest of the world.
#[derive(Debug, Clone, Copy)]
enum Class {
    OptIn = 0,
    Us = 1,
    Row = 2,
}

struct RegionCase {
    name: &'static str,
    /// Edge headers (`CF-IPCountry`, `CF-Region-Code`).
    headers: &'static [(&'static str, &'static str)],
    /// Raw `user_data.country` / `st` of the event: the same place as the edge
    /// header, or the only region source when there is no header.
    country: Option<&'static str>,
    state: Option<&'static str>,
    class: Class,
    /// The rule that decides there (preset table).
    rule: &'static str,
    /// `data_processing_options_state` when the outcome is LDU.
    ldu_state: i64,
}

const REGIONS: &[RegionCase] = &[
    RegionCase {
        name: "DE (edge)",
        headers: &[("cf-ipcountry", "DE")],
        country: Some("de"),
        state: None,
        class: Class::OptIn,
        rule: "eea-uk-ch-opt-in",
        ldu_state: 0,
    },
    RegionCase {
        name: "GB (edge)",
        headers: &[("cf-ipcountry", "GB")],
        country: Some("gb"),
        state: None,
        class: Class::OptIn,
        rule: "eea-uk-ch-opt-in",
        ldu_state: 0,
    },
    RegionCase {
        name: "US-CA (edge)",
        headers: &[("cf-ipcountry", "US"), ("cf-region-code", "CA")],
        country: Some("us"),
        state: Some("ca"),
        class: Class::Us,
        rule: "us-ldu-states",
        ldu_state: 1000,
    },
    RegionCase {
        name: "US-TX (edge)",
        headers: &[("cf-ipcountry", "US"), ("cf-region-code", "TX")],
        country: Some("us"),
        state: Some("tx"),
        class: Class::Us,
        rule: "us-ldu-states",
        ldu_state: 0,
    },
    RegionCase {
        name: "BR (edge)",
        headers: &[("cf-ipcountry", "BR")],
        country: Some("br"),
        state: None,
        class: Class::Row,
        rule: "rest-of-world",
        ldu_state: 0,
    },
    RegionCase {
        name: "none",
        headers: &[],
        country: None,
        state: None,
        class: Class::OptIn,
        rule: "unknown-region-opt-in",
        ldu_state: 0,
    },
    RegionCase {
        name: "US-TX (raw user_data only)",
        headers: &[],
        country: Some("us"),
        state: Some("tx"),
        class: Class::Us,
        rule: "us-ldu-states",
        ldu_state: 0,
    },
    RegionCase {
        name: "FR (raw user_data only)",
        headers: &[],
        country: Some("fr"),
        state: None,
        class: Class::OptIn,
        rule: "eea-uk-ch-opt-in",
        ldu_state: 0,
    },
];

struct SignalCase {
    name: &'static str,
    /// Only through `/collect` (cookies and `Sec-GPC` are browser signals).
    browser_only: bool,
    /// Fields merged into the event (`consent`, `gdpr`, `gdpr_consent`, `gpc`, …).
    fields: Value,
    cookie: Option<String>,
    sec_gpc: Option<&'static str>,
    /// Outcome per class [opt-in, US, rest of world].
    want: [Out; 3],
    /// `opt_out: true` on the delivered event, per class.
    opt_out: [bool; 3],
    /// An entry the audit record's `signals_seen` must hold.
    audit_signal: Option<&'static str>,
}

fn signal(name: &'static str, fields: Value, want: [Out; 3]) -> SignalCase {
    SignalCase {
        name,
        browser_only: false,
        fields,
        cookie: None,
        sec_gpc: None,
        want,
        opt_out: [false; 3],
        audit_signal: None,
    }
}

fn browser_signal(
    name: &'static str,
    cookie: Option<String>,
    sec_gpc: Option<&'static str>,
    want: [Out; 3],
) -> SignalCase {
    SignalCase {
        browser_only: true,
        cookie,
        sec_gpc,
        ..signal(name, json!({}), want)
    }
}

/// The default preset's table (crates/sluice-consent/README.md), per signal.
fn signal_cases() -> Vec<SignalCase> {
    let tc_1_3_4_7 = tc_encoder::tc_string(&[1, 3, 4, 7], &[]);
    vec![
        signal("no signal", json!({}), [X, D, D]),
        signal(
            "consent mode: all granted",
            json!({"consent": {"ad_storage": "granted", "ad_user_data": "granted",
                               "ad_personalization": "granted", "analytics_storage": "granted"}}),
            [D, D, D],
        ),
        SignalCase {
            opt_out: [false, true, false],
            ..signal(
                "consent mode: all denied",
                json!({"consent": {"ad_storage": "denied", "ad_user_data": "denied",
                                   "ad_personalization": "denied", "analytics_storage": "denied"}}),
                [X, L, X],
            )
        },
        SignalCase {
            opt_out: [false, true, true],
            ..signal(
                "consent mode: only ad_personalization, denied",
                json!({"consent": {"ad_personalization": "denied"}}),
                [X, D, D],
            )
        },
        SignalCase {
            opt_out: [true, true, true],
            ..signal(
                "consent mode: ad_user_data granted, ad_personalization denied",
                json!({"consent": {"ad_user_data": "granted", "ad_personalization": "denied"}}),
                [D, D, D],
            )
        },
        SignalCase {
            audit_signal: Some("tcf=purposes:1,3,4,7;policy:4"),
            ..signal(
                "TCF v2.2, purposes 1,3,4,7",
                json!({"gdpr": 1, "gdpr_consent": tc_1_3_4_7}),
                [D, D, D],
            )
        },
        SignalCase {
            audit_signal: Some("error=tcf:tcf_invalid_character"),
            ..signal(
                "TCF string malformed",
                json!({"gdpr": 1, "gdpr_consent": "garbage!"}),
                [X, D, D],
            )
        },
        SignalCase {
            audit_signal: Some("gpc=1"),
            ..signal("GPC (body field)", json!({"gpc": true}), [X, L, D])
        },
        SignalCase {
            opt_out: [false, true, false],
            audit_signal: Some("error=consent_object:consent_value_unknown"),
            ..signal(
                "unknown consent value",
                json!({"consent": {"ad_user_data": "maybe"}}),
                [X, L, X],
            )
        },
        SignalCase {
            audit_signal: Some("consent_source=default"),
            ..signal(
                "granted by the site's default (consent_source=default)",
                json!({"consent": {"ad_user_data": "granted"}, "consent_source": "default"}),
                [X, D, D],
            )
        },
        SignalCase {
            audit_signal: Some("gpc=1"),
            ..browser_signal("Sec-GPC: 1", None, Some("1"), [X, L, D])
        },
        SignalCase {
            audit_signal: Some("error=gpc:gpc_invalid"),
            ..browser_signal("Sec-GPC malformed", None, Some("yes"), [X, L, D])
        },
        SignalCase {
            audit_signal: Some("onetrust=C0001:1,C0004:1"),
            ..browser_signal(
                "OneTrust targeting on",
                Some(
                    "OptanonConsent=isGpcEnabled=0&consentId=abc&groups=C0001%3A1%2CC0004%3A1"
                        .into(),
                ),
                None,
                [D, D, D],
            )
        },
        browser_signal(
            "OneTrust targeting off",
            Some("OptanonConsent=isGpcEnabled=0&consentId=abc&groups=C0001%3A1%2CC0004%3A0".into()),
            None,
            [X, L, X],
        ),
        SignalCase {
            audit_signal: Some("error=onetrust:onetrust_groups_missing"),
            ..browser_signal(
                "OneTrust cookie malformed",
                Some("OptanonConsent=isGpcEnabled=0&consentId=abc".into()),
                None,
                [X, L, X],
            )
        },
        browser_signal(
            "Cookiebot marketing on",
            Some("CookieConsent={stamp:%27x%27%2Cnecessary:true%2Cmarketing:true}".into()),
            None,
            [D, D, D],
        ),
        SignalCase {
            audit_signal: Some("tcf=purposes:1,3,4,7;policy:4"),
            ..browser_signal(
                "euconsent-v2 cookie, purposes 1,3,4,7",
                Some(format!("euconsent-v2={tc_1_3_4_7}")),
                None,
                [D, D, D],
            )
        },
    ]
}

/// The raw person data every matrix event carries (plus the region's
/// `country` / `st`).
fn matrix_user_data(region: &RegionCase, backend: bool) -> Value {
    let mut ud = json!({
        "em": "Jane.Doe@Example.com",
        "ph": "+1 (650) 555-0134",
        "fn": "Jane",
        "ct": "Springfield",
        "external_id": "cust-1001",
    });
    if backend {
        ud["fbp"] = json!(FBP);
        ud["client_ip_address"] = json!(CLIENT_IP);
        ud["client_user_agent"] = json!(USER_AGENT);
    }
    if let Some(c) = region.country {
        ud["country"] = json!(c);
    }
    if let Some(s) = region.state {
        ud["st"] = json!(s);
    }
    ud
}

/// The user_data keys a delivered matrix event must carry, exactly.
fn expected_keys(region: &RegionCase, fbp: bool) -> BTreeSet<&'static str> {
    let mut keys: BTreeSet<&str> = [
        "em",
        "ph",
        "fn",
        "ct",
        "external_id",
        "client_ip_address",
        "client_user_agent",
    ]
    .into();
    if fbp {
        keys.insert("fbp");
    }
    if region.country.is_some() {
        keys.insert("country");
    }
    if region.state.is_some() {
        keys.insert("st");
    }
    keys
}

struct Case {
    event_id: String,
    label: String,
    region: &'static RegionCase,
    signal: usize,
    browser: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_of_events_signals_and_regions() {
    let h = Harness::start(&[PIXEL], "", &[]).await;
    let signals = signal_cases();
    let event_time = now_ms() / 1000 - 60;
    let mut cases = Vec::new();

    for browser in [false, true] {
        for (si, s) in signals.iter().enumerate() {
            if s.browser_only && !browser {
                continue;
            }
            for (ri, region) in REGIONS.iter().enumerate() {
                let event_id = format!("m-{}-{si}-{ri}", if browser { "b" } else { "s" });
                let label = format!(
                    "[{} | {} | {}]",
                    if browser { "/collect" } else { "/v1/events" },
                    s.name,
                    region.name
                );
                let mut headers: Vec<(&str, &str)> = region.headers.to_vec();
                if let Some(c) = &s.cookie {
                    headers.push(("cookie", c));
                }
                if let Some(g) = s.sec_gpc {
                    headers.push(("sec-gpc", g));
                }
                let mut event = json!({
                    "event_name": "Lead",
                    "event_id": event_id,
                    "event_time": event_time,
                    "event_source_url": "https://shop.example/signup/done",
                    "custom_data": {},
                    "user_data": matrix_user_data(region, !browser),
                });
                for (k, v) in s.fields.as_object().unwrap() {
                    event[k] = v.clone();
                }
                let want = s.want[region.class as usize];
                if browser {
                    event["pixel_ids"] = json!([PIXEL]);
                    event["fbp"] = json!(FBP);
                    let (status, body) = h.post_collect(&event, &headers).await;
                    assert_eq!(status, StatusCode::NO_CONTENT, "{label}: {body}");
                } else {
                    event["pixel_id"] = json!(PIXEL);
                    event["action_source"] = json!("website");
                    let (status, body) = h.post_backend(&event, &headers).await;
                    assert_eq!(status, StatusCode::OK, "{label}: {body}");
                    let result = &body["results"][0];
                    if want == X {
                        assert_eq!(result["status"], "dropped", "{label}: {body}");
                        assert_eq!(result["rule"], region.rule, "{label}: {body}");
                    } else {
                        assert_eq!(result["status"], "accepted", "{label}: {body}");
                    }
                }
                cases.push(Case {
                    event_id,
                    label,
                    region,
                    signal: si,
                    browser,
                });
            }
        }
    }

    let expected_delivered: BTreeSet<String> = cases
        .iter()
        .filter(|c| signals[c.signal].want[c.region.class as usize] != X)
        .map(|c| c.event_id.clone())
        .collect();
    eventually("every deliverable event reaches the emulator", || async {
        let got = h.delivered(PIXEL);
        expected_delivered.iter().all(|id| got.contains_key(id)) && h.queued().await == 0
    })
    .await;

    // Nothing else can arrive: the queue is empty and dropped events were
    // never stored.
    let delivered = h.delivered(PIXEL);
    let unexpected: Vec<&String> = delivered
        .keys()
        .filter(|id| !expected_delivered.contains(*id))
        .collect();
    assert!(
        unexpected.is_empty(),
        "events that must not reach Meta did: {unexpected:?}"
    );
    assert!(
        h.gateway
            .state
            .store
            .dlq_list(&Default::default())
            .await
            .unwrap()
            .is_empty()
    );

    let audit: HashMap<String, Vec<Value>> =
        h.audit().await.iter().fold(HashMap::new(), |mut m, e| {
            let r = audit_record(e);
            m.entry(r["event_id"].as_str().unwrap_or_default().to_owned())
                .or_default()
                .push(r);
            m
        });
    let em_hash = hash_to_wire(
        PiiField::Email,
        "jane.doe@example.com",
        &NormalizeOptions::new(2026),
    )
    .unwrap()
    .unwrap();

    let mut failures = Vec::new();
    let mut tally: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for case in &cases {
        let s = &signals[case.signal];
        let class = case.region.class as usize;
        let want = s.want[class];
        let label = &case.label;
        *tally.entry((want.as_str(), case.region.rule)).or_default() += 1.0;

        // The audit trail: exactly one decision, by the expected rule.
        match audit.get(&case.event_id).map(Vec::as_slice) {
            Some([r]) => {
                if r["rule_id"] != case.region.rule || r["outcome"] != want.as_str() {
                    failures.push(format!(
                        "{label}: audited {} by {}, want {} by {}",
                        r["outcome"],
                        r["rule_id"],
                        want.as_str(),
                        case.region.rule
                    ));
                }
                let source = if case.browser { "browser" } else { "backend" };
                assert_eq!(r["source"], source, "{label}");
                assert_eq!(r["policy_version"], "sluice-default-1", "{label}");
                if let Some(sig) = s.audit_signal
                    && !strings(&r["signals_seen"]).iter().any(|x| x == sig)
                {
                    failures.push(format!(
                        "{label}: signals_seen {} lacks {sig}",
                        r["signals_seen"]
                    ));
                }
            }
            other => failures.push(format!("{label}: audit rows {other:?}")),
        }

        // What reached the emulator.
        let copies = delivered.get(&case.event_id);
        if want == X {
            if copies.is_some() {
                failures.push(format!("{label}: dropped event reached the emulator"));
            }
            continue;
        }
        let Some([ev]) = copies.map(Vec::as_slice) else {
            failures.push(format!("{label}: delivered {copies:?} times, want once"));
            continue;
        };
        let ud = ev["user_data"].as_object().unwrap();
        let keys: BTreeSet<&str> = ud.keys().map(String::as_str).collect();
        // The browser source forwards/mints fbp only when ad_storage is granted.
        let fbp = !case.browser || s.fields["consent"]["ad_storage"] == "granted";
        let want_keys = expected_keys(case.region, fbp);
        if keys != want_keys {
            failures.push(format!(
                "{label}: user_data keys {keys:?}, want {want_keys:?}"
            ));
        }
        for k in ["em", "ph", "fn", "ct", "external_id", "country", "st"] {
            let Some(v) = ud.get(k) else { continue };
            let values = match v {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            for v in values {
                let text = v.as_str().unwrap_or_default();
                if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                {
                    failures.push(format!("{label}: {k} is not a sha-256 hex digest"));
                }
            }
        }
        if strings(&ud["em"]) != [em_hash.clone()] && ud["em"] != json!(em_hash) {
            failures.push(format!(
                "{label}: em is not the hash of the normalized address"
            ));
        }
        if case.browser {
            assert_eq!(ud["client_ip_address"], CLIENT_IP, "{label}");
            assert_eq!(ud["client_user_agent"], USER_AGENT, "{label}");
        }
        let opt_out = ev["opt_out"].as_bool().unwrap_or(false);
        if opt_out != s.opt_out[class] {
            failures.push(format!(
                "{label}: opt_out {opt_out}, want {}",
                s.opt_out[class]
            ));
        }
        let ldu = (
            ev.get("data_processing_options").cloned(),
            ev.get("data_processing_options_country").cloned(),
            ev.get("data_processing_options_state").cloned(),
        );
        let want_ldu = if want == L {
            (
                Some(json!(["LDU"])),
                Some(json!(1)),
                Some(json!(case.region.ldu_state)),
            )
        } else {
            (None, None, None)
        };
        if ldu != want_ldu {
            failures.push(format!("{label}: LDU fields {ldu:?}, want {want_ldu:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // /metrics counts every decision by outcome and rule (the recorder is
    // shared by the tests of this binary, hence "at least").
    let metrics = h.metrics().await;
    for ((outcome, rule), n) in &tally {
        let got = metric_sum(
            &metrics,
            "sluice_consent_decisions_total",
            &[("outcome", outcome), ("rule", rule)],
        );
        assert!(
            got >= *n,
            "sluice_consent_decisions_total{{outcome={outcome},rule={rule}}} = {got}, want >= {n}\n{metrics}"
        );
    }
    for (source, code) in [
        ("tcf", "tcf_invalid_character"),
        ("gpc", "gpc_invalid"),
        ("consent_object", "consent_value_unknown"),
        ("onetrust", "onetrust_groups_missing"),
    ] {
        assert!(
            metric_sum(
                &metrics,
                "sluice_consent_signal_errors_total",
                &[("source", source), ("code", code)]
            ) >= 1.0,
            "signal error {source}/{code} not counted"
        );
    }
    assert!(
        metric_sum(&metrics, "sluice_events_dropped_by_consent_total", &[]) >= 1.0,
        "drops are counted"
    );
    h.gateway.shutdown().await;
    h.emulator.shutdown().await;
}

// === the leak scan ===

const MARK_EMAIL: &str = "leak.marker.7f3a@example.com";
const MARK_PHONE: &str = "+1 650 555 7391";
const MARK_FN: &str = "Zyxwvmarker";
const MARK_CT: &str = "Qwertyville";
const MARK_EXT: &str = "ext-marker-9931";

/// Every form a marker could take short of its hash: as sent, lower-cased,
/// normalized (digits only, no spaces), and distinctive fragments. The
/// haystacks are lower-cased before searching.
fn needles() -> Vec<String> {
    let mut n: Vec<String> = vec![
        MARK_EMAIL.into(),
        "leak.marker".into(),
        "7f3a@example".into(),
        MARK_PHONE.into(),
        "650 555 7391".into(),
        "650-555-7391".into(),
        "6505557391".into(),
        MARK_FN.into(),
        "zyxwv".into(),
        MARK_CT.into(),
        "qwerty".into(),
        MARK_EXT.into(),
        "marker-9931".into(),
        "marker9931".into(),
    ];
    // Normalized-but-unhashed forms, from the normalizer itself.
    let opts = NormalizeOptions::new(2026);
    for (field, value) in [
        (PiiField::Email, MARK_EMAIL),
        (PiiField::Phone, MARK_PHONE),
        (PiiField::FirstName, MARK_FN),
        (PiiField::City, MARK_CT),
        (PiiField::ExternalId, MARK_EXT),
    ] {
        let mut out = String::new();
        if let Ok(sluice_normalize::Normalized::Text(t)) =
            sluice_normalize::normalize_into(field, value, &opts, &mut out)
        {
            n.push(t.to_owned());
        }
    }
    n.iter().map(|s| s.to_ascii_lowercase()).collect()
}

fn find_markers(what: &str, haystack: &[u8], needles: &[String]) -> Vec<String> {
    let lower = haystack.to_ascii_lowercase();
    needles
        .iter()
        .filter(|n| lower.windows(n.len()).any(|w| w == n.as_bytes()))
        .map(|n| format!("{what}: {n:?}"))
        .collect()
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn scan_dir(dir: &Path, needles: &[String]) -> (Vec<String>, Vec<String>) {
    let mut found = Vec::new();
    let mut names = Vec::new();
    for path in files_under(dir) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        names.push(format!(
            "{} ({} bytes)",
            path.file_name().unwrap().to_string_lossy(),
            bytes.len()
        ));
        found.extend(find_markers(&path.display().to_string(), &bytes, needles));
    }
    (found, names)
}

fn marker_user_data() -> Value {
    json!({
        "em": MARK_EMAIL,
        "ph": MARK_PHONE,
        "fn": MARK_FN,
        "ct": MARK_CT,
        "external_id": MARK_EXT,
        "client_ip_address": CLIENT_IP,
        "client_user_agent": USER_AGENT,
    })
}

fn marker_event(id: &str, pixel: &str, consent: Value) -> Value {
    let mut e = json!({
        "pixel_id": pixel,
        "event_name": "Lead",
        "event_id": id,
        "event_time": now_ms() / 1000 - 60,
        "action_source": "website",
        "event_source_url": "https://shop.example/signup/done",
        "user_data": marker_user_data(),
    });
    if !consent.is_null() {
        e["consent"] = consent;
    }
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_raw_personal_data_anywhere() {
    let logs = logs();
    let h = Harness::start(
        &[PIXEL, DLQ_PIXEL, RETRY_PIXEL],
        "",
        // Retries wait a minute: the event for RETRY_PIXEL stays queued.
        &[
            ("SLUICE_DELIVERY__BACKOFF_BASE_MS", "60000"),
            ("SLUICE_DELIVERY__BACKOFF_MAX_MS", "120000"),
        ],
    )
    .await;
    let fault = |pixel: &str, fault: Value| FaultRule {
        pixel: Some(pixel.to_owned()),
        after_requests: 0,
        times: None,
        fault: serde_json::from_value(fault).unwrap(),
    };
    h.emulator
        .emulator()
        .set_faults(vec![
            fault(
                DLQ_PIXEL,
                json!({"kind": "http_status", "status": 400, "code": 100, "subcode": 2804050,
                       "message": "Invalid parameter", "transient": false}),
            ),
            fault(RETRY_PIXEL, json!({"kind": "http_status", "status": 503})),
        ])
        .unwrap();
    let granted = json!({"ad_storage": "granted", "ad_user_data": "granted"});
    let de = [("cf-ipcountry", "DE")];
    let mut responses: Vec<(String, String)> = Vec::new();

    // Delivered.
    let (status, body) = h
        .post_backend(&marker_event("leak-delivered", PIXEL, granted.clone()), &de)
        .await;
    assert_eq!(body["results"][0]["status"], "accepted", "{body}");
    responses.push(("delivered".into(), body.to_string()));
    assert_eq!(status, StatusCode::OK);
    // Dropped by consent (EEA, no signal).
    let (_, body) = h
        .post_backend(&marker_event("leak-dropped", PIXEL, Value::Null), &de)
        .await;
    assert_eq!(body["results"][0]["status"], "dropped", "{body}");
    responses.push(("dropped".into(), body.to_string()));
    // Rejected by validation (event_time is not a number).
    let mut bad = marker_event("leak-rejected", PIXEL, granted.clone());
    bad["event_time"] = json!("yesterday");
    let (status, body) = h.post_backend(&bad, &de).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["results"][0]["status"], "rejected", "{body}");
    responses.push(("rejected".into(), body.to_string()));
    // Accepted with invalid personal data dropped field by field.
    let mut invalid = marker_event("leak-invalid-fields", PIXEL, granted.clone());
    invalid["user_data"]["em"] = json!("leak.marker.7f3a@@example");
    invalid["user_data"]["ph"] = json!("+1 650 555 7391 ext zyxwv");
    let (_, body) = h.post_backend(&invalid, &de).await;
    responses.push(("invalid fields".into(), body.to_string()));
    // Dead-lettered (Meta refuses it for good).
    let (_, body) = h
        .post_backend(
            &marker_event("leak-dead-letter", DLQ_PIXEL, Value::Null),
            &[("cf-ipcountry", "US"), ("cf-region-code", "TX")],
        )
        .await;
    assert_eq!(body["results"][0]["status"], "accepted", "{body}");
    // Still queued (Meta keeps answering 503; the retry is a minute away).
    let (_, body) = h
        .post_backend(
            &marker_event("leak-queued", RETRY_PIXEL, Value::Null),
            &[("cf-ipcountry", "BR")],
        )
        .await;
    assert_eq!(body["results"][0]["status"], "accepted", "{body}");
    // Browser: delivered, and dropped.
    let mut browser = json!({
        "pixel_ids": [PIXEL],
        "event_name": "Lead",
        "event_id": "leak-browser",
        "event_time": now_ms() / 1000 - 30,
        "event_source_url": "https://shop.example/signup/done",
        "custom_data": {},
        "user_data": {"em": MARK_EMAIL, "ph": MARK_PHONE, "fn": MARK_FN, "ct": MARK_CT,
                      "external_id": MARK_EXT},
        "consent": granted,
    });
    let (status, body) = h.post_collect(&browser, &de).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    browser["event_id"] = json!("leak-browser-dropped");
    browser.as_object_mut().unwrap().remove("consent");
    let (status, body) = h.post_collect(&browser, &de).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // Graph endpoint: raw data is refused as Meta would refuse it.
    let graph = h
        .http
        .post(format!("{}/v21.0/{PIXEL}/events", h.base))
        .json(&json!({
            "access_token": TOKEN,
            "data": [{"event_name": "Lead", "event_time": now_ms() / 1000 - 60,
                      "event_id": "leak-graph", "action_source": "website",
                      "event_source_url": "https://shop.example/",
                      "user_data": marker_user_data()}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(graph.status(), StatusCode::BAD_REQUEST);
    responses.push(("graph".into(), graph.text().await.unwrap()));

    eventually("delivered, dead-lettered and retried", || async {
        let delivered = h.delivered(PIXEL);
        let dlq = h
            .gateway
            .state
            .store
            .dlq_list(&Default::default())
            .await
            .unwrap();
        let retried = h.emulator.emulator().faults().iter().all(|f| f.fired >= 1);
        ["leak-delivered", "leak-invalid-fields", "leak-browser"]
            .iter()
            .all(|id| delivered.contains_key(*id))
            && dlq.len() == 1
            && retried
    })
    .await;
    let delivered = h.delivered(PIXEL);
    assert!(
        !delivered.contains_key("leak-dropped") && !delivered.contains_key("leak-browser-dropped")
    );
    // The invalid address was dropped, not hashed: the event still has the
    // other identifiers.
    let inv = &delivered["leak-invalid-fields"][0]["user_data"];
    assert!(inv.get("em").is_none() && inv.get("fn").is_some(), "{inv}");

    let needles = needles();
    let mut found = Vec::new();
    for (what, body) in &responses {
        found.extend(find_markers(
            &format!("response {what}"),
            body.as_bytes(),
            &needles,
        ));
    }
    let metrics = h.metrics().await;
    found.extend(find_markers("/metrics", metrics.as_bytes(), &needles));
    let readyz = h.get_text("/readyz", None).await;
    found.extend(find_markers("/readyz", readyz.as_bytes(), &needles));
    let dlq = h.get_text("/admin/dlq", Some(ADMIN_KEY)).await;
    assert!(dlq.contains("leak-dead-letter"), "{dlq}");
    found.extend(find_markers("/admin/dlq", dlq.as_bytes(), &needles));
    let dlq_id = serde_json::from_str::<Value>(&dlq).unwrap()["dead_letters"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = h
        .get_text(&format!("/admin/dlq/{dlq_id}"), Some(ADMIN_KEY))
        .await;
    found.extend(find_markers("/admin/dlq/{id}", one.as_bytes(), &needles));
    for e in h.emulator.emulator().events(&Default::default()) {
        found.extend(find_markers("emulator", e.event.get().as_bytes(), &needles));
    }
    let audit = h.audit().await;
    assert!(
        audit.len() >= 7,
        "every decision is audited: {}",
        audit.len()
    );
    for e in &audit {
        found.extend(find_markers(
            "audit row",
            e.row.record_json.as_bytes(),
            &needles,
        ));
    }
    // The store's files while the server runs (database, -wal, -shm).
    let (in_files, names) = scan_dir(h.dir.path(), &needles);
    found.extend(in_files);
    assert!(
        names.iter().any(|n| n.starts_with("queue.sqlite-wal")),
        "the WAL is scanned too: {names:?}"
    );

    // Forget the person: by e-mail, as `sluice forget --email` does.
    let opts = NormalizeOptions::new(2026);
    let key = hash_to_wire(PiiField::Email, MARK_EMAIL, &opts)
        .unwrap()
        .unwrap();
    let report = h.gateway.state.store.forget(&[key]).await.unwrap();
    assert_eq!(
        (report.queued, report.dead_letters),
        (1, 1),
        "the queued and the dead-lettered event: {report:?}"
    );
    assert!(report.ledger >= 2, "{report:?}");
    assert!(
        h.gateway
            .state
            .store
            .dlq_list(&Default::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(h.queued().await, 0);
    // By phone and external id: nothing left.
    let others = [
        hash_to_wire(PiiField::Phone, MARK_PHONE, &opts)
            .unwrap()
            .unwrap(),
        hash_to_wire(PiiField::ExternalId, MARK_EXT, &opts)
            .unwrap()
            .unwrap(),
    ];
    let again = h.gateway.state.store.forget(&others).await.unwrap();
    assert_eq!(again.events(), 0, "{again:?}");

    let dir = h.dir.path().to_owned();
    let _keep = h.dir;
    h.gateway.shutdown().await;
    h.emulator.shutdown().await;
    // After shutdown (checkpointed files).
    found.extend(scan_dir(&dir, &needles).0);
    let captured = logs.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&captured);
    assert!(
        text.contains("DEBUG") && text.contains("sluice started"),
        "the gateway's debug logs were captured ({} bytes)",
        captured.len()
    );
    found.extend(find_markers("logs", &captured, &needles));
    assert!(
        found.is_empty(),
        "raw personal data found:\n{}",
        found.join("\n")
    );
}

// === the consent store ===

#[derive(Clone, Copy, Debug)]
enum Answer {
    Granted,
    Denied,
    NotFound,
    Garbage,
    UnknownValue,
    ServerError,
    Never,
}

/// One consent-store case: the event's external_id, what the store answers,
/// the region, the event's own consent, and the expected decision with the
/// audit evidence for it.
struct StoreCase {
    ext: &'static str,
    answer: Answer,
    region: &'static [(&'static str, &'static str)],
    consent: Value,
    outcome: &'static str,
    rule: &'static str,
    evidence: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_store_answers_and_failures() {
    let opts = NormalizeOptions::new(2026);
    let key_of = |ext: &str| {
        hash_to_wire(PiiField::ExternalId, ext, &opts)
            .unwrap()
            .unwrap()
    };
    const DE: &[(&str, &str)] = &[("cf-ipcountry", "DE")];
    const TX: &[(&str, &str)] = &[("cf-ipcountry", "US"), ("cf-region-code", "TX")];
    const BR: &[(&str, &str)] = &[("cf-ipcountry", "BR")];
    use Answer::*;
    let case = |ext, answer, region, outcome, rule, evidence| StoreCase {
        ext,
        answer,
        region,
        consent: Value::Null,
        outcome,
        rule,
        evidence,
    };
    let cases = vec![
        case(
            "cs-de-granted",
            Granted,
            DE,
            "deliver",
            "eea-uk-ch-opt-in",
            "store=ad_user_data:granted",
        ),
        case(
            "cs-de-denied",
            Denied,
            DE,
            "drop",
            "eea-uk-ch-opt-in",
            "store=ad_user_data:denied",
        ),
        case(
            "cs-de-404",
            NotFound,
            DE,
            "drop",
            "eea-uk-ch-opt-in",
            "store=not_found",
        ),
        case(
            "cs-de-garbage",
            Garbage,
            DE,
            "drop",
            "eea-uk-ch-opt-in",
            "store=failed:consent_store_invalid",
        ),
        case(
            "cs-de-unknown",
            UnknownValue,
            DE,
            "drop",
            "eea-uk-ch-opt-in",
            "store=failed:consent_store_invalid",
        ),
        case(
            "cs-de-500",
            ServerError,
            DE,
            "drop",
            "eea-uk-ch-opt-in",
            "store=failed:consent_store_unavailable",
        ),
        case(
            "cs-de-timeout",
            Never,
            DE,
            "drop",
            "eea-uk-ch-opt-in",
            "store=failed:consent_store_timeout",
        ),
        case(
            "cs-tx-denied",
            Denied,
            TX,
            "deliver_ldu",
            "us-ldu-states",
            "store=ad_user_data:denied",
        ),
        case(
            "cs-tx-garbage",
            Garbage,
            TX,
            "deliver_ldu",
            "us-ldu-states",
            "store=failed:consent_store_invalid",
        ),
        case(
            "cs-tx-timeout",
            Never,
            TX,
            "deliver_ldu",
            "us-ldu-states",
            "store=failed:consent_store_timeout",
        ),
        case(
            "cs-br-garbage",
            Garbage,
            BR,
            "drop",
            "rest-of-world",
            "store=failed:consent_store_invalid",
        ),
        case(
            "cs-br-404",
            NotFound,
            BR,
            "deliver",
            "rest-of-world",
            "store=not_found",
        ),
        // The event carries its own signal: the store is not asked (when = "no_event_signal").
        StoreCase {
            consent: json!({"ad_user_data": "granted"}),
            ..case(
                "cs-de-event-granted",
                Denied,
                DE,
                "deliver",
                "eea-uk-ch-opt-in",
                "ad_user_data=granted",
            )
        },
    ];
    let answers: Arc<HashMap<String, Answer>> =
        Arc::new(cases.iter().map(|c| (key_of(c.ext), c.answer)).collect());
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();

    let store_app = {
        let answers = answers.clone();
        let asked = asked.clone();
        axum::Router::new().route(
            "/lookup",
            axum::routing::get(move |Query(q): Query<HashMap<String, String>>| {
                let answers = answers.clone();
                let asked = asked.clone();
                async move {
                    let key = q.get("key").cloned().unwrap_or_default();
                    asked.lock().unwrap().push(key.clone());
                    let ok = |body: &'static str| (StatusCode::OK, body).into_response();
                    match answers.get(&key) {
                        Some(Answer::Granted) => ok(r#"{"ad_user_data":"granted"}"#),
                        Some(Answer::Denied) => ok(r#"{"ad_user_data":"denied"}"#),
                        Some(Answer::Garbage) => ok("<html>not json"),
                        Some(Answer::UnknownValue) => ok(r#"{"ad_user_data":"perhaps"}"#),
                        Some(Answer::ServerError) => {
                            StatusCode::INTERNAL_SERVER_ERROR.into_response()
                        }
                        Some(Answer::Never) => {
                            std::future::pending::<axum::response::Response>().await
                        }
                        Some(Answer::NotFound) | None => StatusCode::NOT_FOUND.into_response(),
                    }
                }
            }),
        )
    };
    let store_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store_addr = store_listener.local_addr().unwrap();
    let store_server = tokio::spawn(async move {
        let _ = axum::serve(store_listener, store_app).await;
    });

    let extra = format!(
        "[consent.store]\nurl = \"http://{store_addr}/lookup\"\ntimeout_ms = 300\nsources = [\"backend\"]\n"
    );
    let h = Harness::start(&[PIXEL], &extra, &[]).await;
    let event_time = now_ms() / 1000 - 60;
    for StoreCase {
        ext,
        region,
        consent,
        outcome,
        rule,
        ..
    } in &cases
    {
        let mut event = json!({
            "pixel_id": PIXEL,
            "event_name": "Lead",
            "event_id": ext,
            "event_time": event_time,
            "action_source": "website",
            "event_source_url": "https://shop.example/",
            "user_data": {"em": format!("{ext}@example.com"), "external_id": ext,
                          "client_user_agent": USER_AGENT},
        });
        if !consent.is_null() {
            event["consent"] = consent.clone();
        }
        let (status, body) = h.post_backend(&event, region).await;
        assert_eq!(status, StatusCode::OK, "{ext}: {body}");
        let want = if *outcome == "drop" {
            "dropped"
        } else {
            "accepted"
        };
        assert_eq!(body["results"][0]["status"], want, "{ext}: {body}");
        if *outcome == "drop" {
            assert_eq!(body["results"][0]["rule"], *rule, "{ext}: {body}");
        }
    }

    let audit = h.audit().await;
    for StoreCase {
        ext,
        outcome,
        rule,
        evidence,
        ..
    } in &cases
    {
        let rows: Vec<Value> = audit
            .iter()
            .map(audit_record)
            .filter(|r| r["event_id"] == *ext)
            .collect();
        assert_eq!(rows.len(), 1, "{ext}: {rows:?}");
        let r = &rows[0];
        assert_eq!(r["outcome"], *outcome, "{ext}: {r}");
        assert_eq!(r["rule_id"], *rule, "{ext}: {r}");
        assert!(
            strings(&r["signals_seen"]).iter().any(|s| s == evidence),
            "{ext}: signals_seen {} lacks {evidence}",
            r["signals_seen"]
        );
        if let Some(code) = evidence.strip_prefix("store=failed:") {
            assert_eq!(r["consent"], "invalid", "{ext}: {r}");
            assert!(
                strings(&r["reasons"]).contains(&format!("error:{code}")),
                "{ext}: reasons {} lack error:{code}",
                r["reasons"]
            );
        }
    }
    let asked = asked.lock().unwrap().clone();
    assert!(
        !asked.contains(&key_of("cs-de-event-granted")),
        "an event with its own signal is not looked up"
    );
    assert!(
        asked
            .iter()
            .all(|k| k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit())),
        "only hashed keys reach the store: {asked:?}"
    );

    let deliverable: Vec<&str> = cases
        .iter()
        .filter(|c| c.outcome != "drop")
        .map(|c| c.ext)
        .collect();
    eventually("the deliverable events arrive", || async {
        let got = h.delivered(PIXEL);
        deliverable.iter().all(|id| got.contains_key(*id)) && h.queued().await == 0
    })
    .await;
    let delivered = h.delivered(PIXEL);
    assert_eq!(
        delivered
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        deliverable.iter().copied().collect::<BTreeSet<_>>()
    );
    for id in ["cs-tx-denied", "cs-tx-garbage", "cs-tx-timeout"] {
        let ev = &delivered[id][0];
        assert_eq!(ev["data_processing_options"], json!(["LDU"]), "{id}");
        assert_eq!(ev["data_processing_options_country"], 1, "{id}");
        assert_eq!(ev["data_processing_options_state"], 0, "{id}");
    }

    let metrics = h.metrics().await;
    for result in [
        "found",
        "not_found",
        "consent_store_invalid",
        "consent_store_unavailable",
        "consent_store_timeout",
    ] {
        assert!(
            metric_sum(
                &metrics,
                "sluice_consent_store_lookups_total",
                &[("result", result)]
            ) >= 1.0,
            "lookup result {result} not counted"
        );
    }
    assert!(
        metric_sum(
            &metrics,
            "sluice_consent_signal_errors_total",
            &[("source", "store"), ("code", "consent_store_timeout")]
        ) >= 2.0
    );
    h.gateway.shutdown().await;
    h.emulator.shutdown().await;
    store_server.abort();
}

// === retention ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_old_audit_rows_and_expired_ledger_entries() {
    let h = Harness::start(
        &[PIXEL],
        "",
        &[
            ("SLUICE_STORE__PURGE_INTERVAL_SECS", "1"),
            ("SLUICE_CONSENT__AUDIT_RETENTION_DAYS", "30"),
        ],
    )
    .await;
    let store = h.gateway.state.store.clone();
    let now = now_ms();
    let day = 86_400_000;
    let row = |id: &str, time_ms: i64| AuditRow {
        time_ms,
        pixel_id: PIXEL.into(),
        event_name: "Lead".into(),
        event_id: Some(id.into()),
        source: "backend".into(),
        outcome: "drop".into(),
        rule_id: "eea-uk-ch-opt-in".into(),
        record_json: "{}".into(),
    };
    store
        .append_audit(
            vec![
                row("old-1", now - 31 * day),
                row("old-2", now - 400 * day),
                row("recent", now - 29 * day),
            ],
            now,
        )
        .await
        .unwrap();
    // A dedup-ledger entry from three days ago (window: 48 h), for a pixel
    // without a lane so that nothing tries to deliver it.
    store
        .enqueue(
            vec![NewEvent {
                pixel_id: "999".into(),
                event_name: "Lead".into(),
                event_id: "ledger-old".into(),
                event_time: (now - 3 * day) / 1000,
                source: EventSource::Backend,
                payload: b"{}".to_vec(),
                user_keys: vec![],
                test_event_code: None,
                hold_until_ms: None,
                order_id: None,
                event_id_origin: EventIdOrigin::Sent,
            }],
            now - 3 * day,
        )
        .await
        .unwrap();
    let purged_before = metric_sum(
        &h.metrics().await,
        "sluice_retention_purged_total",
        &[("kind", "ledger")],
    );

    eventually("old audit rows are purged", || async {
        let ids: Vec<String> = h
            .audit()
            .await
            .iter()
            .filter_map(|e| e.row.event_id.clone())
            .collect();
        ids == ["recent"]
    })
    .await;
    eventually("the expired ledger entry is purged", || async {
        metric_sum(
            &h.metrics().await,
            "sluice_retention_purged_total",
            &[("kind", "ledger")],
        ) >= purged_before + 1.0
    })
    .await;
    // The task stops with the gateway (shutdown would hang otherwise).
    tokio::time::timeout(DEADLINE, h.gateway.shutdown())
        .await
        .expect("shutdown stops the retention task");
    h.emulator.shutdown().await;
}
