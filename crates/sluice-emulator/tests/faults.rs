//! Fault injection: every kind, scripted by config (file and struct) and live
//! through `POST /_emulator/faults`. The gateway's retry and breaker tests rely on
//! these answers being exactly what Meta sends when it throttles or fails.

mod common;

use common::{Harness, NOW, PIXEL, Reply, TOKEN, event};
use serde_json::{Value, json};
use sluice_emulator::{Emulator, EmulatorConfig, Fault, FaultRule};
use std::time::Duration;

fn with_faults(rules: Vec<FaultRule>) -> EmulatorConfig {
    EmulatorConfig {
        faults: rules,
        ..EmulatorConfig::default()
    }
}

fn rate_limit(code: i64) -> Fault {
    Fault::RateLimit {
        code,
        status: None,
        subcode: None,
        transient: None,
        regain_minutes: None,
        business_id: None,
    }
}

async fn send_raw(h: &Harness) -> Result<reqwest::Response, reqwest::Error> {
    h.client
        .post(format!("{}?access_token={TOKEN}", h.events_url(PIXEL)))
        .json(&json!({"data": [event("x", NOW)]}))
        .send()
        .await
}

#[tokio::test]
async fn rate_limits_arrive_as_400_with_the_code_in_the_body() {
    let cases: [(i64, Option<i64>); 4] = [
        (4, None),
        (17, Some(2_446_079)),
        (613, Some(1_487_742)),
        (80_004, Some(2_446_079)),
    ];
    for (code, subcode) in cases {
        let h = Harness::start(with_faults(vec![
            FaultRule::always(rate_limit(code)).times(1),
        ]))
        .await;
        let reply = h.send(vec![event("a", NOW)]).await;
        assert_eq!(reply.error(), (400, code, subcode), "code {code}");
        let error = &reply.body["error"];
        assert_eq!(error["type"], "OAuthException");
        assert!(error.get("is_transient").is_none(), "{error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("(#{code})")),
            "{error}"
        );
        if code == 80_004 {
            let usage: Value =
                serde_json::from_str(reply.headers["x-business-use-case-usage"].to_str().unwrap())
                    .unwrap();
            assert_eq!(usage[PIXEL][0]["type"], "ads_management");
            assert_eq!(usage[PIXEL][0]["estimated_time_to_regain_access"], 1);
        }
        if code == 4 {
            assert!(reply.headers.contains_key("x-app-usage"));
        }
        // `times = 1`: the next request goes through, and nothing was recorded
        // for the throttled one.
        assert_eq!(h.send(vec![event("a", NOW)]).await.events_received(), 1);
        let stats = h.emulator().stats();
        assert_eq!(stats.faults_injected["rate_limit"], 1);
        assert_eq!(stats.rejections_by_code[&code.to_string()], 1);
        assert_eq!(stats.events, 1);
    }
}

#[tokio::test]
async fn buc_header_uses_configured_business_and_minutes() {
    let h = Harness::start(with_faults(vec![FaultRule::always(Fault::RateLimit {
        code: 80_004,
        status: Some(403),
        subcode: None,
        transient: Some(true),
        regain_minutes: Some(12),
        business_id: Some("act_99".to_owned()),
    })]))
    .await;
    let reply = h.send(vec![event("a", NOW)]).await;
    assert_eq!(reply.error(), (403, 80_004, Some(2_446_079)));
    assert_eq!(reply.body["error"]["is_transient"], true);
    let usage: Value =
        serde_json::from_str(reply.headers["x-business-use-case-usage"].to_str().unwrap()).unwrap();
    assert_eq!(usage["act_99"][0]["estimated_time_to_regain_access"], 12);
}

#[tokio::test]
async fn server_errors_are_transient() {
    for (status, code) in [(500, 1), (503, 2)] {
        let h = Harness::start(with_faults(vec![FaultRule::always(Fault::HttpStatus {
            status,
            code: None,
            subcode: None,
            message: None,
            transient: None,
        })]))
        .await;
        let reply = h.send(vec![event("a", NOW)]).await;
        assert_eq!(reply.error(), (status, code, None));
        assert_eq!(reply.body["error"]["is_transient"], true);
    }
}

#[tokio::test]
async fn token_expires_after_n_requests() {
    let h = Harness::start(with_faults(vec![
        FaultRule::always(Fault::TokenExpired { token: None }).after(2),
    ]))
    .await;
    for _ in 0..2 {
        assert_eq!(h.send(vec![event("a", NOW)]).await.events_received(), 1);
    }
    for _ in 0..3 {
        let reply = h.send(vec![event("a", NOW)]).await;
        assert_eq!(reply.error(), (400, 190, Some(463)));
        assert_eq!(reply.body["error"]["type"], "OAuthException");
    }
    // Only one named token can be made to expire, too.
    let h = Harness::start(with_faults(vec![FaultRule::always(Fault::TokenExpired {
        token: Some("old-token".to_owned()),
    })]))
    .await;
    assert_eq!(h.send(vec![event("a", NOW)]).await.events_received(), 1);
    let old = Reply::read(
        h.client
            .post(format!("{}?access_token=old-token", h.events_url(PIXEL)))
            .json(&json!({"data": [event("a", NOW)]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(old.error(), (400, 190, Some(463)));
}

#[tokio::test]
async fn dropped_connection_gets_no_answer() {
    let h = Harness::start(with_faults(vec![
        FaultRule::always(Fault::DropConnection { process: false }).times(1),
    ]))
    .await;
    let err = send_raw(&h)
        .await
        .expect_err("the connection must close unanswered");
    assert!(!err.is_timeout(), "{err}");
    assert!(err.status().is_none());
    // The server is fine afterwards.
    assert_eq!(h.send(vec![event("a", NOW)]).await.events_received(), 1);
    assert_eq!(h.emulator().stats().faults_injected["drop_connection"], 1);
}

#[tokio::test]
async fn timeout_holds_until_the_client_gives_up() {
    let h = Harness::start(with_faults(vec![
        FaultRule::always(Fault::Timeout {
            hold_ms: None,
            process: false,
        })
        .times(1),
    ]))
    .await;
    let err = h
        .client
        .post(format!("{}?access_token={TOKEN}", h.events_url(PIXEL)))
        .timeout(Duration::from_millis(300))
        .json(&json!({"data": [event("x", NOW)]}))
        .send()
        .await
        .expect_err("held");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(h.send(vec![event("a", NOW)]).await.events_received(), 1);

    // With a short hold the emulator itself closes the connection afterwards.
    let h = Harness::start(with_faults(vec![FaultRule::always(Fault::Timeout {
        hold_ms: Some(50),
        process: false,
    })]))
    .await;
    let err = send_raw(&h).await.expect_err("closed after the hold");
    assert!(!err.is_timeout(), "{err}");
}

#[tokio::test]
async fn shutdown_releases_held_requests() {
    let h = Harness::start(with_faults(vec![FaultRule::always(Fault::Timeout {
        hold_ms: Some(600_000),
        process: false,
    })]))
    .await;
    let client = h.client.clone();
    let url = format!("{}?access_token={TOKEN}", h.events_url(PIXEL));
    let pending = tokio::spawn(async move {
        client
            .post(url)
            .json(&json!({"data": [event("x", NOW)]}))
            .send()
            .await
    });
    let emulator = h.emulator().clone();
    assert!(
        common::eventually(10, || emulator
            .stats()
            .faults_injected
            .contains_key("timeout"))
        .await
    );
    tokio::time::timeout(Duration::from_secs(10), h.server.shutdown())
        .await
        .expect("shutdown does not wait for the hold");
    let result = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("the held request ends with the server")
        .unwrap();
    assert!(result.is_err());
}

#[tokio::test]
async fn latency_delays_a_normal_answer() {
    let h = Harness::start(with_faults(vec![
        FaultRule::always(Fault::Latency { ms: 3000 }).times(1),
    ]))
    .await;
    // A client that waits less than the latency gives up …
    let err = h
        .client
        .post(format!("{}?access_token={TOKEN}", h.events_url(PIXEL)))
        .timeout(Duration::from_millis(200))
        .json(&json!({"data": [event("x", NOW)]}))
        .send()
        .await
        .expect_err("late");
    assert!(err.is_timeout());
    // … the late request was still processed, and the next one is not delayed.
    let emulator = h.emulator().clone();
    assert!(common::eventually(10, || emulator.stats().events == 1).await);
    let quick = h
        .client
        .post(format!("{}?access_token={TOKEN}", h.events_url(PIXEL)))
        .timeout(Duration::from_secs(2))
        .json(&json!({"data": [event("y", NOW)]}))
        .send()
        .await
        .expect("no latency any more");
    assert_eq!(quick.status(), 200);
    assert_eq!(h.emulator().faults()[0].fired, 1);
}

#[tokio::test]
async fn random_failures_are_reproducible_from_the_seed() {
    let rule = FaultRule::always(Fault::RandomFailure {
        fraction: 0.25,
        seed: 2026,
        status: Some(503),
        code: None,
    });
    let mut runs = Vec::new();
    for _ in 0..2 {
        let h = Harness::start(with_faults(vec![rule.clone()])).await;
        let mut pattern = Vec::new();
        for i in 0..60 {
            let reply = h.send(vec![event(&format!("e{i}"), NOW)]).await;
            if reply.status == 200 {
                pattern.push(false);
            } else {
                assert_eq!(reply.error(), (503, 2, None));
                assert_eq!(reply.body["error"]["is_transient"], true);
                pattern.push(true);
            }
        }
        runs.push(pattern);
    }
    assert_eq!(runs[0], runs[1]);
    let failures = runs[0].iter().filter(|f| **f).count();
    assert!((5..=30).contains(&failures), "{failures} of 60");
}

#[tokio::test]
async fn raw_answers_and_pixel_filters() {
    let h = Harness::start(with_faults(vec![
        FaultRule::always(Fault::Raw {
            status: 502,
            body: "<html><body>502 Bad Gateway</body></html>".to_owned(),
            content_type: None,
        })
        .for_pixel("666"),
    ]))
    .await;
    let response = h
        .client
        .post(format!("{}?access_token={TOKEN}", h.events_url("666")))
        .json(&json!({"data": [event("x", NOW)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    assert!(response.text().await.unwrap().contains("Bad Gateway"));
    // Other pixels are unaffected.
    assert_eq!(h.send(vec![event("a", NOW)]).await.events_received(), 1);
}

#[tokio::test]
async fn faults_from_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emulator.toml");
    std::fs::write(
        &path,
        r#"
        tokens = ["test-token"]
        [[faults]]
        after_requests = 1
        times = 2
        fault = { kind = "http_status", status = 503 }
        "#,
    )
    .unwrap();
    let config = EmulatorConfig::load(&path).unwrap();
    let h = Harness::start(config).await;
    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for i in 0..4 {
            out.push(h.send(vec![event(&format!("e{i}"), NOW)]).await.status);
        }
        out
    };
    assert_eq!(statuses, [200, 503, 503, 200]);

    let json_path = dir.path().join("emulator.json");
    std::fs::write(
        &json_path,
        r#"{"faults": [{"fault": {"kind": "rate_limit", "code": 17}}]}"#,
    )
    .unwrap();
    let emulator = Emulator::new(EmulatorConfig::load(&json_path).unwrap()).unwrap();
    assert_eq!(emulator.faults().len(), 1);
}

#[tokio::test]
async fn faults_can_be_scripted_over_http() {
    let h = Harness::open().await;
    let script = json!({"faults": [
        {"times": 1, "fault": {"kind": "rate_limit", "code": 80004, "regain_minutes": 3}},
        {"pixel": "42", "fault": {"kind": "drop_connection"}}
    ]});
    let response = h
        .client
        .post(h.url("/_emulator/faults"))
        .json(&script)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reply = h.send(vec![event("a", NOW)]).await;
    assert_eq!(reply.error(), (400, 80_004, Some(2_446_079)));
    assert_eq!(h.send(vec![event("a", NOW)]).await.events_received(), 1);

    let listed = h.get_json("/_emulator/faults").await;
    assert_eq!(listed["faults"][0]["seen"], 2);
    assert_eq!(listed["faults"][0]["fired"], 1);
    assert_eq!(listed["faults"][0]["fault"]["kind"], "rate_limit");
    assert_eq!(listed["faults"][1]["seen"], 0);

    // A bare list also works; a bad script is refused and changes nothing.
    for bad in [
        json!({"faults": [{"fault": {"kind": "teleport"}}]}),
        json!({"faults": [{"fault": {"kind": "random_failure", "fraction": 3.0, "seed": 1}}]}),
        json!({"rules": []}),
    ] {
        let response = h
            .client
            .post(h.url("/_emulator/faults"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
    }
    assert_eq!(h.emulator().faults().len(), 2);
    let response = h
        .client
        .post(h.url("/_emulator/faults"))
        .json(&json!([{"fault": {"kind": "http_status", "status": 500}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(h.send(vec![event("a", NOW)]).await.error(), (500, 1, None));

    let cleared = h
        .client
        .delete(h.url("/_emulator/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    assert_eq!(h.send(vec![event("b", NOW)]).await.events_received(), 1);
}

/// Mounted in someone else's axum server (the gateway's sandbox), a dropped
/// connection still reaches the client as a failure without a usable answer.
#[tokio::test]
async fn drop_connection_when_mounted_in_another_server() {
    let emulator = Emulator::new(with_faults(vec![FaultRule::always(
        Fault::DropConnection { process: false },
    )]))
    .unwrap();
    let app = axum::Router::new().nest_service("/graph", emulator.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = common::client();
    let now = sluice_emulator::Clock::now_secs(&sluice_emulator::SystemClock);
    let result = client
        .post(format!(
            "http://{addr}/graph/v26.0/{PIXEL}/events?access_token={TOKEN}"
        ))
        .json(&json!({"data": [event("x", now)]}))
        .send()
        .await;
    let complete_answer = match result {
        Err(_) => false,
        Ok(response) => response.text().await.is_ok(),
    };
    assert!(
        !complete_answer,
        "a dropped connection must not give a complete answer"
    );
    server.abort();
}

/// "Meta got the events but the answer was lost": the retry is a duplicate.
#[tokio::test]
async fn a_lost_answer_after_processing_makes_the_retry_a_duplicate() {
    for fault in [
        Fault::DropConnection { process: true },
        Fault::Timeout {
            hold_ms: Some(20),
            process: true,
        },
    ] {
        let h = Harness::start(with_faults(vec![FaultRule::always(fault).times(1)])).await;
        send_raw(&h).await.expect_err("no answer");
        let retry = h.send(vec![event("x", NOW)]).await;
        assert_eq!(retry.events_received(), 1);
        let stats = h.emulator().stats();
        assert_eq!((stats.events, stats.duplicates), (2, 1));
    }
}
