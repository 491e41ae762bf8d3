//! Meta's official SDKs, with only their base URL changed, get from the emulator
//! the answers they get from Meta.
//!
//! Drives `facebook-business` (PyPI) and `facebook-nodejs-business-sdk` (npm)
//! through `tests/sdk-clients/` (installed by its `setup.sh`) and asserts what each
//! SDK reports: `events_received` on success; exception, `code`, `error_subcode`,
//! `type`, `is_transient` and HTTP status on failure. Where the package registries
//! cannot be reached the test is skipped with a loud message, except under
//! `CI=true`, where that is a failure.

mod common;

use serde_json::Value;
use sluice_emulator::{Emulator, EmulatorConfig, Fault, FaultRule, RunningEmulator};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const GOOD_TOKEN: &str = "sdk-test-token";
const PY_PIXEL: &str = "1000000001";
const NODE_PIXEL: &str = "1000000002";
const THROTTLED_PIXEL: &str = "1000000003";
const APP_SECRET: &str = "sdk-app-secret";

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk-clients")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Runs `setup.sh`. `false` means "skip": the registries are unreachable.
async fn setup() -> bool {
    let script = sdk_dir().join("setup.sh");
    assert!(
        script.exists(),
        "{} is missing: the official-SDK clients are part of the repository",
        script.display()
    );
    let output = tokio::time::timeout(
        Duration::from_secs(900),
        tokio::process::Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("setup.sh took more than 15 minutes")
    .expect("run setup.sh");
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => true,
        Some(3) if !in_ci() => {
            eprintln!(
                "\n*** SKIPPED official_sdks: the package registries are unreachable, so \
                 facebook-business and facebook-nodejs-business-sdk cannot be installed.\n\
                 *** setup.sh said: {}\n*** (Under CI=true this is a failure.)\n",
                stderr.trim()
            );
            false
        }
        other => panic!("setup.sh failed ({other:?}):\n{stderr}"),
    }
}

