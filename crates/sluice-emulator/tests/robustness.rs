//! Bad input never crashes the emulator: whatever arrives, the answer is a Graph
//! success or a Graph-style error object. Runs the router in-process (no sockets)
//! so thousands of requests stay fast.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use proptest::prelude::*;
use serde_json::{Value, json};
use sluice_emulator::{Emulator, EmulatorConfig, ManualClock};
use tower::ServiceExt;

const NOW: i64 = 1_795_860_000;

fn emulator() -> Emulator {
    Emulator::with_clock(EmulatorConfig::default(), ManualClock::at_secs(NOW)).unwrap()
}

/// Sends one request through the router and checks the answer's shape.
fn exchange(emulator: &Emulator, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut request = Request::post(path);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = emulator
            .router()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("non-JSON answer ({e}): {}", String::from_utf8_lossy(&bytes))
        });
        if status == StatusCode::OK {
            assert!(value["events_received"].is_u64(), "{value}");
            assert!(value["fbtrace_id"].is_string(), "{value}");
        } else {
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{status}"
            );
            assert!(value["error"]["code"].is_i64(), "{value}");
            assert!(value["error"]["message"].is_string(), "{value}");
            assert!(value["error"]["fbtrace_id"].is_string(), "{value}");
        }
        value
    })
}

fn content_types() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(vec![
        None,
        Some("application/json"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=XyZ"),
        Some("multipart/form-data"),
        Some("text/plain"),
        Some("application/json; charset=latin1"),
    ])
}

fn paths() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/v26.0/123/events?access_token=t".to_owned()),
        Just("/v26.0/123/events".to_owned()),
        "[a-zA-Z0-9%/._?=&-]{0,40}".prop_map(|p| format!("/{p}")),
    ]
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,20}".prop_map(Value::String),
        prop::sample::select(vec![
            "event_name",
            "Purchase",
            "website",
            "LDU",
            "fb.1.1795858000456.x",
            "USD",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "event_name",
                        "event_time",
                        "action_source",
                        "user_data",
                        "custom_data",
                        "event_id",
                        "em",
                        "fbc",
                        "fbp",
                        "currency",
                        "value",
                        "app_data",
                        "extinfo",
                        "data_processing_options",
                        "client_user_agent",
                        "x",
                    ]),
                    inner
                ),
                0..8
            )
            .prop_map(|pairs| Value::Object(
                pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_get_a_graph_answer(
        path in paths(),
        content_type in content_types(),
        body in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        exchange(&emulator(), &path, content_type, body);
    }

    #[test]
    fn random_events_get_a_graph_answer(events in prop::collection::vec(json_value(), 0..4)) {
        let body = json!({"data": events}).to_string().into_bytes();
        exchange(&emulator(), "/v26.0/1/events?access_token=t", Some("application/json"), body);
    }

    #[test]
    fn random_events_as_python_strings(events in prop::collection::vec(json_value(), 1..4)) {
        let strings: Vec<String> = events.iter().map(Value::to_string).collect();
        let data = serde_json::to_string(&strings).unwrap();
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("data", &data)
            .append_pair("access_token", "t")
            .finish()
            .into_bytes();
        exchange(&emulator(), "/v26.0/1/events", Some("application/x-www-form-urlencoded"), body);
    }
}

#[test]
fn nasty_bodies() {
    let e = emulator();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_event = format!(
        r#"{{"data": [{}]}}"#,
        "{\"a\":".repeat(5000) + "1" + &"}".repeat(5000)
    );
    let cases: Vec<(Option<&str>, Vec<u8>)> = vec![
        (Some("application/json"), deep.clone().into_bytes()),
        (Some("application/json"), format!(r#"{{"data": {deep}}}"#).into_bytes()),
        (Some("application/json"), deep_event.into_bytes()),
        (Some("application/json"), b"{\"data\": [\"\\ud800\"]}".to_vec()),
        (Some("application/json"), vec![0xff, 0xfe, b'{']),
        (Some("application/x-www-form-urlencoded"), b"data=%ZZ&&&=&access_token".to_vec()),
        (Some("application/x-www-form-urlencoded"), b"data=\"[1]\"".to_vec()),
        (
            Some("multipart/form-data; boundary=b"),
            b"--b\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n\xff\xfe\r\n--b--\r\n".to_vec(),
        ),
        (Some("application/json"), br#"{"data": [{"event_time": 99999999999999999999999}]}"#.to_vec()),
        (Some("application/json"), br#"{"data": [{"event_name": "x", "event_time": -9223372036854775808, "action_source": "website", "user_data": {}}]}"#.to_vec()),
    ];
    for (content_type, body) in cases {
        let answer = exchange(&e, "/v26.0/1/events?access_token=t", content_type, body);
        assert!(answer["error"].is_object(), "{answer}");
    }
}
