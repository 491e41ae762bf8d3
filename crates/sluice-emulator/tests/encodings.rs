//! The encodings real clients send (capi-reference.md §1.1 and
//! tests/sdk-clients/README.md), and that every event is recorded exactly as
//! received.

mod common;

use common::{Harness, NOW, PIXEL, Reply, TOKEN, event};
use serde_json::{Value, json};

/// The event's JSON text as a client would write it, keys in a non-sorted order.
fn event_text(id: &str) -> String {
    let e = event(id, NOW);
    format!(
        r#"{{"event_name":"Purchase","event_time":{},"user_data":{},"custom_data":{},"action_source":"website","event_id":"{id}","event_source_url":"https://shop.example.com/checkout/done"}}"#,
        e["event_time"], e["user_data"], e["custom_data"]
    )
}

#[tokio::test]
async fn json_body_like_the_node_sdk() {
    let h = Harness::open().await;
    // Token in the query and the body, null optional fields and a top-level id.
    let body = format!(
        r#"{{"data":[{},{}],"partner_agent":null,"test_event_code":null,"namespace_id":null,"upload_id":null,"upload_tag":null,"upload_source":null,"access_token":"{TOKEN}","id":"{PIXEL}"}}"#,
        event_text("n0"),
        event_text("n1")
    );
    let reply = Reply::read(
        h.client
            .post(format!(
                "{}?access_token={TOKEN}",
                h.url(&format!("/v24.0/{PIXEL}/events"))
            ))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.events_received(), 2);
    let events = h.emulator().events_for(PIXEL);
    assert_eq!(events.len(), 2);
    // Byte for byte, key order included.
    assert_eq!(events[0].event.get(), event_text("n0"));
    assert_eq!(events[1].event.get(), event_text("n1"));
    assert_eq!(events[0].test_event_code, None);
    assert_eq!(events[0].partner_agent, None);
}

#[tokio::test]
async fn form_with_json_encoded_string_elements_like_the_python_sdk() {
    let h = Harness::open().await;
    // Python's json.dumps separators inside each element, a compact outer list.
    let elements: Vec<String> = ["p0", "p1"]
        .iter()
        .map(|id| {
            serde_json::to_string(&event(id, NOW))
                .unwrap()
                .replace(",\"", ", \"")
                .replace("\":", "\": ")
        })
        .collect();
    let data = serde_json::to_string(&elements).unwrap();
    let reply = Reply::read(
        h.client
            .post(format!("{}?access_token={TOKEN}", h.events_url(PIXEL)))
            .form(&[
                ("test_event_code", "TEST123"),
                ("partner_agent", "acme_gateway_1_0"),
                ("data", data.as_str()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.events_received(), 2);
    let events = h.emulator().events_for(PIXEL);
    assert_eq!(events[0].event.get(), elements[0]);
    assert_eq!(events[0].test_event_code.as_deref(), Some("TEST123"));
    assert_eq!(events[0].partner_agent.as_deref(), Some("acme_gateway_1_0"));
    assert_eq!(events[1].json()["event_id"], "p1");
}

#[tokio::test]
async fn form_with_object_elements_and_token_in_the_body() {
    let h = Harness::open().await;
    let data = serde_json::to_string(&vec![event("a0", NOW), event("a1", NOW)]).unwrap();
    let reply = Reply::read(
        h.client
            .post(h.events_url(PIXEL))
            .form(&[("data", data.as_str()), ("access_token", TOKEN)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.events_received(), 2);
    assert_eq!(h.emulator().events_for(PIXEL)[1].json()["event_id"], "a1");
}

#[tokio::test]
async fn multipart_like_metas_curl_example() {
    let h = Harness::open().await;
    let data = serde_json::to_string_pretty(&vec![event("m0", NOW)]).unwrap();
    let form = reqwest::multipart::Form::new()
        .text("data", data)
        .text("access_token", TOKEN)
        .text("test_event_code", "TEST9");
    let reply = Reply::read(
        h.client
            .post(h.events_url(PIXEL))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.events_received(), 1);
    let events = h.emulator().events_for(PIXEL);
    assert_eq!(events[0].json()["event_id"], "m0");
    assert_eq!(events[0].test_event_code.as_deref(), Some("TEST9"));

    // A multipart body that is cut off is a Graph error, not a crash.
    let reply = Reply::read(
        h.client
            .post(format!("{}?access_token={TOKEN}", h.events_url(PIXEL)))
            .header("content-type", "multipart/form-data; boundary=XYZ")
            .body("--XYZ\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n[{")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.error(), (400, 100, None));
}

#[tokio::test]
async fn json_without_content_type_and_everything_in_the_query() {
    let h = Harness::open().await;
    let body = json!({"data": [event("s0", NOW)], "access_token": TOKEN}).to_string();
    let reply = Reply::read(
        h.client
            .post(h.events_url(PIXEL))
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.events_received(), 1);

    let data = serde_json::to_string(&vec![event("q0", NOW)]).unwrap();
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("access_token", TOKEN)
        .append_pair("data", &data)
        .finish();
    let reply = Reply::read(
        h.client
            .post(format!("{}?{query}", h.events_url(PIXEL)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.events_received(), 1);
    let ids: Vec<Value> = h
        .emulator()
        .events_for(PIXEL)
        .iter()
        .map(|e| e.json()["event_id"].clone())
        .collect();
    assert_eq!(ids, [json!("s0"), json!("q0")]);
}

#[tokio::test]
async fn a_json_encoded_string_element_that_is_not_json() {
    let h = Harness::open().await;
    let reply = Reply::read(
        h.client
            .post(format!("{}?access_token={TOKEN}", h.events_url(PIXEL)))
            .form(&[("data", r#"["{\"event_name\": "]"#)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.error(), (400, 100, None));
}

#[tokio::test]
async fn token_in_an_authorization_header() {
    let h = Harness::open().await;
    for scheme in ["Bearer", "OAuth"] {
        let reply = Reply::read(
            h.client
                .post(h.events_url(PIXEL))
                .header("authorization", format!("{scheme} {TOKEN}"))
                .json(&json!({"data": [event("h", NOW)]}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(reply.events_received(), 1, "{scheme}");
    }
}
