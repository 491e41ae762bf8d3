//! Every documented check: send the bad request over HTTP, assert the HTTP status,
//! Graph `code` and `error_subcode` (and, where it matters, `type` and the user
//! texts), and that nothing of a rejected request was recorded.

mod common;

use common::{HASH, Harness, NOW, PIXEL, TOKEN, event};
use serde_json::{Value, json};
use sluice_emulator::EmulatorConfig;

async fn send_one(h: &Harness, e: Value) -> (u16, i64, Option<i64>) {
    let reply = h.send(vec![e]).await;
    reply.error()
}

/// Asserts the answer and that the rejected request left no event behind.
async fn rejects(h: &Harness, e: Value, want: (u16, i64, Option<i64>)) {
    let before = h.emulator().stats().events;
    assert_eq!(send_one(h, e).await, want);
    assert_eq!(
        h.emulator().stats().events,
        before,
        "a rejected event was recorded"
    );
}

#[tokio::test]
async fn a_valid_request_is_accepted() {
    let h = Harness::open().await;
    let reply = h.send(vec![event("a", NOW), event("b", NOW)]).await;
    assert_eq!(reply.events_received(), 2);
    assert_eq!(reply.body["messages"], json!([]));
    assert_eq!(reply.body["fbtrace_id"].as_str().unwrap().len(), 23);
    assert_eq!(
        reply.headers["x-fb-trace-id"].to_str().unwrap(),
        reply.body["fbtrace_id"].as_str().unwrap()
    );
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(h.emulator().events_for(PIXEL).len(), 2);
}

#[tokio::test]
async fn access_token_must_be_present() {
    let h = Harness::open().await;
    let body = json!({"data": [event("a", NOW)]});
    let reply = common::Reply::read(
        h.client
            .post(h.events_url(PIXEL))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.error(), (400, 104, None));
    assert_eq!(reply.body["error"]["type"], "OAuthException");
    let empty = json!({"data": [event("a", NOW)], "access_token": ""});
    let reply = common::Reply::read(
        h.client
            .post(h.events_url(PIXEL))
            .json(&empty)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.error(), (400, 104, None));
    assert_eq!(h.emulator().stats().rejections_by_code["104"], 2);
}

