//! Deduplication (with a moved clock), test events kept apart, the inspection
//! API over HTTP, reset, and the cap on stored events.

mod common;

use common::{Harness, NOW, PIXEL, Reply, TOKEN, event};
use serde_json::json;
use sluice_emulator::{EmulatorConfig, EventFilter, EventKind};
use std::time::Duration;

#[tokio::test]
async fn dedups_name_and_id_within_48_hours_per_pixel() {
    let h = Harness::open().await;
    assert_eq!(
        h.send(vec![event("order-1", NOW)]).await.events_received(),
        1
    );
    // A retry of the same event: Meta still says received, and drops it.
    assert_eq!(
        h.send(vec![event("order-1", NOW)]).await.events_received(),
        1
    );
    // Same id, other event name: not a duplicate.
    let mut lead = event("order-1", NOW);
    lead["event_name"] = json!("Lead");
    assert_eq!(h.send(vec![lead]).await.events_received(), 1);
    // Same event on another pixel: not a duplicate.
    assert_eq!(
        h.post("555", &json!({"data": [event("order-1", NOW)]}))
            .await
            .events_received(),
        1
    );
    let stats = h.emulator().stats();
    assert_eq!((stats.events, stats.duplicates), (4, 1));
    assert_eq!(stats.pixels[PIXEL].duplicates, 1);
    assert_eq!(stats.pixels["555"].duplicates, 0);

    // 47 hours later it is still a duplicate …
    h.clock.advance(Duration::from_secs(47 * 3600));
    let now = NOW + 47 * 3600;
    h.send(vec![event("order-1", now)]).await.events_received();
    assert_eq!(h.emulator().stats().duplicates, 2);
    // … 48 hours after the first one it is new again.
    h.clock.advance(Duration::from_secs(3600));
    let now = now + 3600;
    h.send(vec![event("order-1", now)]).await.events_received();
    assert_eq!(h.emulator().stats().duplicates, 2);

    let flags: Vec<bool> = h
        .emulator()
        .events_for(PIXEL)
        .iter()
        .map(|e| e.duplicate)
        .collect();
    assert_eq!(flags, [false, true, false, true, false]);
}

#[tokio::test]
async fn test_events_are_kept_apart() {
    let h = Harness::open().await;
    h.send(vec![event("a", NOW)]).await.events_received();
    let reply = h
        .post(
            PIXEL,
            &json!({"data": [event("a", NOW)], "test_event_code": "TEST4242"}),
        )
        .await;
    assert_eq!(reply.events_received(), 1);
    let emulator = h.emulator();
    let live = emulator.events(&EventFilter::pixel(PIXEL).kind(EventKind::Live));
    let test = emulator.events(&EventFilter::pixel(PIXEL).kind(EventKind::Test));
    assert_eq!((live.len(), test.len()), (1, 1));
    assert_eq!(test[0].test_event_code.as_deref(), Some("TEST4242"));
    // Its own dedup ledger: the live copy does not make the test copy a duplicate.
    assert!(!test[0].duplicate);
    let stats = emulator.stats();
    assert_eq!((stats.live_events, stats.test_events), (1, 1));

    let tab = h
        .get_json(&format!("/_emulator/test_events?pixel={PIXEL}"))
        .await;
    assert_eq!(tab["count"], 1);
    assert_eq!(tab["events"][0]["test_event_code"], "TEST4242");
    let by_code = h
        .get_json("/_emulator/events?test_event_code=TEST4242")
        .await;
    assert_eq!(by_code["count"], 1);
    let live = h
        .get_json(&format!("/_emulator/events?pixel={PIXEL}&kind=live"))
        .await;
    assert_eq!(live["count"], 1);
    assert_eq!(live["events"][0]["test_event_code"], json!(null));
}

