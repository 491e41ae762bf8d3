//! The inspection API, for tests and for people trying sluice out:
//!
//! * `GET /_emulator/events?pixel=ID[&kind=live|test|all][&test_event_code=C]
//!   [&after_seq=N][&limit=N]` → `{"count": n, "events": [...]}`, every accepted
//!   event in arrival order, as received, with its `seq`, `pixel_id`,
//!   `test_event_code`, `partner_agent`, receive time and `duplicate` flag;
//! * `GET /_emulator/test_events?pixel=ID` → only events with a `test_event_code`
//!   (Events Manager's Test Events tab);
//! * `DELETE /_emulator/events` → forgets events, dedup history and counters;
//! * `GET /_emulator/stats` → requests, events, rejections by code, duplicates;
//! * `GET|POST|DELETE /_emulator/faults` → show, replace or clear the fault
//!   script (POST takes `{"faults": [...]}` or a bare list of rules).

use axum::Json;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::Emulator;
use crate::faults::{FaultRule, FaultRuleStatus};
use crate::store::{EventFilter, EventKind, RecordedEvent};

pub(crate) fn router(emulator: Emulator) -> Router {
    Router::new()
        .route("/_emulator", get(index))
        .route("/_emulator/events", get(list_events).delete(reset))
        .route("/_emulator/test_events", get(list_test_events))
        .route("/_emulator/stats", get(stats))
        .route(
            "/_emulator/faults",
            get(list_faults).post(replace_faults).delete(clear_faults),
        )
        .with_state(emulator)
}

/// An inspection-API error, in the same envelope shape as Graph's.
fn bad_request(message: impl Into<String>) -> Response {
    let body =
        json!({"error": {"message": message.into(), "type": "EmulatorException", "code": 100}});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

#[derive(Serialize)]
struct EventList {
    count: usize,
    events: Vec<RecordedEvent>,
}

fn parse_filter(query: Option<&str>) -> Result<EventFilter, String> {
    let mut filter = EventFilter::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "pixel" | "pixel_id" => filter.pixel = Some(value.into_owned()),
            "test_event_code" => filter.test_event_code = Some(value.into_owned()),
            "kind" => {
                filter.kind = match value.as_ref() {
                    "all" => EventKind::All,
                    "live" => EventKind::Live,
                    "test" => EventKind::Test,
                    _ => return Err("kind must be all, live or test".to_owned()),
                }
            }
            "after_seq" | "limit" => {
                let Ok(n) = value.parse::<u64>() else {
                    return Err(format!("{key} must be a non-negative integer"));
                };
                if key == "after_seq" {
                    filter.after_seq = Some(n);
                } else {
                    filter.limit = Some(usize::try_from(n).unwrap_or(usize::MAX));
                }
            }
            other => {
                return Err(format!(
                    "unknown query parameter {:?}; use pixel, kind, test_event_code, after_seq, limit",
                    other.chars().take(40).collect::<String>()
                ));
            }
        }
    }
    Ok(filter)
}

fn event_list(emulator: &Emulator, filter: &EventFilter) -> Response {
    let events = emulator.events(filter);
    Json(EventList {
        count: events.len(),
        events,
    })
    .into_response()
}

async fn list_events(State(emulator): State<Emulator>, RawQuery(query): RawQuery) -> Response {
    match parse_filter(query.as_deref()) {
        Ok(filter) => event_list(&emulator, &filter),
        Err(message) => bad_request(message),
    }
}

async fn list_test_events(State(emulator): State<Emulator>, RawQuery(query): RawQuery) -> Response {
    match parse_filter(query.as_deref()) {
        Ok(filter) => event_list(&emulator, &filter.kind(EventKind::Test)),
        Err(message) => bad_request(message),
    }
}

async fn reset(State(emulator): State<Emulator>) -> Response {
    emulator.reset();
    Json(json!({"success": true})).into_response()
}

async fn stats(State(emulator): State<Emulator>) -> Response {
    Json(emulator.stats()).into_response()
}

#[derive(Serialize)]
struct FaultList {
    faults: Vec<FaultRuleStatus>,
}

async fn list_faults(State(emulator): State<Emulator>) -> Response {
    Json(FaultList {
        faults: emulator.faults(),
    })
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultScript {
    faults: Vec<FaultRule>,
}

async fn replace_faults(State(emulator): State<Emulator>, body: axum::body::Bytes) -> Response {
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("body is not JSON: {e}")),
    };
    let rules = if value.is_array() {
        serde_json::from_value::<Vec<FaultRule>>(value)
    } else {
        serde_json::from_value::<FaultScript>(value).map(|s| s.faults)
    };
    let rules = match rules {
        Ok(r) => r,
        Err(e) => return bad_request(format!("invalid fault script: {e}")),
    };
    match emulator.set_faults(rules) {
        Ok(()) => list_faults(State(emulator)).await,
        Err(e) => bad_request(e.to_string()),
    }
}

async fn clear_faults(State(emulator): State<Emulator>) -> Response {
    emulator.clear_faults();
    list_faults(State(emulator)).await
}

async fn index() -> Response {
    Json(json!({
        "graph_endpoint": "POST /{version}/{pixel_id}/events",
        "inspection": {
            "GET /_emulator/events?pixel=ID&kind=all|live|test&test_event_code=C&after_seq=N&limit=N": "accepted events in arrival order, as received",
            "GET /_emulator/test_events?pixel=ID": "events sent with test_event_code",
            "DELETE /_emulator/events": "forget events, dedup history and counters",
            "GET /_emulator/stats": "requests, events, rejections by code, duplicates, faults",
            "GET /_emulator/faults": "the fault script with its counters",
            "POST /_emulator/faults": "replace the fault script: {\"faults\": [rule, ...]}",
            "DELETE /_emulator/faults": "remove every fault rule"
        }
    }))
    .into_response()
}
