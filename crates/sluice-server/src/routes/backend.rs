//! `POST /v1/events`: the backend API for shops, CRMs and webhooks.
//!
//! Body: one event, or `{"data": [...], "pixel_id"?: "...", "test_event_code"?: "..."}`
//! with up to 1000 events, in CAPI's JSON shape with raw or hashed user data.
//! The pixel comes from the event's `pixel_id`, the envelope's, or the API key's
//! binding when it names exactly one pixel. Each event gets its own outcome: a
//! batch is never all-or-nothing. The answer comes after the accepted events
//! are committed to the queue.

use crate::error::{ApiError, body_error};
use crate::ingest::{self, IngestItem, ItemOutcome};
use crate::pipeline::{self, RequestContext, Source};
use crate::state::{ApiKey, AppState, is_pixel_id};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;
use sluice_core::MAX_EVENTS_PER_REQUEST;
use sluice_core::validate::Problem;
use std::sync::Arc;

const SOURCE: &str = "backend";

pub async fn post_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match handle(&state, &headers, body).await {
        Ok(response) => response,
        Err(err) => err.counted(SOURCE).into_response(),
    }
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let key = authenticate(state, headers)?;
    let body = body.map_err(body_error)?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!(
                "body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    drop(body);

    let Envelope {
        events,
        pixel: envelope_pixel,
        test_event_code: envelope_code,
        batch,
    } = split_envelope(value)?;
    let now_ms = state.now_ms();
    let ctx = RequestContext {
        source: Source::Backend,
        now: now_ms / 1000,
        client_ip: None,
        user_agent: None,
    };

    let mut early: Vec<Option<ItemOutcome>> = Vec::with_capacity(events.len());
    let mut items = Vec::with_capacity(events.len());
    for (i, event) in events.into_iter().enumerate() {
        let path = if batch {
            format!("data[{i}]")
        } else {
            "$".to_owned()
        };
        let Value::Object(mut object) = event else {
            early.push(Some(ItemOutcome::rejected(Problem::error(
                "invalid_type",
                path,
                "an event must be a JSON object",
            ))));
            continue;
        };
        let fields = pipeline::take_sluice_fields(&mut object);
        let consent = fields.consent;
        let pixel = fields
            .pixel_id
            .or_else(|| envelope_pixel.clone())
            .or_else(|| key.and_then(|k| (k.pixels.len() == 1).then(|| k.pixels[0].clone())));
        let Some(pixel) = pixel else {
            early.push(Some(ItemOutcome::rejected(Problem::error(
                "missing_pixel_id",
                format!("{path}.pixel_id"),
                "say which pixel this event is for: pixel_id on the event or beside data",
            ))));
            continue;
        };
        if !is_pixel_id(&pixel) && state.config.pixel(&pixel).is_none() {
            early.push(Some(ItemOutcome::rejected(Problem::error(
                "invalid_pixel_id",
                format!("{path}.pixel_id"),
                "pixel_id must be the numeric pixel (dataset) id",
            ))));
            continue;
        }
        if !state.pixel_allowed(&pixel, key) {
            early.push(Some(ItemOutcome::rejected(Problem::error(
                "pixel_not_allowed",
                format!("{path}.pixel_id"),
                "this API key may not write to that pixel (or the pixel is not configured)",
            ))));
            continue;
        }
        early.push(None);
        items.push(IngestItem {
            path,
            pixel_id: pixel,
            event: object,
            test_event_code: envelope_code.clone(),
            consent,
        });
    }
    for outcome in early.iter().flatten() {
        if let ItemOutcome::Rejected { problems } = outcome {
            ingest::count_rejection(SOURCE, problems);
        }
    }

    let pixels: Vec<String> = items.iter().map(|i| i.pixel_id.clone()).collect();
    let request = state.consent.request_signals(headers, false);
    let mut processed = ingest::ingest(state, &ctx, &request, items)
        .await
        .map_err(|_| ApiError::store_unavailable())?
        .into_iter();
    for pixel in dedup_sorted(pixels) {
        state.wake_delivery(&pixel);
    }
    let results: Vec<ItemOutcome> = early
        .into_iter()
        .map(|e| {
            e.unwrap_or_else(|| {
                processed.next().unwrap_or_else(|| {
                    ItemOutcome::rejected(Problem::error("internal", "$", "no outcome"))
                })
            })
        })
        .collect();
    Ok(respond(results))
}

fn authenticate<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
) -> Result<Option<&'a ApiKey>, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    if state.zero_config() {
        return Ok(None);
    }
    let Some(presented) = presented else {
        return Err(ApiError::unauthorized(
            "send an API key from sluice.toml [[api_keys]] as 'Authorization: Bearer <key>'",
        ));
    };
    state
        .find_api_key(presented)
        .map(Some)
        .ok_or_else(|| ApiError::unauthorized("unknown API key"))
}