#[tokio::test]
async fn inspection_api_lists_events_as_received_in_order() {
    let h = Harness::open().await;
    h.send(vec![event("a", NOW), event("b", NOW)])
        .await
        .events_received();
    h.post("777", &json!({"data": [event("c", NOW)]}))
        .await
        .events_received();
    h.send(vec![event("d", NOW)]).await.events_received();

    let list = h
        .get_json(&format!("/_emulator/events?pixel={PIXEL}"))
        .await;
    assert_eq!(list["count"], 3);
    let events = list["events"].as_array().unwrap();
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["event"]["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "d"]);
    assert_eq!(events[0]["pixel_id"], PIXEL);
    assert_eq!(events[0]["received_at"], NOW);
    assert_eq!(events[0]["received_at_ms"], NOW * 1000);
    assert_eq!(events[0]["event"], event("a", NOW));
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 4]);

    let all = h.get_json("/_emulator/events").await;
    assert_eq!(all["count"], 4);
    let newer = h.get_json("/_emulator/events?after_seq=2&limit=1").await;
    assert_eq!(newer["count"], 1);
    assert_eq!(newer["events"][0]["seq"], 3);

    let stats = h.get_json("/_emulator/stats").await;
    assert_eq!(stats["requests"], 3);
    assert_eq!(stats["accepted_requests"], 3);
    assert_eq!(stats["events"], 4);
    assert_eq!(stats["pixels"]["777"]["events"], 1);

    // Rejections are counted by code and subcode.
    let mut old = event("e", NOW);
    old["event_time"] = json!(NOW - 9 * 86_400);
    h.send(vec![old]).await.error();
    let no_token = Reply::read(
        h.client
            .post(h.events_url(PIXEL))
            .json(&json!({"data": [event("f", NOW)]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    no_token.error();
    let stats = h.get_json("/_emulator/stats").await;
    assert_eq!(stats["rejected_requests"], 2);
    assert_eq!(stats["rejections_by_code"], json!({"100": 1, "104": 1}));
    assert_eq!(stats["rejections_by_subcode"], json!({"100/2804003": 1}));

    // Bad filters are answered, not ignored.
    let bad = h
        .client
        .get(h.url("/_emulator/events?pixle=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn delete_resets_events_dedup_and_counters() {
    let h = Harness::open().await;
    h.send(vec![event("a", NOW)]).await.events_received();
    let reset = h
        .client
        .delete(h.url("/_emulator/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    assert_eq!(h.get_json("/_emulator/events").await["count"], 0);
    let stats = h.get_json("/_emulator/stats").await;
    assert_eq!(
        (stats["requests"].as_i64(), stats["events"].as_i64()),
        (Some(0), Some(0))
    );
    // The dedup history went too: the same event is new again.
    h.send(vec![event("a", NOW)]).await.events_received();
    assert_eq!(h.emulator().stats().duplicates, 0);
    assert_eq!(h.emulator().events_for(PIXEL).len(), 1);
}

#[tokio::test]
async fn the_cap_drops_the_oldest_and_the_stats_say_so() {
    let h = Harness::start(EmulatorConfig {
        max_stored_events: 3,
        ..EmulatorConfig::default()
    })
    .await;
    let events = (0..5).map(|i| event(&format!("e{i}"), NOW)).collect();
    assert_eq!(h.send(events).await.events_received(), 5);
    let kept: Vec<String> = h
        .emulator()
        .events_for(PIXEL)
        .iter()
        .map(|e| e.json()["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kept, ["e2", "e3", "e4"]);
    let stats = h.get_json("/_emulator/stats").await;
    assert_eq!(stats["events"], 5);
    assert_eq!(stats["stored_events"], 3);
    assert_eq!(stats["max_stored_events"], 3);
    assert_eq!(stats["dropped_events"], 2);
}

#[tokio::test]
async fn index_and_shutdown() {
    let h = Harness::open().await;
    let index = h.get_json("/_emulator").await;
    assert!(index["inspection"].is_object());
    let addr = h.server.addr();
    h.server.shutdown().await;
    // Nothing listens any more.
    let client = common::client();
    let gone = client
        .post(format!(
            "http://{addr}/v26.0/{PIXEL}/events?access_token={TOKEN}"
        ))
        .json(&json!({"data": [event("z", NOW)]}))
        .send()
        .await;
    assert!(gone.is_err());
}
