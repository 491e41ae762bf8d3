//! `sluice dedup report` against the data directory of a running
//! `sluice serve` (zero-config, merge window on): a browser copy merged with
//! its backend copy, a pair that was only deduplicated, and the suspicious
//! cases, as a table and as JSON; `--pixel`, `--since`, bad arguments.

mod common;

use common::{Server, client, now_secs, run, stderr, stdout};
use serde_json::{Value, json};

const PIXEL: &str = "7000000001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_report_shows_sources_merges_and_suspicious_ids() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, "[dedup]\nmerge_window_secs = 30\n").unwrap();
    let config = config.to_str().unwrap().to_owned();
    let server = Server::start(&data, &["--config", &config], &[]).await;
    let http = client();

    let collect = |order: &str| {
        json!({
            "pixel_ids": [PIXEL],
            "event_name": "Purchase",
            "event_id": format!("order-{order}"),
            "event_time": now_secs(),
            "event_source_url": "https://www.shop.example/thanks",
            "custom_data": {"value": 10, "currency": "EUR", "order_id": order},
            "consent": {"ad_storage": "granted", "ad_user_data": "granted"},
            "consent_source": "page"
        })
    };
    let backend = |event_name: &str, event_id: Option<&str>, order: Option<&str>| {
        let mut event = json!({
            "pixel_id": PIXEL,
            "event_name": event_name,
            "action_source": "website",
            "event_source_url": "https://www.shop.example/checkout",
            "user_data": {"em": "jane@example.com", "client_user_agent": "Mozilla/5.0 (checkout)"},
            "custom_data": {"value": 12, "currency": "EUR"},
            "consent": {"ad_user_data": "granted"}
        });
        if let Some(id) = event_id {
            event["event_id"] = json!(id);
        }
        if let Some(order) = order {
            event["custom_data"]["order_id"] = json!(order);
        }
        event
    };
    let post = |path: &'static str, body: Value| {
        let request = http
            .post(server.url(path))
            .header("origin", "https://www.shop.example")
            .header("user-agent", "Mozilla/5.0 (browser)")
            .body(body.to_string());
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert!(status.is_success(), "{path}: {status} {text}");
            serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)
        }
    };

    // Order 1: page, then backend within the window: merged.
    post("/collect", collect("1")).await;
    let answer = post("/v1/events", backend("Purchase", None, Some("1"))).await;
    assert_eq!(answer["results"][0]["status"], "merged", "{answer}");
    // Order 2: page; the backend uses its own id for the same order.
    post("/collect", collect("2")).await;
    post(
        "/v1/events",
        backend("Purchase", Some("crm-8812"), Some("2")),
    )
    .await;
    // The same id under another event name; a lead without any id.
    post("/v1/events", backend("purchase", Some("order-2"), None)).await;
    post("/v1/events", backend("Lead", None, None)).await;

    let data = data.to_str().unwrap().to_owned();
    let out = run(
        &["dedup", "report", "--data-dir", &data, "--config", &config],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("identity merge window 30 s"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with(PIXEL) && l.split_whitespace().nth(1) == Some("Purchase"))
        .unwrap_or_else(|| panic!("no Purchase row:\n{text}"));
    // events browser server both merged duplicates no-event_id
    assert_eq!(
        row.split_whitespace().skip(2).collect::<Vec<_>>(),
        ["3", "1", "1", "0", "1", "0", "0"],
        "{text}"
    );
    assert!(
        text.contains("order_id \"2\": 2 event_ids: crm-8812, order-2"),
        "{text}"
    );
    assert!(
        text.contains("event_id \"order-2\": Purchase, purchase"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{PIXEL} Lead: 1 (1 random, 0 from order_id)")),
        "{text}"
    );

    let out = run(
        &[
            "dedup",
            "report",
            "--data-dir",
            &data,
            "--json",
            "--pixel",
            PIXEL,
            "--since",
            "10m",
        ],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(report["rows"].as_array().map(Vec::len), Some(3), "{report}");
    assert_eq!(
        report["order_ids_with_several_event_ids"][0]["event_ids"],
        json!(["crm-8812", "order-2"])
    );
    let none = run(
        &[
            "dedup",
            "report",
            "--data-dir",
            &data,
            "--pixel",
            "1",
            "--json",
        ],
        &[],
        None,
    );
    let none: Value = serde_json::from_str(&stdout(&none)).expect("JSON");
    assert_eq!(none["rows"], json!([]));

    let bad = run(
        &[
            "dedup",
            "report",
            "--data-dir",
            &data,
            "--since",
            "yesterday",
        ],
        &[],
        None,
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("--since"), "{}", stderr(&bad));
    let missing = run(
        &[
            "dedup",
            "report",
            "--data-dir",
            dir.path().join("nowhere").to_str().unwrap(),
        ],
        &[],
        None,
    );
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no queue"),
        "{}",
        stderr(&missing)
    );
    server.stop().await;
}
