//! The `sluice` command line, run as a user runs it: exit codes, output, and
//! what reaches an emulator.

mod common;

use common::*;
use serde_json::{Value, json};
use sluice_emulator::{EmulatorConfig, Fault, FaultRule};
use std::path::Path;

fn hex(value: &str) -> String {
    sluice_normalize::sha256_hex(value).as_str().to_owned()
}

/// `Commands:` of a help text (the names only).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("Options:"))
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn help_for_every_command_exits_zero() {
    let top = run(&["--help"], &[], None);
    assert!(top.status.success(), "{}", stderr(&top));
    let mut queue: Vec<Vec<String>> = subcommands(&stdout(&top))
        .into_iter()
        .map(|c| vec![c])
        .collect();
    for expected in [
        "serve",
        "emulate",
        "normalize",
        "hash",
        "validate",
        "send",
        "check-config",
        "dlq",
    ] {
        assert!(
            queue.iter().any(|c| c[0] == expected),
            "{expected} missing from --help:\n{}",
            stdout(&top)
        );
    }
    let mut checked = 0;
    while let Some(path) = queue.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let output = run(&args, &[], None);
        assert!(
            output.status.success(),
            "sluice {} exited {:?}:\n{}",
            args.join(" "),
            output.status.code(),
            stderr(&output)
        );
        let text = stdout(&output);
        assert!(
            text.contains("Usage:"),
            "sluice {}:\n{text}",
            args.join(" ")
        );
        for sub in subcommands(&text) {
            let mut deeper = path.clone();
            deeper.push(sub);
            queue.push(deeper);
        }
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} help pages");
    let version = run(&["--version"], &[], None);
    assert!(version.status.success());
    assert!(stdout(&version).starts_with("sluice "));
}

#[test]
fn normalize_and_hash_print_what_sluice_sends() {
    let out = run(
        &["normalize", "--field", "em", " Jane@Example.COM "],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "jane@example.com\n");

    let out = run(
        &["hash", "--field", "ph", "--country", "US", "(650) 555-1212"],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), hex("16505551212"));
    assert_eq!(stdout(&out).trim().len(), 64);

    // Errors: a value that cannot be normalized, an unknown field.
    let out = run(&["normalize", "--field", "em", "not an email"], &[], None);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(!stderr(&out).contains("not an email"), "{}", stderr(&out));
    let out = run(&["hash", "--field", "nope", "x"], &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown field"), "{}", stderr(&out));
}

#[test]
fn normalize_jsonl_answers_each_line_in_order() {
    let input = [
        r#"{"field":"em","value":" A@B.COM "}"#,
        "not json",
        r#"{"field":"ph","value":"(650) 555-1212","country":"US"}"#,
        r#"{"field":"xx","value":"1"}"#,
        r#"{"field":"ct","value":"Menlo Park"}"#,
    ]
    .join("\n");
    let out = run(&["normalize", "--jsonl"], &[], Some(&input));
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 5, "one line per input: {lines:?}");
    assert_eq!(
        lines[0],
        json!({"normalized": "a@b.com", "hash": hex("a@b.com")})
    );
    assert!(
        lines[1]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("invalid_line")),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines[2],
        json!({"normalized": "16505551212", "hash": hex("16505551212")})
    );
    assert!(
        lines[3]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("unknown_field")),
        "{}",
        lines[3]
    );
    assert_eq!(
        lines[4],
        json!({"normalized": "menlopark", "hash": hex("menlopark")})
    );
    assert!(stderr(&out).contains("2 line(s)"), "{}", stderr(&out));
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn validate_reports_problem_codes_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_secs();
    let good = json!({"data": [{
        "event_name": "Purchase", "event_time": now, "event_id": "v-1",
        "action_source": "website", "event_source_url": "https://shop.example.com/x",
        "user_data": {"em": [hex("jane@example.com")], "client_user_agent": "UA",
                      "client_ip_address": "203.0.113.9"},
        "custom_data": {"value": 1, "currency": "EUR"}
    }]});
    let bad = json!({"data": [{
        "event_name": "Purchase", "event_time": now - 8 * 86_400, "event_id": "v-2",
        "action_source": "website", "event_source_url": "https://shop.example.com/x",
        "user_data": {"em": "Jane@Example.com", "client_user_agent": "UA"},
        "custom_data": {"value": 1}
    }]});
    let good = write(dir.path(), "good.json", &good.to_string());
    let bad = write(dir.path(), "bad.json", &bad.to_string());

    let out = run(&["validate", &good], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stderr(&out).contains("0 error(s)"), "{}", stderr(&out));

    let out = run(&["validate", &bad], &[], None);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    for code in [
        "event_time_too_old",
        "missing_purchase_currency",
        "unhashed_user_data",
    ] {
        assert!(text.contains(&format!("[{code}]")), "{code} in:\n{text}");
    }
    assert!(
        !text.contains("Jane@Example.com"),
        "values are not echoed:\n{text}"
    );

    let out = run(&["validate", "--json", &bad], &[], None);
    assert_eq!(out.status.code(), Some(1));
    let codes: Vec<String> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["code"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        codes.contains(&"unhashed_user_data".to_owned()),
        "{codes:?}"
    );

    // --ingest: raw personal data is fine there, the rest is still wrong.
    let out = run(&["validate", "--ingest", &bad], &[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !stdout(&out).contains("unhashed_user_data"),
        "{}",
        stdout(&out)
    );

    // stdin, and not JSON at all.
    let out = run(&["validate", "-"], &[], Some("{nope"));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("invalid_json"), "{}", stdout(&out));
}