/// What one SDK run reported (the script's JSON line).
async fn run_sdk(
    sdk: &str,
    base_url: &str,
    pixel: &str,
    token: &str,
    case: &str,
    env: &[(&str, &str)],
) -> Value {
    let dir = sdk_dir();
    let mut command = match sdk {
        "python" => {
            let mut c = tokio::process::Command::new(dir.join(".venv/bin/python"));
            c.arg(dir.join("python_send.py"));
            c
        }
        "node" => {
            let mut c = tokio::process::Command::new("node");
            c.arg(dir.join("node_send.js"));
            c
        }
        other => panic!("unknown sdk {other}"),
    };
    command
        .args([base_url, pixel, token, case])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .unwrap_or_else(|_| panic!("{sdk} {case} hung"))
        .unwrap_or_else(|e| panic!("cannot run the {sdk} client: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "{sdk} {case}: no JSON line ({e}); status {:?}\nstdout: {stdout}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn assert_success(report: &Value, events: i64) {
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["result_type"], "EventResponse", "{report}");
    assert_eq!(report["events_received"], events, "{report}");
    assert_eq!(report["messages"], serde_json::json!([]), "{report}");
    assert_eq!(
        report["fbtrace_id"].as_str().map(str::len),
        Some(23),
        "{report}"
    );
}

/// A `FacebookRequestError` with this HTTP status, code and subcode.
fn assert_graph_error(report: &Value, status: i64, code: i64, subcode: Option<i64>, kind: &str) {
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["exception"], "FacebookRequestError", "{report}");
    assert_eq!(report["status"], status, "{report}");
    assert_eq!(report["code"], code, "{report}");
    assert_eq!(report["subcode"].as_i64(), subcode, "{report}");
    assert_eq!(report["type"], kind, "{report}");
    assert!(
        report["fbtrace_id"].as_str().is_some_and(|t| t.len() == 23),
        "{report}"
    );
}

async fn start(config: EmulatorConfig) -> RunningEmulator {
    let emulator = Emulator::new(config).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    emulator.spawn(listener).unwrap()
}

fn config() -> EmulatorConfig {
    EmulatorConfig {
        tokens: Some(vec![GOOD_TOKEN.to_owned()]),
        pixels: Some(vec![
            PY_PIXEL.to_owned(),
            NODE_PIXEL.to_owned(),
            THROTTLED_PIXEL.to_owned(),
        ]),
        app_secret: Some(APP_SECRET.to_owned()),
        faults: vec![
            FaultRule::always(Fault::RateLimit {
                code: 80_004,
                status: None,
                subcode: None,
                transient: None,
                regain_minutes: Some(2),
                business_id: None,
            })
            .for_pixel(THROTTLED_PIXEL),
        ],
        ..EmulatorConfig::default()
    }
}

fn event_ids(server: &RunningEmulator, pixel: &str) -> Vec<String> {
    server
        .emulator()
        .events_for(pixel)
        .iter()
        .map(|e| e.json()["event_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdks_get_the_answers_meta_gives() {
    if !setup().await {
        return;
    }
    let server = start(config()).await;
    let base = server.base_url();
    let no_env: &[(&str, &str)] = &[];

    // ---- Python, sync path (form-encoded, data = JSON strings, token in the query).
    let r = run_sdk("python", &base, PY_PIXEL, GOOD_TOKEN, "ok", no_env).await;
    assert_success(&r, 2);
    assert_eq!(event_ids(&server, PY_PIXEL), ["evt-py-0", "evt-py-1"]);
    let stored = server.emulator().events_for(PY_PIXEL)[0].json();
    assert_eq!(stored["custom_data"]["currency"], "usd");
    assert_eq!(
        stored["user_data"]["external_id"],
        serde_json::json!(["ext-0"])
    );

    let r = run_sdk(
        "python",
        &base,
        PY_PIXEL,
        "not-the-token",
        "bad_token",
        no_env,
    )
    .await;
    assert_graph_error(&r, 400, 190, None, "OAuthException");
    assert_eq!(r["transient"], false, "{r}");

    let r = run_sdk("python", &base, PY_PIXEL, GOOD_TOKEN, "stale", no_env).await;
    assert_graph_error(&r, 400, 100, Some(2_804_003), "OAuthException");
    assert_eq!(r["error_user_title"], "Event Timestamp Too Old", "{r}");
    assert_eq!(r["transient"], false, "{r}");

    let r = run_sdk("python", &base, "999", GOOD_TOKEN, "ok", no_env).await;
    assert_graph_error(&r, 400, 100, Some(33), "GraphMethodException");

    let r = run_sdk("python", &base, THROTTLED_PIXEL, GOOD_TOKEN, "ok", no_env).await;
    assert_graph_error(&r, 400, 80_004, Some(2_446_079), "OAuthException");

    let r = run_sdk(
        "python",
        &base,
        PY_PIXEL,
        GOOD_TOKEN,
        "batch",
        &[("SDK_EVENTS", "1000")],
    )
    .await;
    assert_success(&r, 1000);

    let test_env = [
        ("SDK_TEST_EVENT_CODE", "TEST123"),
        ("SDK_PARTNER_AGENT", "sluice_test"),
    ];
    let r = run_sdk("python", &base, PY_PIXEL, GOOD_TOKEN, "ok", &test_env).await;
    assert_success(&r, 2);
    let test_events = server.emulator().events(
        &sluice_emulator::EventFilter::pixel(PY_PIXEL).kind(sluice_emulator::EventKind::Test),
    );
    assert_eq!(test_events.len(), 2);
    assert_eq!(test_events[0].test_event_code.as_deref(), Some("TEST123"));
    assert_eq!(test_events[0].partner_agent.as_deref(), Some("sluice_test"));

    let r = run_sdk(
        "python",
        &base,
        PY_PIXEL,
        GOOD_TOKEN,
        "ok",
        &[("SDK_APP_SECRET", APP_SECRET)],
    )
    .await;
    assert_success(&r, 2);
    let r = run_sdk(
        "python",
        &base,
        PY_PIXEL,
        GOOD_TOKEN,
        "ok",
        &[("SDK_APP_SECRET", "another-secret")],
    )
    .await;
    assert_graph_error(&r, 400, 100, None, "GraphMethodException");

    // ---- Python, async path (form-encoded, data = objects, token in the body).
    let r = run_sdk("python", &base, PY_PIXEL, GOOD_TOKEN, "async_ok", no_env).await;
    assert_success(&r, 2);
    // The async path never checks the HTTP status: Meta's error body makes it
    // crash on the missing fbtrace_id, and so does the emulator's.
    let r = run_sdk("python", &base, PY_PIXEL, GOOD_TOKEN, "async_stale", no_env).await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["exception"], "KeyError", "{r}");
    assert_eq!(r["message"], "'fbtrace_id'", "{r}");

    // ---- Node (JSON body, nulls and a top-level id, token in query and body).
    let r = run_sdk("node", &base, NODE_PIXEL, GOOD_TOKEN, "ok", no_env).await;
    assert_success(&r, 2);
    assert_eq!(r["id"], NODE_PIXEL, "{r}");
    assert_eq!(event_ids(&server, NODE_PIXEL), ["evt-node-0", "evt-node-1"]);
    let stored = server.emulator().events_for(NODE_PIXEL)[0].json();
    assert_eq!(stored["custom_data"]["currency"], "USD");

    let r = run_sdk(
        "node",
        &base,
        NODE_PIXEL,
        "not-the-token",
        "bad_token",
        no_env,
    )
    .await;
    assert_graph_error(&r, 400, 190, None, "OAuthException");
    // Graph sends no is_transient with 190; Node reports that as null.
    assert_eq!(r["transient"], Value::Null, "{r}");

    let r = run_sdk("node", &base, NODE_PIXEL, GOOD_TOKEN, "stale", no_env).await;
    assert_graph_error(&r, 400, 100, Some(2_804_003), "OAuthException");
    assert_eq!(r["transient"], false, "{r}");
    assert_eq!(r["error_user_title"], "Event Timestamp Too Old", "{r}");

    let r = run_sdk("node", &base, "999", GOOD_TOKEN, "ok", no_env).await;
    assert_graph_error(&r, 400, 100, Some(33), "GraphMethodException");

    let r = run_sdk("node", &base, THROTTLED_PIXEL, GOOD_TOKEN, "ok", no_env).await;
    assert_graph_error(&r, 400, 80_004, Some(2_446_079), "OAuthException");

    let r = run_sdk(
        "node",
        &base,
        NODE_PIXEL,
        GOOD_TOKEN,
        "batch",
        &[("SDK_EVENTS", "1000")],
    )
    .await;
    assert_success(&r, 1000);

    let r = run_sdk("node", &base, NODE_PIXEL, GOOD_TOKEN, "ok", &test_env).await;
    assert_success(&r, 2);
    let r = run_sdk(
        "node",
        &base,
        NODE_PIXEL,
        GOOD_TOKEN,
        "ok",
        &[("SDK_APP_SECRET", APP_SECRET)],
    )
    .await;
    assert_success(&r, 2);
    let r = run_sdk(
        "node",
        &base,
        NODE_PIXEL,
        GOOD_TOKEN,
        "ok",
        &[("SDK_APP_SECRET", "another-secret")],
    )
    .await;
    assert_graph_error(&r, 400, 100, None, "GraphMethodException");

    // Re-sent events (same event_name + event_id) were counted and deduplicated.
    let stats = server.emulator().stats();
    assert!(stats.duplicates > 0, "{stats:?}");
    assert_eq!(stats.rejections_by_code.get("190"), Some(&2), "{stats:?}");
    server.shutdown().await;
}
