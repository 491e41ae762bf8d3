use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use sluice_core::{ActionSource, GraphError};

use super::*;

/// What the fake Graph server saw: the request URI and body.
type Seen = Arc<Mutex<Vec<(Uri, HeaderMap, Bytes)>>>;

/// A one-route server that records each request and answers with `reply`.
async fn fake_graph(
    reply: impl Fn() -> axum::response::Response + Clone + Send + Sync + 'static,
) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let recorded = seen.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let recorded = recorded.clone();
        let reply = reply.clone();
        async move {
            recorded.lock().unwrap().push((uri, headers, body));
            reply()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn ok_reply(n: u64) -> axum::response::Response {
    (
        StatusCode::OK,
        format!(r#"{{"events_received":{n},"messages":[],"fbtrace_id":"AbC"}}"#),
    )
        .into_response()
}

fn client_for(base_url: &str) -> GraphClient {
    GraphClient::new(&ClientConfig {
        base_url: base_url.to_owned(),
        request_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    })
    .unwrap()
}

fn creds() -> Credentials {
    Credentials::with_app_secret(Secret::new("EAAB-token"), &Secret::new("app-secret"))
}

#[test]
fn appsecret_proof_is_hex_hmac_sha256_of_the_token() {
    // RFC 4231 test case 2: key "Jefe", message "what do ya want for nothing?".
    let proof = appsecret_proof(
        &Secret::new("Jefe"),
        &Secret::new("what do ya want for nothing?"),
    );
    assert_eq!(
        proof.expose(),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        creds().appsecret_proof().unwrap().expose(),
        "294c307ff2427ed2140908ec13f483ef7f7d7819a8fc32fb535cf6ada2327ab2"
    );
}

#[test]
fn credentials_never_print_their_secrets() {
    let text = format!("{:?}", creds());
    assert!(!text.contains("EAAB"), "{text}");
    assert!(!text.contains("294c30"), "{text}");
    let fingerprint = creds().fingerprint();
    assert_eq!(fingerprint.len(), 12);
    assert_ne!(
        fingerprint,
        Credentials::new(Secret::new("other")).fingerprint()
    );
}

#[test]
fn an_https_client_builds_with_the_default_config() {
    let client = GraphClient::new(&ClientConfig::default()).unwrap();
    assert_eq!(
        client.events_url("123"),
        format!("https://graph.facebook.com/{DEFAULT_GRAPH_VERSION}/123/events")
    );
    // Building twice must not trip over the already installed provider.
    GraphClient::new(&ClientConfig::default()).unwrap();
}

#[test]
fn config_is_validated() {
    let bad = |config: ClientConfig| GraphClient::new(&config).unwrap_err();
    assert!(matches!(
        bad(ClientConfig {
            base_url: "ftp://x".into(),
            ..ClientConfig::default()
        }),
        ClientBuildError::InvalidBaseUrl(_)
    ));
    assert!(matches!(
        bad(ClientConfig {
            base_url: "https://x/?access_token=1".into(),
            ..ClientConfig::default()
        }),
        ClientBuildError::InvalidBaseUrl(_)
    ));
    for version in ["26.0", "v26", "v26.x", "v.0", ""] {
        assert!(matches!(
            bad(ClientConfig {
                version: version.into(),
                ..ClientConfig::default()
            }),
            ClientBuildError::InvalidVersion(_)
        ));
    }
    assert!(matches!(
        bad(ClientConfig {
            request_timeout: Duration::ZERO,
            ..ClientConfig::default()
        }),
        ClientBuildError::ZeroTimeout("request_timeout")
    ));
    let client = GraphClient::new(&ClientConfig {
        base_url: "http://127.0.0.1:9/graph/".into(),
        ..ClientConfig::default()
    })
    .unwrap();
    assert_eq!(
        client.events_url("1"),
        "http://127.0.0.1:9/graph/v26.0/1/events"
    );
    let other = client.with_endpoint(None, Some("v25.0")).unwrap();
    assert_eq!(
        other.events_url("1"),
        "http://127.0.0.1:9/graph/v25.0/1/events"
    );
}

#[tokio::test]
async fn raw_events_are_spliced_into_a_json_body_with_the_token_in_the_body() {
    let (base, seen) = fake_graph(|| ok_reply(2)).await;
    let client = client_for(&base);
    let stored: Vec<Vec<u8>> = vec![
        br#"{"event_name":"Purchase","event_time":1795860000,"action_source":"website","custom_data":{"value":1.50}}"#.to_vec(),
        br#"{"event_name":"Lead","event_time":1795860001,"action_source":"website"}"#.to_vec(),
    ];
    let raw: Vec<&RawValue> = stored
        .iter()
        .map(|bytes| serde_json::from_slice(bytes).unwrap())
        .collect();
    let options = BatchOptions {
        test_event_code: Some("TEST123".into()),
        ..BatchOptions::default()
    };
    let response = client
        .send_raw("1234567890", &creds(), &raw, &options)
        .await
        .unwrap();
    assert_eq!(response.events_received, 2);
    assert_eq!(response.fbtrace_id, "AbC");

    let seen = seen.lock().unwrap();
    let (uri, headers, body) = &seen[0];
    assert_eq!(uri.path(), "/v26.0/1234567890/events");
    assert_eq!(uri.query(), None, "nothing may travel in the query string");
    assert_eq!(headers["content-type"], "application/json");
    let text = std::str::from_utf8(body).unwrap();
    // The stored bytes appear verbatim (the 1.50 is not re-formatted to 1.5).
    assert!(
        text.starts_with(r#"{"data":[{"event_name":"Purchase""#),
        "{text}"
    );
    assert!(text.contains(r#""value":1.50}}"#), "{text}");
    let json: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(json["data"].as_array().unwrap().len(), 2);
    assert_eq!(json["access_token"], "EAAB-token");
    assert_eq!(
        json["appsecret_proof"],
        "294c307ff2427ed2140908ec13f483ef7f7d7819a8fc32fb535cf6ada2327ab2"
    );
    assert_eq!(json["test_event_code"], "TEST123");
    assert_eq!(json["partner_agent"], default_partner_agent());
}

#[tokio::test]
async fn typed_events_and_requests_use_the_same_body() {
    let (base, seen) = fake_graph(|| ok_reply(1)).await;
    let client = client_for(&base);
    let event = ServerEvent::builder("Purchase", 1_795_860_000, ActionSource::Website)
        .event_id("order-1")
        .build();
    let credentials = Credentials::new(Secret::new("tok"));
    client
        .send_events(
            "42",
            &credentials,
            std::slice::from_ref(&event),
            &BatchOptions::default(),
        )
        .await
        .unwrap();
    let request = EventRequest {
        data: vec![event],
        partner_agent: Some("mine_1".into()),
        upload_tag: Some("tag".into()),
        ..EventRequest::default()
    };
    client
        .send_request("42", &credentials, &request)
        .await
        .unwrap();

    let seen = seen.lock().unwrap();
    let first: serde_json::Value = serde_json::from_slice(&seen[0].2).unwrap();
    assert_eq!(first["data"][0]["event_id"], "order-1");
    assert_eq!(first["access_token"], "tok");
    assert!(first.get("appsecret_proof").is_none());
    assert!(first.get("test_event_code").is_none());
    let second: serde_json::Value = serde_json::from_slice(&seen[1].2).unwrap();
    assert_eq!(second["partner_agent"], "mine_1");
    assert_eq!(second["upload_tag"], "tag");
}

#[tokio::test]
async fn graph_errors_carry_status_object_and_buc_wait() {
    let (base, _) = fake_graph(|| {
        let body = GraphError::new(80_004, "OAuthException", "too many calls").into_envelope();
        (
            StatusCode::BAD_REQUEST,
            [(
                "x-business-use-case-usage",
                r#"{"99":[{"type":"ads_management","call_count":100,"estimated_time_to_regain_access":2}]}"#,
            )],
            axum::Json(body),
        )
            .into_response()
    })
    .await;
    let raw: &RawValue = serde_json::from_str(r#"{"event_name":"Lead"}"#).unwrap();
    let err = client_for(&base)
        .send_raw("1", &creds(), &[raw], &BatchOptions::default())
        .await
        .unwrap_err();
    match err {
        DeliveryError::Graph {
            status,
            error,
            buc_wait,
        } => {
            assert_eq!(status, 400);
            assert_eq!(error.code, 80_004);
            assert_eq!(buc_wait, Some(Duration::from_secs(120)));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn interpret_covers_every_response_shape() {
    let c = creds();
    let ok = interpret(200, None, br#"{"events_received":3,"fbtrace_id":"x"}"#, &c).unwrap();
    assert_eq!(ok.events_received, 3);

    let err = interpret(200, None, b"<html>ok?</html>", &c).unwrap_err();
    assert!(matches!(
        err,
        DeliveryError::UnexpectedResponse { status: 200, .. }
    ));

    let err = interpret(
        503,
        Some(Duration::from_secs(5)),
        b"<html>Service Unavailable for EAAB-token</html>",
        &c,
    )
    .unwrap_err();
    match err {
        DeliveryError::UnexpectedResponse {
            status,
            snippet,
            retry_after,
        } => {
            assert_eq!(status, 503);
            let snippet = snippet.unwrap();
            assert!(!snippet.contains("EAAB"), "{snippet}");
            assert!(snippet.contains("<redacted>"), "{snippet}");
            assert_eq!(retry_after, Some(Duration::from_secs(5)));
        }
        other => panic!("unexpected {other:?}"),
    }

    let err = interpret(502, None, b"", &c).unwrap_err();
    assert!(matches!(
        err,
        DeliveryError::UnexpectedResponse {
            status: 502,
            snippet: None,
            ..
        }
    ));

    let body = br#"{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190,"error_subcode":467,"fbtrace_id":"t"}}"#;
    let err = interpret(401, None, body, &c).unwrap_err();
    assert_eq!(err.code_label(), "190/467");

    let long = "x".repeat(10_000);
    let err = interpret(500, None, long.as_bytes(), &c).unwrap_err();
    let DeliveryError::UnexpectedResponse { snippet, .. } = err else {
        panic!()
    };
    assert_eq!(snippet.unwrap().len(), SNIPPET_CHARS);
}

#[tokio::test]
async fn invalid_batches_are_refused_before_sending() {
    let client = client_for("http://127.0.0.1:9");
    let raw: &RawValue = serde_json::from_str("{}").unwrap();
    let send = |pixel: &'static str, events: Vec<&'static RawValue>| {
        let client = client.clone();
        async move {
            client
                .send_raw(pixel, &creds(), &events, &BatchOptions::default())
                .await
                .unwrap_err()
        }
    };
    let raw: &'static RawValue = Box::leak(raw.to_owned());
    assert!(matches!(
        send("1", vec![]).await,
        DeliveryError::InvalidBatch { .. }
    ));
    assert!(matches!(
        send("1", vec![raw; 1001]).await,
        DeliveryError::InvalidBatch { .. }
    ));
    assert!(matches!(
        send("1/../2", vec![raw]).await,
        DeliveryError::InvalidBatch { .. }
    ));
}

#[tokio::test]
async fn refused_connections_are_connect_errors() {
    // Bind and drop a listener to get a port that refuses connections.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let raw: &RawValue = serde_json::from_str("{}").unwrap();
    let err = client_for(&format!("http://{addr}"))
        .send_raw("1", &creds(), &[raw], &BatchOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DeliveryError::Transport {
                kind: TransportKind::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains("EAAB"));
}

#[tokio::test]
async fn a_slow_server_is_a_timeout() {
    let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
    let seen: Seen = Arc::default();
    let app = axum::Router::new().fallback(move || {
        let mut gate = gate_rx.clone();
        async move {
            // Never answers within the test: waits for a signal that only
            // comes after the client has given up.
            let _ = gate.wait_for(|open| *open).await;
            ok_reply(1)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = GraphClient::new(&ClientConfig {
        base_url: format!("http://{addr}"),
        request_timeout: Duration::from_millis(200),
        ..ClientConfig::default()
    })
    .unwrap();
    let raw: &RawValue = serde_json::from_str("{}").unwrap();
    let err = client
        .send_raw("1", &creds(), &[raw], &BatchOptions::default())
        .await
        .unwrap_err();
    gate_tx.send_replace(true);
    drop(seen);
    assert!(
        matches!(
            err,
            DeliveryError::Transport {
                kind: TransportKind::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
}

/// Events as the store keeps them: compact JSON, one with a number serde
/// would print differently (1.50), one with escapes.
fn stored_events() -> Vec<Vec<u8>> {
    vec![
        br#"{"event_name":"Purchase","event_time":1795860000,"custom_data":{"value":1.50}}"#.to_vec(),
        br#"{"event_name":"Lead","event_time":1795860001,"event_id":"a\"b\\c"}"#.to_vec(),
        br#"{"event_name":"ViewContent","event_time":1795860002}"#.to_vec(),
        br#"{"event_name":"Search","event_time":1795860003,"custom_data":{"search_string":"\u00e9t\u00e9"}}"#.to_vec(),
    ]
}

fn raw(stored: &[Vec<u8>]) -> Vec<&RawValue> {
    stored
        .iter()
        .map(|bytes| serde_json::from_slice(bytes).unwrap())
        .collect()
}

#[test]
fn a_raw_body_is_byte_for_byte_what_serde_writes_and_exactly_sized() {
    let client = client_for("http://127.0.0.1:9");
    let stored = stored_events();
    let events = raw(&stored);
    let all_options = BatchOptions {
        test_event_code: Some("TEST1".into()),
        partner_agent: Some("agent_1".into()),
        namespace_id: Some("ns".into()),
        upload_id: Some("up".into()),
        upload_tag: Some("tag \"quoted\"".into()),
        upload_source: Some("src".into()),
    };
    for credentials in [creds(), Credentials::new(Secret::new("tok\"en"))] {
        for options in [BatchOptions::default(), all_options.clone()] {
            for n in 1..=events.len() {
                let body = client
                    .raw_body(&events[..n], &credentials, &options)
                    .unwrap();
                let expected =
                    serde_json::to_vec(&client.body(&events[..n], &credentials, &options)).unwrap();
                assert_eq!(
                    String::from_utf8_lossy(body.as_bytes()),
                    String::from_utf8_lossy(&expected)
                );
                assert_eq!(body.bytes.len(), expected.len());
                assert_eq!(body.len(), n);
                for (i, event) in stored[..n].iter().enumerate() {
                    assert_eq!(body.event(i), Some(event.as_slice()));
                }
                assert_eq!(body.event(n), None);
            }
        }
    }
}

#[test]
fn parts_of_a_raw_body_are_the_bodies_of_their_events_with_the_credentials_given_now() {
    let client = client_for("http://127.0.0.1:9");
    let stored = stored_events();
    let events = raw(&stored);
    let options = BatchOptions {
        test_event_code: Some("TEST1".into()),
        ..BatchOptions::default()
    };
    let body = client.raw_body(&events, &creds(), &options).unwrap();
    let rotated = Credentials::new(Secret::new("rotated-token"));
    for indices in [
        vec![0],
        vec![3],
        vec![0, 1],
        vec![2, 3],
        vec![1, 2, 3],
        vec![3, 0],
    ] {
        let part = body
            .part(&client, indices.iter().copied(), &rotated, &options)
            .unwrap();
        let subset: Vec<&RawValue> = indices.iter().map(|&i| events[i]).collect();
        let direct = client.raw_body(&subset, &rotated, &options).unwrap();
        assert_eq!(part.as_bytes(), direct.as_bytes(), "{indices:?}");
        let json: serde_json::Value = serde_json::from_slice(part.as_bytes()).unwrap();
        assert_eq!(json["access_token"], "rotated-token");
        assert!(json.get("appsecret_proof").is_none());
    }
    for indices in [vec![4], vec![0, 9], vec![]] {
        assert!(
            matches!(
                body.part(&client, indices.iter().copied(), &rotated, &options),
                Err(DeliveryError::InvalidBatch { .. })
            ),
            "{indices:?}"
        );
    }
    // Debug never shows the bytes (they hold the token).
    assert!(!format!("{body:?}").contains("EAAB-token"));
}