/// The events of a request and what the envelope says about all of them.
struct Envelope {
    events: Vec<Value>,
    pixel: Option<String>,
    test_event_code: Option<String>,
    /// `{"data": [...]}` rather than a single event (decides the JSON paths).
    batch: bool,
}

fn split_envelope(value: Value) -> Result<Envelope, ApiError> {
    match value {
        Value::Object(mut object) if object.contains_key("data") => {
            let pixel = match object.remove("pixel_id") {
                Some(Value::String(s)) => Some(s),
                Some(Value::Number(n)) => Some(n.to_string()),
                None | Some(Value::Null) => None,
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "invalid_type",
                        "pixel_id beside data must be a string or a number",
                    ));
                }
            };
            let code = match object.remove("test_event_code") {
                Some(Value::String(s)) => Some(s),
                None | Some(Value::Null) => None,
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "invalid_type",
                        "test_event_code must be a string",
                    ));
                }
            };
            let Some(Value::Array(data)) = object.remove("data") else {
                return Err(ApiError::bad_request(
                    "invalid_type",
                    "data must be an array of events",
                ));
            };
            if let Some(key) = object.keys().next() {
                let key: String = key.chars().take(64).collect();
                return Err(ApiError::bad_request(
                    "unknown_field",
                    format!(
                        "unexpected key {key:?} beside data (allowed: data, pixel_id, test_event_code)"
                    ),
                ));
            }
            if data.is_empty() {
                return Err(ApiError::bad_request(
                    "empty_data",
                    "data must contain at least one event",
                ));
            }
            if data.len() > MAX_EVENTS_PER_REQUEST {
                return Err(ApiError::bad_request(
                    "too_many_events",
                    format!(
                        "{} events in one request; at most {MAX_EVENTS_PER_REQUEST}",
                        data.len()
                    ),
                ));
            }
            Ok(Envelope {
                events: data,
                pixel,
                test_event_code: code,
                batch: true,
            })
        }
        Value::Object(_) => Ok(Envelope {
            events: vec![value],
            pixel: None,
            test_event_code: None,
            batch: false,
        }),
        _ => Err(ApiError::bad_request(
            "invalid_type",
            "body must be an event object or {\"data\": [...]}",
        )),
    }
}

fn respond(results: Vec<ItemOutcome>) -> Response {
    let count = |f: fn(&ItemOutcome) -> bool| results.iter().filter(|r| f(r)).count();
    let accepted = count(|r| matches!(r, ItemOutcome::Accepted { .. }));
    let dropped = count(|r| matches!(r, ItemOutcome::Dropped { .. }));
    let duplicates = count(|r| matches!(r, ItemOutcome::Duplicate { .. }));
    let merged = count(|r| matches!(r, ItemOutcome::Merged { .. }));
    let rejected = count(|r| matches!(r, ItemOutcome::Rejected { .. }));
    let status = if accepted + duplicates + merged + dropped == 0 {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let answer = Answer {
        accepted,
        dropped,
        duplicates,
        merged,
        received: results.len(),
        rejected,
        results: results
            .into_iter()
            .enumerate()
            .map(|(index, outcome)| Indexed { index, outcome })
            .collect(),
    };
    (status, Json(answer)).into_response()
}

/// The answer, serialized straight from the outcomes (no `Value` tree).
/// Keys come in the order the `Value` maps this replaced wrote them in
/// (sorted), so the bytes are as before.
#[derive(Serialize)]
struct Answer {
    accepted: usize,
    dropped: usize,
    duplicates: usize,
    merged: usize,
    received: usize,
    rejected: usize,
    results: Vec<Indexed>,
}

/// One outcome with its position in the request: the outcome's fields
/// (as `ItemOutcome`'s `Serialize` names them) plus `index`, sorted.
struct Indexed {
    index: usize,
    outcome: ItemOutcome,
}

impl Serialize for Indexed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let index = &self.index;
        match &self.outcome {
            ItemOutcome::Accepted {
                event_id,
                match_quality,
                warnings,
            } => {
                map.serialize_entry("event_id", event_id)?;
                map.serialize_entry("index", index)?;
                map.serialize_entry("match_quality", match_quality)?;
                map.serialize_entry("status", "accepted")?;
                if !warnings.is_empty() {
                    map.serialize_entry("warnings", &SortedProblems(warnings))?;
                }
            }
            ItemOutcome::Duplicate {
                event_id,
                first_source,
            } => {
                map.serialize_entry("event_id", event_id)?;
                map.serialize_entry("first_source", first_source)?;
                map.serialize_entry("index", index)?;
                map.serialize_entry("status", "duplicate")?;
            }
            ItemOutcome::Merged {
                event_id,
                match_quality,
                merged_into,
            } => {
                map.serialize_entry("event_id", event_id)?;
                map.serialize_entry("index", index)?;
                map.serialize_entry("match_quality", match_quality)?;
                map.serialize_entry("merged_into", merged_into)?;
                map.serialize_entry("status", "merged")?;
            }
            ItemOutcome::Dropped {
                event_id,
                rule,
                reasons,
            } => {
                map.serialize_entry("event_id", event_id)?;
                map.serialize_entry("index", index)?;
                map.serialize_entry("reasons", reasons)?;
                map.serialize_entry("rule", rule)?;
                map.serialize_entry("status", "dropped")?;
            }
            ItemOutcome::Rejected { problems } => {
                map.serialize_entry("index", index)?;
                map.serialize_entry("problems", &SortedProblems(problems))?;
                map.serialize_entry("status", "rejected")?;
            }
        }
        map.end()
    }
}

