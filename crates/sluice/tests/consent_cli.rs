//! `sluice consent explain`, `sluice consent audit` and `sluice forget`, run as
//! the real binary against a store written by the real gateway.

use serde_json::{Value, json};
use sluice_server::{Config, Gateway, StartOptions};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use tokio::net::TcpListener;

const PIXEL: &str = "111";
const API_KEY: &str = "cli-test-key-0123456789";

/// The binary with no `SLUICE_*` variables inherited from the environment.
fn sluice(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SLUICE_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.args(args);
    cmd
}

fn run(args: &[&str]) -> Output {
    sluice(args).output().unwrap()
}

fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = sluice(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs the gateway on `dir` just long enough to ingest `events` (with their
/// request headers); deliveries go nowhere (connection refused, retried a
/// minute later), so accepted events stay queued.
async fn ingest(dir: &Path, events: &[(Value, Vec<(&str, &str)>)]) -> Vec<Value> {
    let text = format!(
        r#"
data_dir = '{}'
[store]
synchronous = "normal"
[delivery]
graph_url = "http://127.0.0.1:1"
backoff_base_ms = 60000
backoff_max_ms = 120000
[[pixels]]
id = "{PIXEL}"
access_token = "EAAB-cli-test"
[[api_keys]]
name = "shop"
key = "{API_KEY}"
pixels = ["{PIXEL}"]
"#,
        dir.display()
    );
    let config = Config::from_toml_with_env(&text, None, Vec::new()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = Gateway::start(config, listener, StartOptions::default())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut results = Vec::new();
    for (event, headers) in events {
        let mut req = http
            .post(format!("http://{}/v1/events", gateway.addr))
            .bearer_auth(API_KEY)
            .json(event);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body: Value = req.send().await.unwrap().json().await.unwrap();
        results.push(body["results"][0].clone());
    }
    gateway.shutdown().await;
    results
}

fn event(id: &str, user_data: Value, consent: Option<Value>) -> Value {
    let mut e = json!({
        "pixel_id": PIXEL,
        "event_name": "Lead",
        "event_id": id,
        "event_time": now_s() - 60,
        "action_source": "website",
        "event_source_url": "https://shop.example/",
        "user_data": user_data,
    });
    if let Some(c) = consent {
        e["consent"] = c;
    }
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_lists_the_gateways_decisions_and_forget_removes_a_person() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let ua = json!("Mozilla/5.0 cli-test");
    let results = ingest(
        dir.path(),
        &[
            (
                event(
                    "e-granted",
                    json!({"em": "cli.person@example.com", "external_id": "crm-1", "client_user_agent": ua}),
                    Some(json!({"ad_user_data": "granted"})),
                ),
                vec![("cf-ipcountry", "DE")],
            ),
            (
                event(
                    "e-dropped",
                    json!({"em": "cli.person@example.com", "client_user_agent": ua}),
                    None,
                ),
                vec![("cf-ipcountry", "DE")],
            ),
            (
                {
                    let mut e = event(
                        "e-gpc",
                        json!({"ph": "+1 650 555 0199", "client_user_agent": ua}),
                        None,
                    );
                    e["gpc"] = json!(true);
                    e
                },
                vec![("cf-ipcountry", "US"), ("cf-region-code", "TX")],
            ),
            (
                event(
                    "e-crm",
                    json!({"external_id": "crm-77", "client_user_agent": ua}),
                    None,
                ),
                vec![("cf-ipcountry", "BR")],
            ),
        ],
    )
    .await;
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["accepted", "dropped", "accepted", "accepted"]);

    // The table.
    let out = run(&["consent", "audit", "--data-dir", &data_dir]);
    let table = ok(&out);
    for needle in [
        "e-granted",
        "e-dropped",
        "eea-uk-ch-opt-in",
        "us-ldu-states",
        "rest-of-world",
        "deliver_ldu",
        "drop",
        "gpc=1",
        "ad_user_data=granted",
    ] {
        assert!(table.contains(needle), "{needle} missing:\n{table}");
    }
    assert!(stderr(&out).contains("4 decision(s)"), "{}", stderr(&out));
    assert!(!table.contains("cli.person"), "no personal data:\n{table}");

    // JSON lines, filtered.
    let lines = ok(&run(&[
        "consent",
        "audit",
        "--data-dir",
        &data_dir,
        "--outcome",
        "drop",
        "--json",
    ]));
    let records: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "{lines}");
    assert_eq!(records[0]["event_id"], "e-dropped");
    assert_eq!(records[0]["rule_id"], "eea-uk-ch-opt-in");
    assert_eq!(records[0]["consent"], "missing");
    assert_eq!(records[0]["policy_version"], "sluice-default-1");
    assert!(records[0]["id"].is_i64() && records[0]["time_ms"].is_i64());
    let ldu = ok(&run(&[
        "consent",
        "audit",
        "--data-dir",
        &data_dir,
        "--rule",
        "us-ldu-states",
        "--since",
        "1h",
        "--json",
    ]));
    assert_eq!(ldu.lines().count(), 1, "{ldu}");
    assert!(ldu.contains("\"outcome\":\"deliver_ldu\""), "{ldu}");
    let paged = run(&["consent", "audit", "--data-dir", &data_dir, "--limit", "2"]);
    assert!(stderr(&paged).contains("--after-id"), "{}", stderr(&paged));
    let old = ok(&run(&[
        "consent",
        "audit",
        "--data-dir",
        &data_dir,
        "--since",
        "2000-01-01",
        "--json",
    ]));
    assert_eq!(old.lines().count(), 4);
    let future = run(&[
        "consent",
        "audit",
        "--data-dir",
        &data_dir,
        "--since",
        "2999-01-01",
    ]);
    assert_eq!(
        future.status.code(),
        Some(2),
        "a --since in the future is refused"
    );
    let summary = ok(&run(&[
        "consent",
        "audit",
        "--data-dir",
        &data_dir,
        "--summary",
    ]));
    let row = |rule: &str, outcome: &str| {
        summary
            .lines()
            .find(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.first() == Some(&rule) && cols.get(1) == Some(&outcome)
            })
            .and_then(|l| l.split_whitespace().last())
            .map(str::to_owned)
    };
    assert_eq!(
        row("eea-uk-ch-opt-in", "deliver").as_deref(),
        Some("1"),
        "{summary}"
    );
    assert_eq!(
        row("eea-uk-ch-opt-in", "drop").as_deref(),
        Some("1"),
        "{summary}"
    );
    assert_eq!(
        row("us-ldu-states", "deliver_ldu").as_deref(),
        Some("1"),
        "{summary}"
    );
    assert!(summary.lines().last().unwrap().ends_with(" 4"), "{summary}");

    // forget by e-mail, in another spelling: hashed as at ingest.
    let out = run(&[
        "forget",
        "--email",
        " CLI.Person@Example.COM ",
        "--data-dir",
        &data_dir,
    ]);
    let text = ok(&out);
    let count = |label: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(label))
            .and_then(|l| l.split_whitespace().last())
            .map(str::to_owned)
    };
    assert_eq!(
        count("queued events removed").as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        count("dead letters removed").as_deref(),
        Some("0"),
        "{text}"
    );
    assert_eq!(
        count("dedup-ledger entries removed").as_deref(),
        Some("1"),
        "{text}"
    );
    assert!(
        !text.to_ascii_lowercase().contains("cli.person") && !stderr(&out).contains("Person"),
        "the address is never printed:\n{text}"
    );
    let again = ok(&run(&[
        "forget",
        "--email",
        "cli.person@example.com",
        "--data-dir",
        &data_dir,
        "--json",
    ]));
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["queued"], 0, "{again}");

    // by a national phone number read for --country, as the event's country would be.
    let phone: Value = serde_json::from_str(&ok(&run(&[
        "forget",
        "--phone",
        "(650) 555-0199",
        "--country",
        "us",
        "--data-dir",
        &data_dir,
        "--json",
    ])))
    .unwrap();
    assert_eq!(phone["queued"], 1, "{phone}");

    // by external id from standard input.
    let ext: Value = serde_json::from_str(&ok(&run_with_stdin(
        &[
            "forget",
            "--external-id",
            "-",
            "--data-dir",
            &data_dir,
            "--json",
        ],
        "crm-77\n",
    )))
    .unwrap();
    assert_eq!(ext["queued"], 1, "{ext}");
    assert_eq!(ext["ledger"], 1, "{ext}");

    // A value that cannot be a valid address is refused without echoing it.
    let bad = run(&[
        "forget",
        "--email",
        "nobody-at-zyxw",
        "--data-dir",
        &data_dir,
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--email #1"), "{}", stderr(&bad));
    assert!(!stderr(&bad).contains("zyxw"), "{}", stderr(&bad));

    // Nothing is left queued; the audit trail is kept.
    let left = ok(&run(&["dlq", "list", "--data-dir", &data_dir, "--json"]));
    assert!(left.trim().is_empty(), "{left}");
    assert_eq!(
        ok(&run(&[
            "consent",
            "audit",
            "--data-dir",
            &data_dir,
            "--json"
        ]))
        .lines()
        .count(),
        4
    );
}

#[test]
fn explain_names_the_deciding_rule() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("event.json");
    std::fs::write(
        &file,
        json!({
            "event_name": "Purchase",
            "event_id": "order-7731",
            "user_data": {"em": "jane@example.com", "country": "de"},
            "gdpr": 1,
            "gdpr_consent": "not-a-tc-string!",
        })
        .to_string(),
    )
    .unwrap();
    let path = file.to_str().unwrap();

    let text = ok(&run(&["consent", "explain", path]));
    assert!(text.contains("policy sluice-default-1"), "{text}");
    assert!(text.contains("eea-uk-ch-opt-in         MATCHED"), "{text}");
    assert!(
        text.contains("decision: drop  (rule eea-uk-ch-opt-in, consent invalid)"),
        "{text}"
    );
    assert!(text.contains("tcf:tcf_invalid_character"), "{text}");
    assert!(!text.contains("jane"), "no personal data:\n{text}");

    let decision: Value =
        serde_json::from_str(&ok(&run(&["consent", "explain", "--json", path]))).unwrap();
    assert_eq!(decision["outcome"], "drop");
    assert_eq!(decision["rule_id"], "eea-uk-ch-opt-in");

    // The graph source is delivered as sent by the preset's first rule.
    let graph = ok(&run(&["consent", "explain", "--source", "graph", path]));
    assert!(
        graph.contains("decision: deliver  (rule graph-as-sent"),
        "{graph}"
    );

    // A wrapper from standard input: browser, US-CA, Sec-GPC.
    let wrapped = ok(&run_with_stdin(
        &["consent", "explain", "-"],
        &json!({"event": {"event_name": "Lead"}, "source": "browser",
                "region": {"country": "US", "state": "CA"}, "sec_gpc": "1"})
        .to_string(),
    ));
    assert!(
        wrapped.contains("decision: deliver_ldu  (rule us-ldu-states"),
        "{wrapped}"
    );
    assert!(wrapped.contains("country 1, state 1000"), "{wrapped}");

    // --policy: a file to try; --config: only [consent] is read (the pixel
    // below has no token, which would stop `serve`).
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        r#"
version = "shop-eu-3"
extends = "default"

[[rules]]
id = "eea-tcf-only"
regions = ["EEA"]
require = ["tcf"]
tcf_purposes = [1, 3, 4, 7]
outcome = "deliver"
"#,
    )
    .unwrap();
    let tried = ok(&run(&[
        "consent",
        "explain",
        "--policy",
        policy.to_str().unwrap(),
        path,
    ]));
    assert!(tried.contains("policy shop-eu-3"), "{tried}");
    assert!(tried.contains("rule eea-tcf-only"), "{tried}");
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[[pixels]]\nid = \"1\"\n[consent]\npolicy_file = '{}'\n",
            policy.display()
        ),
    )
    .unwrap();
    let configured = ok(&run(&[
        "consent",
        "explain",
        "--config",
        config.to_str().unwrap(),
        path,
    ]));
    assert!(configured.contains("rule eea-tcf-only"), "{configured}");

    // Bad input: exit 2 with a message.
    std::fs::write(&file, "[1, 2]").unwrap();
    let bad = run(&["consent", "explain", path]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("JSON object"), "{}", stderr(&bad));
}

#[test]
fn help_describes_each_command() {
    for (args, needle) in [
        (
            &["consent", "explain", "--help"][..],
            "which policy rule decides",
        ),
        (&["consent", "audit", "--help"][..], "--outcome"),
        (&["forget", "--help"][..], "--external-id"),
    ] {
        let text = ok(&run(args));
        assert!(text.contains(needle), "{args:?}:\n{text}");
    }
    let none = run(&["forget", "--data-dir", "/nonexistent"]);
    assert_eq!(none.status.code(), Some(2), "a person must be named");
}
