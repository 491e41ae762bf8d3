//! End to end through a real gateway (`Gateway::start` on 127.0.0.1:0, its own
//! SQLite file): the backend API and the Graph-compatible endpoint, in
//! zero-config and configured mode, with good and bad input, up to the events
//! arriving at the sandbox or at a separately spawned emulator.

mod common;

use common::*;
use serde_json::{Value, json};
use sluice_emulator::EmulatorConfig;
use sluice_server::Destination;
use std::collections::BTreeSet;

fn statuses(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {body}"))
        .iter()
        .map(|r| r["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn problem_codes(result: &Value) -> Vec<String> {
    result["problems"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| p["code"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A hashed user_data field, sent as one string or an array of them.
fn hashes(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect(),
        other => panic!("not a hash field: {other}"),
    }
}

fn ids_of(events: &Value) -> Vec<String> {
    events["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {events}"))
        .iter()
        .map(|e| {
            e["event"]["event_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// Zero-config: no key needed, events are hashed, committed, deduplicated and
/// delivered to the built-in sandbox, which the test reads over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_config_events_are_hashed_deduplicated_and_delivered_to_the_sandbox() {
    let pixel = "1000000101";
    let gw = TestGateway::start("").await;
    assert_eq!(gw.gateway.destination, Destination::Sandbox);

    // One event.
    let (status, body) = gw.post_events(&raw_event("zc-1", Some(pixel)), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(statuses(&body), ["accepted"], "{body}");
    assert_eq!(body["results"][0]["event_id"], "zc-1", "{body}");
    assert!(
        body["results"][0]["match_quality"].as_f64().unwrap_or(0.0) > 0.0,
        "{body}"
    );

    // A batch: two new events, a repeat of zc-1, the same new id twice, and
    // one invalid event. Each gets its own outcome, in order.
    let mut invalid = raw_event("zc-bad", None);
    invalid.as_object_mut().unwrap().remove("event_name");
    let batch = json!({
        "pixel_id": pixel,
        "data": [
            raw_event("zc-2", None),
            raw_event("zc-3", None),
            raw_event("zc-1", None),
            raw_event("zc-4", None),
            raw_event("zc-4", None),
            invalid,
        ]
    });
    let (status, body) = gw.post_events(&batch, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        statuses(&body),
        [
            "accepted",
            "accepted",
            "duplicate",
            "accepted",
            "duplicate",
            "rejected"
        ],
        "{body}"
    );
    assert_eq!(body["accepted"], 3, "{body}");
    assert_eq!(body["duplicates"], 2, "{body}");
    assert_eq!(body["rejected"], 1, "{body}");
    assert_eq!(body["results"][2]["event_id"], "zc-1", "{body}");
    // (sluice-core currently reports the missing name twice: once from the
    // rules, once from the parser; both with the same code.)
    let codes = problem_codes(&body["results"][5]);
    assert!(
        !codes.is_empty() && codes.iter().all(|c| c == "missing_field"),
        "{body}"
    );
    assert_eq!(
        body["results"][5]["problems"][0]["path"],
        "data[5].event_name"
    );

    // Everything accepted arrives at the sandbox, once.
    let events_path = format!("/_sandbox/_emulator/events?pixel={pixel}");
    let expected: BTreeSet<String> = ["zc-1", "zc-2", "zc-3", "zc-4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    wait_for("the sandbox to receive the 4 events", DEADLINE, || async {
        let (_, events) = gw.get(&events_path).await;
        let got: BTreeSet<String> = ids_of(&events).into_iter().collect();
        (got == expected).then_some(())
    })
    .await;
    gw.wait_drained(pixel).await;
    let (status, events) = gw.get(&events_path).await;
    assert_eq!(status, 200);
    let mut ids = ids_of(&events);
    ids.sort();
    assert_eq!(ids, ["zc-1", "zc-2", "zc-3", "zc-4"], "delivered once each");
    for recorded in events["events"].as_array().unwrap() {
        assert_eq!(recorded["duplicate"], false, "{recorded}");
        let event = &recorded["event"];
        // Hashed as Meta's reference implementation would.
        assert_eq!(
            hashes(&event["user_data"]["em"]),
            [sluice_normalize::sha256_hex("jane.doe@example.com").as_str()],
            "{event}"
        );
        assert_eq!(
            hashes(&event["user_data"]["ph"]),
            [sluice_normalize::sha256_hex("16505551212").as_str()],
            "{event}"
        );
        // sluice's own fields stay behind.
        assert!(event.get("pixel_id").is_none(), "{event}");
        assert!(event.get("consent").is_none(), "{event}");
    }

    // No raw personal data in the sandbox's copy or anywhere in the data dir.
    let sandbox_text = events.to_string();
    let stored = data_dir_bytes(gw.dir.path());
    assert!(
        stored.len() > 4096,
        "the data dir holds the queue ({} bytes)",
        stored.len()
    );
    for pii in RAW_PII {
        assert!(
            !contains(sandbox_text.as_bytes(), pii),
            "raw {pii:?} reached the sandbox"
        );
        assert!(!contains(&stored, pii), "raw {pii:?} is in the data dir");
    }
    gw.gateway.shutdown().await;
}

const SHOP_KEY: &str = "shop-key-0123456789abcdef";
const OTHER_KEY: &str = "other-key-0123456789abcdef";
const TOKEN_A: &str = "pixel-a-token-0123456789";
const TOKEN_B: &str = "pixel-b-token-0123456789";
const PIXEL_A: &str = "2000000001";
const PIXEL_B: &str = "2000000002";

/// Configured mode: API keys bound to pixels on `/v1/events`, pixel tokens (or
/// bound keys) on the Graph-compatible endpoint, Graph-style answers, and
/// delivery with the pixel's own token to a separate emulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_mode_checks_keys_tokens_and_pixels() {
    let emulator = spawn_emulator(EmulatorConfig {
        tokens: Some(vec![TOKEN_A.into(), TOKEN_B.into()]),
        ..EmulatorConfig::default()
    })
    .await;
    let config = format!(
        r#"
[delivery]
graph_url = "{url}"
{FAST_DELIVERY}
[[pixels]]
id = "{PIXEL_A}"
access_token = "{TOKEN_A}"
[[pixels]]
id = "{PIXEL_B}"
access_token = "{TOKEN_B}"
[[api_keys]]
name = "shop"
key = "{SHOP_KEY}"
pixels = ["{PIXEL_A}"]
[[api_keys]]
name = "other"
key = "{OTHER_KEY}"
pixels = ["{PIXEL_B}"]
"#,
        url = emulator.base_url()
    );
    let gw = TestGateway::start(&config).await;
    assert_eq!(
        gw.gateway.destination,
        Destination::Url(emulator.base_url())
    );

    // Backend API: no key, an unknown key.
    let before = gw.metrics().await;
    let event = raw_event("cf-1", None);
    for key in [None, Some("not-a-configured-key-123456")] {
        let (status, body) = gw.post_events(&event, key).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    }
    // A key bound to pixel A writing to pixel B: refused per event.
    let (status, body) = gw
        .post_events(&raw_event("cf-b", Some(PIXEL_B)), Some(SHOP_KEY))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(problem_codes(&body["results"][0]), ["pixel_not_allowed"]);
    // In a batch, only that event is refused; the pixel defaults to the key's.
    let batch = json!({"data": [
        raw_event("cf-1", None),
        raw_event("cf-b2", Some(PIXEL_B)),
        raw_event("cf-2", Some(PIXEL_A)),
    ]});
    let (status, body) = gw.post_events(&batch, Some(SHOP_KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(statuses(&body), ["accepted", "rejected", "accepted"]);
    assert_eq!(problem_codes(&body["results"][1]), ["pixel_not_allowed"]);

    // Graph-compatible endpoint with the pixel's token.
    let graph_url =
        |pixel: &str, token: &str| gw.url(&format!("/v26.0/{pixel}/events?access_token={token}"));
    let post_graph = |pixel: &str, token: &str, events: Vec<Value>| {
        let request = gw
            .client
            .post(graph_url(pixel, token))
            .json(&json!({ "data": events }));
        async move { read(request.send().await.expect("POST graph")).await }
    };
    let now = now_secs();
    let (status, body) = post_graph(PIXEL_A, TOKEN_A, vec![wire_event("gr-1", now)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events_received"], 1, "{body}");
    assert!(body["fbtrace_id"].is_string(), "{body}");
    // A sluice API key bound to the pixel works as its token.
    let (status, body) = post_graph(PIXEL_A, SHOP_KEY, vec![wire_event("gr-2", now)]).await;
    assert_eq!(status, 200, "{body}");
    // ...but not for a pixel it is not bound to, nor another pixel's token.
    for (pixel, token) in [(PIXEL_B, SHOP_KEY), (PIXEL_A, TOKEN_B), (PIXEL_A, "wrong")] {
        let (status, body) = post_graph(pixel, token, vec![wire_event("gr-x", now)]).await;
        assert_eq!(status, 400, "{pixel} {body}");
        assert_eq!(body["error"]["code"], 190, "{body}");
        assert_eq!(body["error"]["type"], "OAuthException", "{body}");
    }
    // A pixel this gateway does not know.
    let (status, body) = post_graph("2999999999", TOKEN_A, vec![wire_event("gr-y", now)]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], 100, "{body}");
    assert_eq!(body["error"]["error_subcode"], 33, "{body}");
    // One stale event rejects the whole request, as Meta would, and nothing
    // of it is queued.
    let (status, body) = post_graph(
        PIXEL_A,
        TOKEN_A,
        vec![
            wire_event("gr-3", now),
            wire_event("gr-stale", now - 8 * 86_400),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], 100, "{body}");
    assert_eq!(body["error"]["error_subcode"], 2_804_003, "{body}");
    assert_eq!(body["error"]["is_transient"], false, "{body}");
    // gr-3 was not queued: it is new to the dedup ledger, and sending it now
    // is accepted rather than a duplicate.
    let (status, body) = post_graph(PIXEL_A, TOKEN_A, vec![wire_event("gr-3", now)]).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = gw
        .post_events(&raw_event("gr-3", None), Some(SHOP_KEY))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(statuses(&body), ["duplicate"], "{body}");

    // Bad keys and tokens are counted by code.
    let after = gw.metrics().await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        metric(&after, name, labels) - metric(&before, name, labels)
    };
    let unauthorized = delta(
        "sluice_requests_rejected_total",
        &[("source", "backend"), ("code", "unauthorized")],
    );
    assert!(unauthorized >= 2.0, "{after}");
    let bad_token = delta(
        "sluice_requests_rejected_total",
        &[("source", "graph"), ("code", "graph_190")],
    );
    assert!(bad_token >= 3.0, "{after}");
    let unknown_pixel = delta(
        "sluice_requests_rejected_total",
        &[("source", "graph"), ("code", "graph_100_33")],
    );
    assert!(unknown_pixel >= 1.0, "{after}");
    let not_allowed = delta(
        "sluice_events_rejected_total",
        &[("source", "backend"), ("code", "pixel_not_allowed")],
    );
    assert!(not_allowed >= 2.0, "{after}");

    // Delivery with pixel A's token (the emulator knows only the two tokens).
    let expected: BTreeSet<String> = ["cf-1", "cf-2", "gr-1", "gr-2", "gr-3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let em = emulator.emulator().clone();
    wait_for("pixel A's events at the emulator", DEADLINE, || {
        let em = em.clone();
        let expected = expected.clone();
        async move {
            let got: BTreeSet<String> = delivered_ids(&em, PIXEL_A).into_iter().collect();
            (got == expected).then_some(())
        }
    })
    .await;
    gw.wait_drained(PIXEL_A).await;
    assert_eq!(delivered_ids(&em, PIXEL_A).len(), expected.len());
    assert!(delivered_ids(&em, PIXEL_B).is_empty());
    let stats = em.stats();
    assert_eq!(stats.rejected_requests, 0, "{stats:?}");
    gw.gateway.shutdown().await;
}

/// Bad input gets a stable code and a metric; the server stays up; good
/// events around the bad ones are not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_stable_codes_and_nothing_else_is_lost() {
    let pixel = "1000000301";
    let gw = TestGateway::start("[server]\nmax_body_bytes = 8192\n").await;
    let rejected = |text: &str, code: &str| {
        metric(
            text,
            "sluice_requests_rejected_total",
            &[("source", "backend"), ("code", code)],
        )
    };
    let before = gw.metrics().await;

    // A good event first: it must survive everything below.
    let (status, body) = gw
        .post_events(&raw_event("bad-in-0", Some(pixel)), None)
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = gw.post_raw(r#"{"event_name": "Purchase", "#).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_json")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        !message.contains("Purchase"),
        "the body is not echoed: {message}"
    );

    for wrong in [r#"[1, 2, 3]"#, r#""text""#, r#"{"data": "nope"}"#] {
        let (status, body) = gw.post_raw(wrong).await;
        assert_eq!(status, 400, "{wrong}: {body}");
        assert_eq!(body["error"]["code"], "invalid_type", "{wrong}: {body}");
    }

    let many = json!({"pixel_id": pixel, "data": vec![json!({}); 1001]});
    let (status, body) = gw.post_events(&many, None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "too_many_events", "{body}");

    let mut big = raw_event("bad-in-big", Some(pixel));
    big["custom_data"]["content_name"] = json!("x".repeat(10_000));
    let (status, body) = gw.post_events(&big, None).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");

    // Wrong types inside events: per event, the rest of the batch goes through.
    let mut wrong_time = raw_event("bad-in-time", None);
    wrong_time["event_time"] = json!("yesterday");
    let batch = json!({"pixel_id": pixel, "data": [
        raw_event("bad-in-1", None),
        wrong_time,
        42,
        raw_event("bad-in-2", None),
    ]});
    let (status, body) = gw.post_events(&batch, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        statuses(&body),
        ["accepted", "rejected", "rejected", "accepted"],
        "{body}"
    );
    assert_eq!(
        problem_codes(&body["results"][1]),
        ["invalid_type"],
        "{body}"
    );
    assert_eq!(
        body["results"][1]["problems"][0]["path"],
        "data[1].event_time"
    );
    assert_eq!(
        problem_codes(&body["results"][2]),
        ["invalid_type"],
        "{body}"
    );

    // A missing event_name is one problem, not two.
    let mut nameless = raw_event("bad-in-nameless", None);
    nameless.as_object_mut().unwrap().remove("event_name");
    let batch = json!({"pixel_id": pixel, "data": [nameless]});
    let (status, body) = gw.post_events(&batch, None).await;
    assert_eq!(status, 422, "nothing accepted: {body}");
    assert_eq!(statuses(&body), ["rejected"], "{body}");
    assert_eq!(
        problem_codes(&body["results"][0]),
        ["missing_field"],
        "{body}"
    );
    assert_eq!(
        body["results"][0]["problems"][0]["path"],
        "data[0].event_name"
    );

    // The Graph-compatible endpoint answers bad input the way Graph does.
    let graph = gw.url(&format!("/v26.0/{pixel}/events?access_token=t"));
    let response = gw
        .client
        .post(&graph)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("POST graph");
    let (status, body) = read(response).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!(100)),
        "{body}"
    );
    let response = gw
        .client
        .post(&graph)
        .json(&json!({"data": [big]}))
        .send()
        .await
        .expect("POST graph");
    let (status, body) = read(response).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (413, &json!(100)),
        "{body}"
    );

    // Counted, by code.
    let after = gw.metrics().await;
    for (code, n) in [
        ("invalid_json", 1.0),
        ("invalid_type", 3.0),
        ("too_many_events", 1.0),
        ("payload_too_large", 1.0),
    ] {
        assert!(
            rejected(&after, code) - rejected(&before, code) >= n,
            "sluice_requests_rejected_total{{code={code}}} not counted:\n{after}"
        );
    }
    let per_event = metric(
        &after,
        "sluice_events_rejected_total",
        &[("source", "backend"), ("code", "invalid_type")],
    ) - metric(
        &before,
        "sluice_events_rejected_total",
        &[("source", "backend"), ("code", "invalid_type")],
    );
    assert!(per_event >= 2.0, "per-event rejections counted:\n{after}");

    // Still up, and a good request still works.
    let (status, _) = gw.get("/healthz").await;
    assert_eq!(status, 200);
    let (status, body) = gw
        .post_events(&raw_event("bad-in-3", Some(pixel)), None)
        .await;
    assert_eq!(status, 200, "{body}");

    // Every good event is delivered, nothing else.
    let sandbox = gw.gateway.sandbox.clone().expect("zero-config sandbox");
    let expected: BTreeSet<String> = ["bad-in-0", "bad-in-1", "bad-in-2", "bad-in-3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    wait_for("the good events at the sandbox", DEADLINE, || {
        let sandbox = sandbox.clone();
        let expected = expected.clone();
        async move {
            let got: BTreeSet<String> = delivered_ids(&sandbox, pixel).into_iter().collect();
            (got == expected).then_some(())
        }
    })
    .await;
    gw.wait_drained(pixel).await;
    assert_eq!(delivered_ids(&sandbox, pixel).len(), 4);
    gw.gateway.shutdown().await;
}

/// In zero-config mode any pixel is accepted, but only pixel ids that can be
/// delivered: anything else is refused per event with a stable code instead
/// of being queued forever (or, for an empty id, failing the whole request
/// with a 503 that no retry could fix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_pixel_ids_are_refused_per_event() {
    let pixel = "1000000401";
    let gw = TestGateway::start("").await;
    let bad_ids = [
        json!("not-a-pixel"),
        json!(""),
        json!("12 34"),
        json!(12.5),
        json!(-5),
        json!("9".repeat(70)),
    ];
    let mut data = vec![raw_event("px-good-1", Some(pixel))];
    for (i, id) in bad_ids.iter().enumerate() {
        let mut event = raw_event(&format!("px-bad-{i}"), None);
        event["pixel_id"] = id.clone();
        data.push(event);
    }
    data.push(raw_event("px-good-2", Some(pixel)));
    let (status, body) = gw.post_events(&json!({ "data": data }), None).await;
    assert_eq!(status, 200, "{body}");
    let mut expected = vec!["accepted"];
    expected.extend(std::iter::repeat_n("rejected", bad_ids.len()));
    expected.push("accepted");
    assert_eq!(statuses(&body), expected, "{body}");
    for i in 1..=bad_ids.len() {
        assert_eq!(
            problem_codes(&body["results"][i]),
            ["invalid_pixel_id"],
            "{body}"
        );
    }
    // Alone, such an event is a 422, not a 503.
    let mut alone = raw_event("px-bad-alone", None);
    alone["pixel_id"] = json!("");
    let (status, body) = gw.post_events(&alone, None).await;
    assert_eq!(status, 422, "{body}");
    // Envelope fields of the wrong type are refused, not ignored.
    for envelope in [
        json!({"pixel_id": true, "data": [raw_event("px-env", None)]}),
        json!({"pixel_id": pixel, "test_event_code": 5, "data": [raw_event("px-env", None)]}),
    ] {
        let (status, body) = gw.post_events(&envelope, None).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "invalid_type", "{body}");
    }
    // The Graph-compatible endpoint: a longer id is no object Graph knows.
    let long = "9".repeat(30);
    let response = gw
        .client
        .post(gw.url(&format!("/v26.0/{long}/events?access_token=t")))
        .json(&json!({"data": [wire_event("px-graph", now_secs())]}))
        .send()
        .await
        .expect("POST graph");
    let (status, body) = read(response).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (&body["error"]["code"], &body["error"]["error_subcode"]),
        (&json!(100), &json!(33)),
        "{body}"
    );

    // Only the good events were queued, and they are delivered.
    let sandbox = gw.gateway.sandbox.clone().expect("sandbox");
    wait_for("the good events at the sandbox", DEADLINE, || {
        let sandbox = sandbox.clone();
        async move { (delivered_ids(&sandbox, pixel).len() == 2).then_some(()) }
    })
    .await;
    gw.wait_drained(pixel).await;
    let stats = gw.gateway.state.store.stats(now_ms()).await.expect("stats");
    assert_eq!(
        stats.queued, 0,
        "nothing undeliverable was queued: {stats:?}"
    );
    gw.gateway.shutdown().await;
}