#[tokio::test]
async fn without_a_token_list_any_token_is_accepted() {
    let h = Harness::open().await;
    let url = format!("{}?access_token=whatever-you-like", h.events_url(PIXEL));
    let reply = common::Reply::read(
        h.client
            .post(url)
            .json(&json!({"data": [event("a", NOW)]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.events_received(), 1);
}

#[tokio::test]
async fn token_outside_the_list_gets_190() {
    let h = Harness::start(EmulatorConfig {
        tokens: Some(vec![TOKEN.to_owned()]),
        ..EmulatorConfig::default()
    })
    .await;
    assert_eq!(h.send(vec![event("a", NOW)]).await.events_received(), 1);
    let body = json!({"data": [event("b", NOW)], "access_token": "stolen"});
    let reply = common::Reply::read(
        h.client
            .post(h.events_url(PIXEL))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.error(), (400, 190, None));
    assert_eq!(reply.body["error"]["type"], "OAuthException");
    assert!(
        !reply.body.to_string().contains("stolen"),
        "the token must not be echoed"
    );
}

#[tokio::test]
async fn appsecret_proof_is_checked_when_a_secret_is_configured() {
    let h = Harness::start(EmulatorConfig {
        app_secret: Some("app-secret".to_owned()),
        ..EmulatorConfig::default()
    })
    .await;
    // HMAC-SHA256(key = "app-secret", msg = "test-token"), computed independently.
    let proof = hmac_hex("app-secret", TOKEN);
    let send = |proof: Option<String>| {
        let mut url = format!("{}?access_token={TOKEN}", h.events_url(PIXEL));
        if let Some(p) = proof {
            url.push_str(&format!("&appsecret_proof={p}"));
        }
        let client = h.client.clone();
        async move {
            common::Reply::read(
                client
                    .post(url)
                    .json(&json!({"data": [event("a", NOW)]}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    assert_eq!(send(Some(proof)).await.events_received(), 1);
    assert_eq!(send(None).await.events_received(), 1);
    let wrong = send(Some("00".repeat(32))).await;
    assert_eq!(wrong.error(), (400, 100, None));
    assert_eq!(wrong.body["error"]["type"], "GraphMethodException");
    assert!(
        wrong.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("appsecret_proof")
    );

    let strict = Harness::start(EmulatorConfig {
        app_secret: Some("app-secret".to_owned()),
        require_appsecret_proof: true,
        ..EmulatorConfig::default()
    })
    .await;
    assert_eq!(
        strict.send(vec![event("a", NOW)]).await.error(),
        (400, 100, None)
    );
}

/// HMAC-SHA256 computed outside the emulator, as a fixed vector:
/// `hmac.new(b"app-secret", b"test-token", hashlib.sha256).hexdigest()` in Python.
fn hmac_hex(secret: &str, message: &str) -> String {
    assert_eq!((secret, message), ("app-secret", TOKEN));
    "5957479463cc188aeb65506273f5d217f084495eda7bd8b32b8b6de4a5b33e7d".to_owned()
}

#[tokio::test]
async fn unknown_pixel_gets_100_33() {
    let h = Harness::start(EmulatorConfig {
        pixels: Some(vec![PIXEL.to_owned()]),
        ..EmulatorConfig::default()
    })
    .await;
    let reply = h.post("999", &json!({"data": [event("a", NOW)]})).await;
    assert_eq!(reply.error(), (400, 100, Some(33)));
    assert_eq!(reply.body["error"]["type"], "GraphMethodException");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Unsupported post request. Object with ID '999' does not exist")
    );
    assert_eq!(h.send(vec![event("a", NOW)]).await.events_received(), 1);
}

#[tokio::test]
async fn at_most_1000_events() {
    let h = Harness::open().await;
    let thousand: Vec<Value> = (0..1000).map(|i| event(&format!("e{i}"), NOW)).collect();
    assert_eq!(h.send(thousand.clone()).await.events_received(), 1000);
    let mut too_many = thousand;
    too_many.push(event("e1000", NOW));
    assert_eq!(h.send(too_many).await.error(), (400, 100, None));
    assert_eq!(h.emulator().stats().events, 1000);
}

#[tokio::test]
async fn envelope_errors() {
    let h = Harness::open().await;
    for body in [
        json!({}),
        json!({"data": {"event_name": "x"}}),
        json!({"data": []}),
        json!({"data": "not json"}),
        json!({"data": [42]}),
        json!({"data": [event("a", NOW)], "test_event_code": {"x": 1}}),
    ] {
        let reply = h.post(PIXEL, &body).await;
        assert_eq!(reply.error(), (400, 100, None), "{body}");
    }
}

#[tokio::test]
async fn malformed_json_gets_a_graph_error() {
    let h = Harness::open().await;
    for (body, with_token) in [
        ("{\"data\": [", true),
        ("{\"data\": [", false),
        ("[1, 2]", true),
        ("\u{0}\u{1}garbage", true),
    ] {
        let mut url = h.events_url(PIXEL);
        if with_token {
            url.push_str(&format!("?access_token={TOKEN}"));
        }
        let reply = common::Reply::read(
            h.client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(reply.error(), (400, 100, None), "{body:?}");
    }
}

#[tokio::test]
async fn required_event_fields() {
    let h = Harness::open().await;
    for field in ["event_name", "event_time", "action_source", "user_data"] {
        let mut e = event("a", NOW);
        e.as_object_mut().unwrap().remove(field);
        let reply = h.send(vec![e]).await;
        assert_eq!(reply.error(), (400, 100, None), "{field}");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{message}");
    }
}

#[tokio::test]
async fn event_time_too_old_gets_2804003() {
    let h = Harness::open().await;
    let mut e = event("a", NOW);
    e["event_time"] = json!(NOW - 8 * 86_400);
    let reply = h.send(vec![event("ok", NOW), e]).await;
    assert_eq!(reply.error(), (400, 100, Some(2_804_003)));
    let error = &reply.body["error"];
    assert_eq!(error["type"], "OAuthException");
    assert_eq!(error["is_transient"], false);
    assert_eq!(error["error_user_title"], "Event Timestamp Too Old");
    assert!(
        error["error_user_msg"]
            .as_str()
            .unwrap()
            .contains("data[1]")
    );
    // The valid first event of the batch was not kept either.
    assert!(h.emulator().events_for(PIXEL).is_empty());

    // Just inside the window is fine; physical_store gets 62 days.
    let mut e = event("b", NOW);
    e["event_time"] = json!(NOW - 7 * 86_400 + 60);
    assert_eq!(h.send(vec![e]).await.events_received(), 1);
    let mut store = event("c", NOW);
    store["action_source"] = json!("physical_store");
    store["event_time"] = json!(NOW - 30 * 86_400);
    assert_eq!(h.send(vec![store.clone()]).await.events_received(), 1);
    store["event_time"] = json!(NOW - 63 * 86_400);
    rejects(&h, store, (400, 100, Some(2_804_003))).await;
}

#[tokio::test]
async fn event_time_in_the_future() {
    let h = Harness::open().await;
    let mut e = event("a", NOW);
    e["event_time"] = json!(NOW + 3600);
    rejects(&h, e.clone(), (400, 100, Some(2_804_014))).await;
    e["event_time"] = json!(NOW * 1000);
    rejects(&h, e.clone(), (400, 100, Some(2_804_014))).await;
    e["event_time"] = json!(NOW + 30);
    assert_eq!(h.send(vec![e]).await.events_received(), 1);
}

#[tokio::test]
async fn website_events_need_url_and_user_agent() {
    let h = Harness::open().await;
    let mut e = event("a", NOW);
    e.as_object_mut().unwrap().remove("event_source_url");
    rejects(&h, e, (400, 100, Some(2_804_014))).await;
    let mut e = event("a", NOW);
    e["user_data"]
        .as_object_mut()
        .unwrap()
        .remove("client_user_agent");
    rejects(&h, e.clone(), (400, 100, Some(2_804_014))).await;
    // Other action sources need neither.
    e["action_source"] = json!("email");
    e.as_object_mut().unwrap().remove("event_source_url");
    assert_eq!(h.send(vec![e]).await.events_received(), 1);
}

#[tokio::test]
async fn unknown_event_level_keys_are_rejected() {
    let h = Harness::open().await;
    let mut e = event("a", NOW);
    e["advertiser_tracking_enabled"] = json!(1);
    let reply = h.send(vec![e]).await;
    assert_eq!(reply.error(), (400, 100, None));
    assert_eq!(
        reply.body["error"]["error_user_msg"],
        "Unexpected key \"advertiser_tracking_enabled\" on param \"$['data'][0]\"."
    );
    // Custom properties belong in custom_data, where any key is fine.
    let mut e = event("b", NOW);
    e["custom_data"]["color"] = json!("red");
    assert_eq!(h.send(vec![e]).await.events_received(), 1);
}

#[tokio::test]
async fn unhashed_contact_fields_get_2804016() {
    let h = Harness::open().await;
    for (key, value) in [
        ("em", json!(["jane@example.com"])),
        ("ph", json!("+1 650 555 1212")),
        ("ct", json!(["Paris"])),
        ("country", json!(["us"])),
    ] {
        let mut e = event("a", NOW);
        e["user_data"][key] = value;
        let reply = h.send(vec![e]).await;
        assert_eq!(reply.error(), (400, 100, Some(2_804_016)), "{key}");
        assert_eq!(
            reply.body["error"]["error_user_title"],
            "User Parameter Not Hashed"
        );
        assert!(
            !reply.body.to_string().contains("example.com\"]"),
            "the value must not be echoed"
        );
    }
    // external_id may be sent as is (the official SDKs do), hashes of any case pass.
    let mut e = event("b", NOW);
    e["user_data"]["external_id"] = json!(["customer-42"]);
    e["user_data"]["ct"] = json!([HASH.to_uppercase()]);
    assert_eq!(h.send(vec![e]).await.events_received(), 1);
}

#[tokio::test]
async fn malformed_fbc_and_fbp() {
    let h = Harness::open().await;
    for (key, value) in [
        ("fbc", "fb.1.1795858000.IwAR0abc"),
        ("fbc", "IwAR0abcDEF"),
        ("fbp", "fb.1.1795859000123.not-digits"),
        ("fbp", "fb.1.1795859000123"),
    ] {
        let mut e = event("a", NOW);
        e["user_data"][key] = json!(value);
        rejects(&h, e, (400, 100, Some(2_804_014))).await;
    }
    // A param-builder appendix is fine.
    let mut e = event("a", NOW);
    e["user_data"]["fbc"] = json!("fb.1.1795858000456.IwAR0abcDEF.AQQCAQMC");
    assert_eq!(h.send(vec![e]).await.events_received(), 1);
}

#[tokio::test]
async fn bad_currency() {
    let h = Harness::open().await;
    let mut e = event("a", NOW);
    e["custom_data"]["currency"] = json!("XYZ");
    rejects(&h, e.clone(), (400, 100, Some(2_804_014))).await;
    // Either case of a real code is fine (the Python SDK lower-cases it).
    e["custom_data"]["currency"] = json!("usd");
    assert_eq!(h.send(vec![e]).await.events_received(), 1);
}

#[tokio::test]
async fn purchase_needs_a_value() {
    let h = Harness::open().await;
    let mut e = event("a", NOW);
    e["custom_data"].as_object_mut().unwrap().remove("value");
    rejects(&h, e, (400, 100, Some(2_804_009))).await;
}

#[tokio::test]
async fn too_little_customer_information() {
    let h = Harness::open().await;
    let mut e = event("a", NOW);
    e["action_source"] = json!("email");
    e["user_data"] = json!({});
    rejects(&h, e.clone(), (400, 100, Some(2_804_050))).await;
    e["user_data"] = json!({"country": [HASH], "ge": [HASH]});
    rejects(&h, e, (400, 100, Some(2_804_050))).await;
}

#[tokio::test]
async fn ldu_inconsistencies_get_2804030() {
    let h = Harness::open().await;
    let cases = [
        // Country without state.
        json!({"data_processing_options": ["LDU"], "data_processing_options_country": 1}),
        // State and country without LDU.
        json!({"data_processing_options_country": 1, "data_processing_options_state": 1000}),
        // An option that does not exist.
        json!({"data_processing_options": ["GDPR"]}),
        // A country code that does not exist.
        json!({"data_processing_options": ["LDU"], "data_processing_options_country": 7, "data_processing_options_state": 0}),
    ];
    for extra in cases {
        let mut e = event("a", NOW);
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        rejects(&h, e, (400, 100, Some(2_804_030))).await;
    }
    let mut e = event("a", NOW);
    e["data_processing_options"] = json!(["LDU"]);
    e["data_processing_options_country"] = json!(1);
    e["data_processing_options_state"] = json!(1000);
    assert_eq!(h.send(vec![e]).await.events_received(), 1);
    let mut e = event("b", NOW);
    e["data_processing_options"] = json!([]);
    assert_eq!(h.send(vec![e]).await.events_received(), 1);
}

#[tokio::test]
async fn one_bad_event_rejects_the_whole_batch() {
    let h = Harness::open().await;
    let mut bad = event("bad", NOW);
    bad["action_source"] = json!("web");
    let reply = h.send(vec![event("a", NOW), bad, event("c", NOW)]).await;
    assert_eq!(reply.error(), (400, 100, Some(2_804_014)));
    assert!(h.emulator().events_for(PIXEL).is_empty());
    let stats = h.emulator().stats();
    assert_eq!((stats.rejected_requests, stats.events), (1, 0));
    assert_eq!(stats.rejections_by_subcode["100/2804014"], 1);
}

#[tokio::test]
async fn paths_and_methods() {
    let h = Harness::open().await;
    // The Node SDK's version works as well as the Python SDK's.
    let reply = common::Reply::read(
        h.client
            .post(h.url(&format!("/v24.0/{PIXEL}/events?access_token={TOKEN}")))
            .json(&json!({"data": [event("a", NOW)]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.events_received(), 1);
    assert_eq!(reply.headers["facebook-api-version"], "v24.0");
    let get = common::Reply::read(h.client.get(h.events_url(PIXEL)).send().await.unwrap()).await;
    assert_eq!(get.error(), (400, 100, Some(33)));
    for path in [
        "/events",
        "/26.0/1/events",
        "/v26.0/1/other",
        "/v26.0/1/events/x",
    ] {
        let reply = common::Reply::read(h.client.post(h.url(path)).send().await.unwrap()).await;
        assert_eq!(reply.error(), (400, 2500, None), "{path}");
    }
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let h = Harness::start(EmulatorConfig {
        max_body_bytes: 4096,
        ..EmulatorConfig::default()
    })
    .await;
    let big: Vec<Value> = (0..20).map(|i| event(&format!("e{i}"), NOW)).collect();
    let reply = h.send(big).await;
    assert_eq!(reply.error(), (413, 100, None));
    assert_eq!(h.send(vec![event("a", NOW)]).await.events_received(), 1);
}