/// Problems with their keys sorted, as a `Value` map writes them.
struct SortedProblems<'a>(&'a [Problem]);

impl Serialize for SortedProblems<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for problem in self.0 {
            seq.serialize_element(&SortedProblem(problem))?;
        }
        seq.end()
    }
}

struct SortedProblem<'a>(&'a Problem);

impl Serialize for SortedProblem<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("code", p.code)?;
        map.serialize_entry("message", &p.message)?;
        map.serialize_entry("path", &p.path)?;
        map.serialize_entry("severity", &p.severity)?;
        map.end()
    }
}

fn dedup_sorted(mut pixels: Vec<String>) -> Vec<String> {
    pixels.sort_unstable();
    pixels.dedup();
    pixels
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer as it was written before: through `serde_json::Value`.
    fn through_value(results: &[ItemOutcome]) -> String {
        let count = |f: fn(&ItemOutcome) -> bool| results.iter().filter(|r| f(r)).count();
        let results_json: Vec<Value> = results
            .iter()
            .enumerate()
            .map(|(index, r)| {
                let mut v = serde_json::to_value(r).unwrap();
                v.as_object_mut()
                    .unwrap()
                    .insert("index".into(), Value::from(index));
                v
            })
            .collect();
        serde_json::json!({
            "received": results.len(),
            "accepted": count(|r| matches!(r, ItemOutcome::Accepted { .. })),
            "duplicates": count(|r| matches!(r, ItemOutcome::Duplicate { .. })),
            "merged": count(|r| matches!(r, ItemOutcome::Merged { .. })),
            "rejected": count(|r| matches!(r, ItemOutcome::Rejected { .. })),
            "dropped": count(|r| matches!(r, ItemOutcome::Dropped { .. })),
            "results": results_json,
        })
        .to_string()
    }

    #[test]
    fn the_answer_is_byte_for_byte_what_the_value_tree_wrote() {
        let warning = Problem::warning("invalid_email", "$.user_data.em", "em dropped: \"x\"");
        let error = Problem::error(
            "missing_field",
            "data[4].event_name",
            "event_name is required",
        );
        let outcomes = vec![
            ItemOutcome::Accepted {
                event_id: "e1".into(),
                match_quality: 7.3,
                warnings: vec![],
            },
            ItemOutcome::Accepted {
                event_id: "e2".into(),
                match_quality: f64::NAN,
                warnings: vec![warning.clone(), warning],
            },
            ItemOutcome::Duplicate {
                event_id: "e3".into(),
                first_source: "browser".into(),
            },
            ItemOutcome::Merged {
                event_id: "e4".into(),
                match_quality: 9.0,
                merged_into: "browser".into(),
            },
            ItemOutcome::Dropped {
                event_id: "e5".into(),
                rule: "eea-uk-ch-opt-in".into(),
                reasons: vec!["no consent".into(), "eea".into()],
            },
            ItemOutcome::rejected(error.clone()),
            ItemOutcome::Rejected {
                problems: vec![error.clone(), error],
            },
        ];
        let expected = through_value(&outcomes);
        let answer = Answer {
            accepted: 2,
            dropped: 1,
            duplicates: 1,
            merged: 1,
            received: outcomes.len(),
            rejected: 2,
            results: outcomes
                .into_iter()
                .enumerate()
                .map(|(index, outcome)| Indexed { index, outcome })
                .collect(),
        };
        assert_eq!(serde_json::to_string(&answer).unwrap(), expected);
    }
}