/// A client that stops sending in the middle of its body gets 408
/// `request_timeout` after `server.request_timeout_ms`, and cannot keep a
/// graceful shutdown waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_times_out_and_does_not_block_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = TestGateway::start("[server]\nrequest_timeout_ms = 1000\n").await;
    let stalled = |path: &'static str| {
        let addr = gw.gateway.addr;
        async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: sluice\r\nContent-Type: application/json\r\n\
                 Content-Length: 1000\r\n\r\n{{\"event_name\": "
            );
            stream.write_all(head.as_bytes()).await.expect("write");
            stream
        }
    };
    let before = gw.metrics().await;
    for path in ["/v1/events", "/v26.0/1000000501/events"] {
        let mut stream = stalled(path).await;
        let mut answer = Vec::new();
        tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer))
            .await
            .expect("the server answers a stalled request")
            .expect("read");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.contains("request_timeout"), "{path}: {answer}");
    }
    let after = gw.metrics().await;
    let counted = metric(
        &after,
        "sluice_requests_rejected_total",
        &[("source", "backend"), ("code", "request_timeout")],
    ) - metric(
        &before,
        "sluice_requests_rejected_total",
        &[("source", "backend"), ("code", "request_timeout")],
    );
    assert!(counted >= 1.0, "{after}");
    // Good requests are unaffected.
    let (status, body) = gw
        .post_events(&raw_event("slow-ok", Some("1000000501")), None)
        .await;
    assert_eq!(status, 200, "{body}");

    // Shutdown with a stalled body, and a client stalled inside its headers
    // (which no request timeout sees), finishes.
    let _body = stalled("/v1/events").await;
    let mut headers = tokio::net::TcpStream::connect(gw.gateway.addr)
        .await
        .expect("connect");
    headers
        .write_all(b"POST /v1/events HTTP/1.1\r\nHost: sluice\r\nContent-Ty")
        .await
        .expect("write");
    tokio::time::timeout(DEADLINE, gw.gateway.shutdown())
        .await
        .expect("shutdown is not held up by stalled clients");
}
