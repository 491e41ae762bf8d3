//! `sluice serve` as a user runs it: the real binary on a free port over a
//! temporary data directory, events posted like curl does, delivered to the
//! built-in sandbox or to an emulator; killed with SIGKILL under load and
//! restarted without losing an acknowledged event.

mod common;

use common::*;
use serde_json::{Value, json};
use sluice_emulator::{EmulatorConfig, Fault, FaultRule};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `curl -X POST URL -d @event.json`: curl's content type, the file's
/// newlines stripped.
async fn curl_post(http: &reqwest::Client, url: &str, event: &Value) -> (u16, Value) {
    let body = serde_json::to_string_pretty(event)
        .unwrap()
        .replace('\n', "");
    let response = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", "curl/8.5.0")
        .body(body)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The first-run experience: `sluice serve` with no configuration, one event
/// posted with curl, visible in the sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_config_serve_delivers_a_curl_event_to_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[], &[("SLUICE_LOG", "debug")]).await;
    // The banner is printed right after the listener is up, so it can trail
    // the readiness answer by a moment: wait for it rather than race it.
    wait_for(
        "the start-up banner naming the sandbox",
        DEADLINE,
        || async { server.log_text().contains("built-in sandbox").then_some(()) },
    )
    .await;
    let log_path = server.log.clone();
    let http = client();
    let pixel = "4000000001";
    let (status, body) = curl_post(
        &http,
        &server.url("/v1/events"),
        &raw_event("serve-sb-1", Some(pixel)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["status"], "accepted", "{body}");
    let events_url = server.url(&format!("/_sandbox/_emulator/events?pixel={pixel}"));
    let events: Value = wait_for("the event in the sandbox", DEADLINE, || async {
        let v: Value = http.get(&events_url).send().await.ok()?.json().await.ok()?;
        (v["count"] == 1).then_some(v)
    })
    .await;
    assert_eq!(events["events"][0]["event"]["event_id"], "serve-sb-1");
    assert!(!events.to_string().contains("Jane"), "hashed: {events}");
    server.stop().await;
    let log = std::fs::read_to_string(&log_path).unwrap();
    for pii in ["Jane", "jane.doe", "555-1212", "5551212"] {
        assert!(!log.contains(pii), "raw {pii:?} in the debug log");
    }
    assert!(data.join("queue.sqlite").exists());
}

/// `sluice serve --graph-url`: the same, delivered to a separate emulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_graph_url_delivers_to_the_emulator() {
    let emulator = spawn_emulator(EmulatorConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--graph-url", &emulator.base_url()], &[]).await;
    let http = client();
    let pixel = "4000000002";
    let (status, body) = curl_post(
        &http,
        &server.url("/v1/events"),
        &raw_event("serve-url-1", Some(pixel)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let em = emulator.emulator();
    wait_for("the event at the emulator", DEADLINE, || async {
        (delivered_ids(em, pixel) == ["serve-url-1"]).then_some(())
    })
    .await;
    let (status, ready) = {
        let r = http.get(server.url("/readyz")).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200, "{ready}");
    server.stop().await;
}

/// SIGKILL under load. Senders post single events with unique ids while the
/// emulator answers slowly (a backlog builds); the gateway is killed in the
/// middle, restarted over the same data directory with Meta healthy, and
/// every event that got a 2xx must reach the emulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_event() {
    // Meta is slow: it records each request, then answers 250 ms late.
    kill_9_under_load(Fault::Latency { ms: 250 }, "4000000003", "").await;
}

/// The same, but the requests in flight when the process dies never reach
/// Meta (held, then the connection closes unanswered). Their events are
/// leased by the dead process, under the default `delivery.lease_ms` of
/// 120 s: the restarted gateway owns the SQLite store and gives those
/// leases back at start, so they are delivered well within the test's 60 s
/// instead of after the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_requests_in_flight_delivers_them_at_restart() {
    kill_9_under_load(
        Fault::Timeout {
            hold_ms: Some(1000),
            process: false,
        },
        "4000000013",
        "timeout_ms = 2000\n",
    )
    .await;
}

async fn kill_9_under_load(fault: Fault, pixel: &'static str, delivery: &str) {
    const SENDERS: usize = 8;
    const PER_SENDER: usize = 375; // 3000 requests in all
    const KILL_AFTER: usize = 1200;
    let emulator = spawn_emulator(EmulatorConfig {
        faults: vec![FaultRule::always(fault).for_pixel(pixel)],
        ..EmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("sluice.toml");
    // Zero-config (any pixel, any token) with small batches, so several
    // batches are in flight or leased when the process dies.
    std::fs::write(
        &config,
        format!(
            "[delivery]\nbatch_size = 50\nlinger_ms = 20\nbackoff_base_ms = 50\nbackoff_max_ms = 500\n{delivery}"
        ),
    )
    .unwrap();
    let args = [
        "--config",
        config.to_str().unwrap(),
        "--graph-url",
        &emulator.base_url(),
    ];
    let server = Server::start(&data, &args, &[]).await;
    let url = server.url("/v1/events");

    let acked = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let failed = Arc::new(Mutex::new(0usize));
    let mut senders = Vec::new();
    for task in 0..SENDERS {
        let (acked, failed, url) = (acked.clone(), failed.clone(), url.clone());
        senders.push(tokio::spawn(async move {
            let http = client();
            for n in 0..PER_SENDER {
                let id = format!("k9-{task}-{n}");
                let result = http
                    .post(&url)
                    .json(&raw_event(&id, Some(pixel)))
                    .send()
                    .await;
                match result {
                    Ok(r) if r.status().is_success() => {
                        acked.lock().unwrap().insert(id);
                    }
                    _ => *failed.lock().unwrap() += 1,
                }
            }
        }));
    }
    wait_for(
        "events acknowledged before the kill",
        Duration::from_secs(60),
        || async { (acked.lock().unwrap().len() >= KILL_AFTER).then_some(()) },
    )
    .await;
    let delivered_at_kill = delivered_ids(emulator.emulator(), pixel).len();
    server.kill9();
    for sender in senders {
        sender.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let failed = *failed.lock().unwrap();
    assert_eq!(acked.len() + failed, SENDERS * PER_SENDER);
    assert!(acked.len() >= KILL_AFTER);

    emulator.emulator().clear_faults();
    let restarted_at = Instant::now();
    let server = Server::start(&data, &args, &[]).await;
    let em = emulator.emulator();
    wait_for(
        "every acknowledged event at the emulator after the restart",
        Duration::from_secs(60),
        || async {
            let got: BTreeSet<String> = delivered_ids(em, pixel).into_iter().collect();
            acked.is_subset(&got).then_some(())
        },
    )
    .await;
    let recovery = restarted_at.elapsed();
    let all = delivered_ids(em, pixel);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &all {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let twice = counts.values().filter(|&&c| c > 1).count();
    let unacked_delivered = counts.keys().filter(|id| !acked.contains(**id)).count();
    eprintln!(
        "kill -9 test: {} requests, {} acknowledged, {} failed (after the kill); \
         {} delivered before the kill; after restart: {} distinct delivered \
         ({} of them never acknowledged), {} delivered more than once, \
         all acknowledged delivered {:.1} s after the restart",
        SENDERS * PER_SENDER,
        acked.len(),
        failed,
        delivered_at_kill,
        counts.len(),
        unacked_delivered,
        twice,
        recovery.as_secs_f64()
    );
    server.stop().await;
}

fn sdk_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk-clients")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Runs `setup.sh`; `false` means skip (registries unreachable, not in CI).
fn sdk_setup() -> bool {
    let output = std::process::Command::new("bash")
        .arg(sdk_dir().join("setup.sh"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run tests/sdk-clients/setup.sh");
    let err = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => true,
        Some(3) if !in_ci() => {
            eprintln!(
                "\n*** SKIPPED official SDKs through sluice serve: the package registries are \
                 unreachable, so the SDKs cannot be installed.\n*** setup.sh said: {}\n\
                 *** (Under CI=true this is a failure.)\n",
                err.trim()
            );
            false
        }
        other => panic!("tests/sdk-clients/setup.sh failed ({other:?}):\n{err}"),
    }
}

/// Runs one of the SDK client scripts and returns its JSON line.
fn run_sdk(sdk: &str, base: &str, pixel: &str, token: &str, case: &str) -> Value {
    let dir = sdk_dir();
    let mut command = match sdk {
        "python" => {
            let mut c = std::process::Command::new(dir.join(".venv/bin/python"));
            c.arg(dir.join("python_send.py"));
            c
        }
        _ => {
            let mut c = std::process::Command::new("node");
            c.arg(dir.join("node_send.js"));
            c
        }
    };
    let output = command
        .args([base, pixel, token, case])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run the {sdk} client: {e}"));
    let out = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(out.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
        panic!(
            "{sdk} {case}: no JSON line ({e})\nstdout: {out}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Meta's official SDKs, with only their base URL changed, work through the
/// Graph-compatible endpoint of `sluice serve`: configured (pixel token,
/// Meta's errors for stale events and bad tokens) and zero-config (sandbox).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdks_work_through_the_graph_compatible_endpoint() {
    if !tokio::task::spawn_blocking(sdk_setup).await.unwrap() {
        return;
    }
    let pixel = "4000000004";
    let token = "sdk-pixel-token-0123456789";
    let emulator = spawn_emulator(EmulatorConfig {
        tokens: Some(vec![token.into()]),
        ..EmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery]\ngraph_url = \"{}\"\nlinger_ms = 10\n[[pixels]]\nid = \"{pixel}\"\n",
            emulator.base_url()
        ),
    )
    .unwrap();
    // The token comes from the environment, as in production.
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
        &[
            ("SLUICE_PIXELS__0__ACCESS_TOKEN", token),
            ("SLUICE_LOG", "debug"),
        ],
    )
    .await;
    let log_path = server.log.clone();
    let base = format!("http://{}", server.addr);
    let sdk = |name: &'static str, pixel: &'static str, token: &'static str, case: &'static str| {
        let base = base.clone();
        tokio::task::spawn_blocking(move || run_sdk(name, &base, pixel, token, case))
    };

    let ok = sdk("python", pixel, token, "ok").await.unwrap();
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["events_received"], 2, "{ok}");
    assert_eq!(ok["messages"], json!([]), "{ok}");
    assert!(ok["fbtrace_id"].is_string(), "{ok}");

    let stale = sdk("python", pixel, token, "stale").await.unwrap();
    assert_eq!(stale["ok"], false, "{stale}");
    assert_eq!(stale["exception"], "FacebookRequestError", "{stale}");
    assert_eq!(
        (&stale["code"], &stale["subcode"], &stale["status"]),
        (&json!(100), &json!(2_804_003), &json!(400)),
        "{stale}"
    );
    assert_eq!(stale["transient"], false, "{stale}");

    let bad = sdk("python", pixel, "not-the-token", "bad_token")
        .await
        .unwrap();
    assert_eq!(bad["exception"], "FacebookRequestError", "{bad}");
    assert_eq!(bad["code"], 190, "{bad}");
    assert_eq!(bad["type"], "OAuthException", "{bad}");

    let node = sdk("node", pixel, token, "ok").await.unwrap();
    assert_eq!(node["ok"], true, "{node}");
    assert_eq!(node["events_received"], 2, "{node}");

    // The most Meta takes in one request: 1000 events (about 1.8 MB as the
    // Python SDK form-encodes them). evt-*-0 and -1 repeat the `ok` case:
    // counted as received, as Meta counts them, and not delivered again.
    for name in ["python", "node"] {
        let batch = sdk(name, pixel, token, "batch").await.unwrap();
        assert_eq!(batch["ok"], true, "{name} batch: {batch}");
        assert_eq!(batch["events_received"], 1000, "{name} batch: {batch}");
    }

    let em = emulator.emulator();
    let expected: BTreeSet<String> = (0..1000)
        .flat_map(|i| [format!("evt-py-{i}"), format!("evt-node-{i}")])
        .collect();
    wait_for("the SDKs' events at the emulator", DEADLINE, || async {
        let got: BTreeSet<String> = delivered_ids(em, pixel).into_iter().collect();
        (got == expected).then_some(())
    })
    .await;
    assert_eq!(delivered_ids(em, pixel).len(), 2000, "each event once");
    assert_eq!(em.stats().rejected_requests, 0, "{:?}", em.stats());
    server.stop().await;
    // Neither the token nor a rejected one, nor the SDK's raw inputs, in
    // the debug log.
    let log = std::fs::read_to_string(&log_path).unwrap();
    for secret in [token, "not-the-token", "Tester0", "tester0@example.com"] {
        assert!(!log.contains(secret), "{secret:?} in the debug log");
    }

    // Zero-config: any token, delivered to the sandbox.
    let sandbox = Server::start(&dir.path().join("data-zero"), &[], &[]).await;
    let base = format!("http://{}", sandbox.addr);
    let zero_pixel = "4000000005";
    let ok = tokio::task::spawn_blocking({
        let base = base.clone();
        move || run_sdk("python", &base, zero_pixel, "any-token", "ok")
    })
    .await
    .unwrap();
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["events_received"], 2, "{ok}");
    let http = client();
    let url = sandbox.url(&format!("/_sandbox/_emulator/events?pixel={zero_pixel}"));
    wait_for("the SDK's events in the sandbox", DEADLINE, || async {
        let v: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
        (v["count"] == 2).then_some(())
    })
    .await;
    sandbox.stop().await;
}