#[test]
fn check_config_accepts_good_files_and_names_the_problem_in_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let token = "EAAB-check-config-secret-token";
    let good = write(
        dir.path(),
        "good.toml",
        "[[pixels]]\nid = \"1234567890\"\n[[api_keys]]\nname = \"shop\"\nkey_file = \"KEYFILE\"\npixels = [\"1234567890\"]\n"
            .replace("KEYFILE", &write(dir.path(), "key", "shop-key-0123456789abcdef\n"))
            .as_str(),
    );
    let out = run(
        &["check-config", &good],
        &[("SLUICE_PIXELS__0__ACCESS_TOKEN", token)],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("configuration is valid"), "{text}");
    assert!(text.contains("1234567890"), "{text}");
    assert!(
        !text.contains(token) && !text.contains("shop-key-0123456789"),
        "secrets printed:\n{text}"
    );

    // Without the token, the same file is incomplete.
    let out = run(&["check-config", &good], &[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("access_token"), "{}", stderr(&out));

    let typo = write(
        dir.path(),
        "typo.toml",
        "[server]\nlisten_addr = \"127.0.0.1:1\"\n",
    );
    let out = run(&["check-config", &typo], &[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("listen_addr"), "{}", stderr(&out));

    let unbound = write(
        dir.path(),
        "unbound.toml",
        "[[api_keys]]\nname = \"shop\"\nkey = \"shop-key-0123456789abcdef\"\npixels = [\"999\"]\n",
    );
    let out = run(&["check-config", &unbound], &[], None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("999") && !err.contains("shop-key-0123"),
        "{err}"
    );

    let missing = dir.path().join("missing.toml");
    let out = run(&["check-config", missing.to_str().unwrap()], &[], None);
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_prints_metas_answer() {
    let token = "send-token-0123456789";
    let emulator = spawn_emulator(EmulatorConfig {
        tokens: Some(vec![token.into()]),
        ..EmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut event = raw_event("send-1", None);
    event.as_object_mut().unwrap().remove("consent");
    let file = write(dir.path(), "event.json", &event.to_string());
    let url = emulator.base_url();
    let pixel = "5000000001";
    let args = [
        "send",
        "--pixel",
        pixel,
        "--graph-url",
        url.as_str(),
        file.as_str(),
    ];

    let out = tokio::task::spawn_blocking({
        let args = args.map(str::to_owned);
        move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&args, &[("SLUICE_ACCESS_TOKEN", token)], None)
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let answer: Value = serde_json::from_str(stdout(&out).trim()).expect("JSON answer");
    assert_eq!(answer["events_received"], 1, "{answer}");
    let recorded = emulator.emulator().events_for(pixel);
    assert_eq!(recorded.len(), 1);
    let sent = recorded[0].json();
    assert_eq!(sent["event_id"], "send-1");
    assert!(
        !sent.to_string().contains("Jane"),
        "hashed before sending: {sent}"
    );

    // A wrong token: Meta's error, exit 1; no token: exit 2.
    let out = tokio::task::spawn_blocking({
        let args = args.map(str::to_owned);
        move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&args, &[("SLUICE_ACCESS_TOKEN", "wrong-token")], None)
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let answer: Value = serde_json::from_str(stdout(&out).trim()).expect("JSON error");
    assert_eq!(answer["error"]["code"], 190, "{answer}");
    assert!(!stderr(&out).contains("wrong-token"), "{}", stderr(&out));
    let out = run(&args, &[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("SLUICE_ACCESS_TOKEN"),
        "{}",
        stderr(&out)
    );
}

/// `sluice dlq list/show/replay` against the data directory of a running
/// `sluice serve` whose Meta refuses every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_commands_list_and_replay_dead_letters() {
    let pixel = "5000000002";
    let token = "dlq-pixel-token-0123456789";
    let key = "dlq-api-key-0123456789abcdef";
    let emulator = spawn_emulator(EmulatorConfig {
        faults: vec![
            FaultRule::always(Fault::HttpStatus {
                status: 400,
                code: Some(100),
                subcode: Some(2_804_019),
                message: Some("Invalid parameter".into()),
                transient: Some(false),
            })
            .for_pixel(pixel),
        ],
        ..EmulatorConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write(
        dir.path(),
        "sluice.toml",
        &format!(
            "[delivery]\ngraph_url = \"{}\"\nlinger_ms = 10\n[[pixels]]\nid = \"{pixel}\"\naccess_token = \"{token}\"\n[[api_keys]]\nname = \"shop\"\nkey = \"{key}\"\npixels = [\"{pixel}\"]\n",
            emulator.base_url()
        ),
    );
    let server = Server::start(&data, &["--config", &config], &[]).await;
    let http = client();
    for id in ["dlq-1", "dlq-2"] {
        let response = http
            .post(server.url("/v1/events"))
            .bearer_auth(key)
            .json(&raw_event(id, None))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let data_str = data.to_str().unwrap().to_owned();
    let list = |extra: &'static [&'static str]| {
        let data = data_str.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["dlq", "list", "--data-dir", data.as_str()];
            args.extend_from_slice(extra);
            run(&args, &[], None)
        })
    };
    let lines: Vec<Value> = wait_for("two dead letters", DEADLINE, || async {
        let out = list(&["--json"]).await.unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let lines: Vec<Value> = stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (lines.len() == 2).then_some(lines)
    })
    .await;
    let mut ids: Vec<&str> = lines
        .iter()
        .map(|l| l["event_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["dlq-1", "dlq-2"]);
    for line in &lines {
        assert_eq!(line["code"], "100/2804019", "{line}");
        assert_eq!(line["pixel_id"], pixel, "{line}");
        assert_eq!(
            line["detail"]["error"]["error_subcode"], 2_804_019,
            "{line}"
        );
    }
    // The table, filtered by Meta's code as the help describes it.
    let help = run(&["dlq", "list", "--help"], &[], None);
    assert!(stdout(&help).contains("100/2804003"), "{}", stdout(&help));
    let out = list(&["--code", "100/2804019"]).await.unwrap();
    assert!(stdout(&out).contains("dlq-") || stdout(&out).contains("Purchase"));
    assert!(
        stderr(&out).contains("2 dead letter(s)"),
        "{}",
        stderr(&out)
    );
    let out = list(&["--code", "190/463"]).await.unwrap();
    assert!(
        stderr(&out).contains("0 dead letter(s)"),
        "{}",
        stderr(&out)
    );

    // Show one.
    let id = lines[0]["id"].as_str().unwrap().to_owned();
    let out = run(&["dlq", "show", &id, "--data-dir", &data_str], &[], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["id"], id.as_str());
    assert!(!stdout(&out).contains("Jane"), "hashed at rest");

    // Replay: a dry run changes nothing; the real one puts them back and the
    // running server delivers them once Meta accepts them.
    let out = run(
        &[
            "dlq",
            "replay",
            "--dry-run",
            "--config",
            &config,
            "--data-dir",
            &data_str,
        ],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("would replay 2"), "{}", stdout(&out));
    emulator.emulator().clear_faults();
    let out = run(
        &[
            "dlq",
            "replay",
            "--config",
            &config,
            "--data-dir",
            &data_str,
        ],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("replayed 2"), "{}", stdout(&out));
    let em = emulator.emulator();
    wait_for("the replayed events at the emulator", DEADLINE, || async {
        let mut got = delivered_ids(em, pixel);
        got.sort();
        (got == ["dlq-1", "dlq-2"]).then_some(())
    })
    .await;
    let out = list(&["--json"]).await.unwrap();
    assert_eq!(stdout(&out), "", "the queue is empty again");

    // No queue there: a clear error.
    let out = run(
        &[
            "dlq",
            "list",
            "--data-dir",
            dir.path().join("nothing").to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no queue"), "{}", stderr(&out));
    server.stop().await;
}
