//! `POST /{version}/{pixel_id}/events`: the Graph-API-compatible endpoint.
//!
//! Code written against Meta's official SDKs switches to sluice by changing only
//! the base URL. The request is read, checked and answered exactly as the
//! emulator (and so Meta) would: the same encodings (JSON, form with JSON-string
//! events, form with objects, multipart), the same Graph-style errors, and one
//! invalid event rejects the whole request, so the sender sees what Meta would
//! have told it. Accepted events are committed to the queue before the answer.
//!
//! Credentials: the presented `access_token` must be the pixel's configured
//! token or a sluice API key bound to that pixel. In zero-config mode any
//! non-empty token is accepted, remembered in memory for that pixel, and
//! forwarded as given.

use crate::ingest::{self, IngestItem, ItemOutcome};
use crate::pipeline::{RequestContext, Source};
use crate::state::{AppState, is_pixel_id};
use axum::extract::{Path, Request, State};
use axum::response::Response;
use serde_json::Value;
use sluice_core::validate::{Problem, ValidationContext};
use sluice_emulator::answers::{self, Answer};
use sluice_emulator::{checks, graph};
use std::sync::Arc;

const SOURCE: &str = "graph";

fn is_version(segment: &str) -> bool {
    segment
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit())
        })
}

pub async fn post_events(
    State(state): State<Arc<AppState>>,
    Path((version, pixel)): Path<(String, String)>,
    request: Request,
) -> Response {
    if !is_version(&version) || pixel.is_empty() || !pixel.bytes().all(|b| b.is_ascii_digit()) {
        count(None, "unknown_path");
        return answers::unknown_path(request.uri().path()).into_response_for(None);
    }
    if !is_pixel_id(&pixel) && state.config.pixel(&pixel).is_none() {
        // Longer than any dataset id: no such object, as Graph answers.
        let answer = answers::unknown_pixel(&pixel);
        count(Some(&answer), "unknown_pixel");
        return answer.into_response_for(Some(&version));
    }
    let answer = handle(&state, &pixel, request).await;
    answer.into_response_for(Some(&version))
}

fn count(answer: Option<&Answer>, fallback: &'static str) {
    let code = match answer.and_then(Answer::error_code) {
        Some((code, Some(sub))) => format!("graph_{code}_{sub}"),
        Some((code, None)) => format!("graph_{code}"),
        None => fallback.to_owned(),
    };
    metrics::counter!(crate::metrics::REQUESTS_REJECTED, "source" => SOURCE, "code" => code)
        .increment(1);
}

async fn handle(state: &AppState, pixel: &str, request: Request) -> Answer {
    let request_signals = state.consent.request_signals(request.headers(), false);
    let limit = state.config.server.max_body_bytes;
    let (params, decoded) = graph::read_params(request, limit).await;
    let token = checks::token(&params);
    if let Err(answer) = authenticate(state, pixel, token.as_deref()) {
        count(Some(&answer), "unauthorized");
        return answer;
    }
    if let Err(answer) = decoded {
        count(Some(&answer), "unreadable_body");
        return answer;
    }
    let now_ms = state.now_ms();
    let accepted = match checks::check_request(
        &params,
        &ValidationContext::for_wire(now_ms.div_euclid(1000)),
    ) {
        Ok(a) => a,
        Err(answer) => {
            count(Some(&answer), "invalid_request");
            return answer;
        }
    };
    if state.zero_config()
        && let Some(token) = &token
    {
        state.presented_tokens.remember(pixel, token);
    }
    let test_event_code = accepted
        .test_event_code
        .clone()
        .or_else(|| state.test_event_code_for(pixel, Source::Graph));
    let mut items = Vec::with_capacity(accepted.events.len());
    for (i, event) in accepted.events.iter().enumerate() {
        let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(event.raw.get()) else {
            let answer = answers::event_problem(&Problem::error(
                "invalid_type",
                format!("data[{i}]"),
                "an event must be a JSON object",
            ));
            count(Some(&answer), "invalid_request");
            return answer;
        };
        // Graph senders build events for Meta; consent fields are not Graph keys
        // (the checks above already refused unknown keys), so this finds none.
        let consent = sluice_consent::ConsentFields::take_from(&mut object);
        items.push(IngestItem {
            path: format!("data[{i}]"),
            pixel_id: pixel.to_owned(),
            event: object,
            test_event_code: test_event_code.clone(),
            consent,
        });
    }
    let ctx = RequestContext {
        source: Source::Graph,
        now: now_ms.div_euclid(1000),
        client_ip: None,
        user_agent: None,
    };
    let received = items.len() as u64;
    match ingest::ingest(state, &ctx, &request_signals, items).await {
        Ok(outcomes) => {
            // The checks above are the ones the pipeline applies, so a rejection
            // here is rare (e.g. every identifier dropped); answer as Meta would.
            if let Some(problem) = outcomes.iter().find_map(|o| match o {
                ItemOutcome::Rejected { problems } => {
                    problems.iter().find(|p| p.is_error()).cloned()
                }
                _ => None,
            }) {
                let answer = answers::event_problem(&problem);
                count(Some(&answer), "invalid_request");
                return answer;
            }
            state.wake_delivery(pixel);
            Answer::success(received)
        }
        Err(_) => {
            count(None, "store_unavailable");
            answers::server_error(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                sluice_core::graph_error::codes::SERVICE_UNAVAILABLE,
                None,
                Some("sluice could not commit the events; nothing was accepted, retry later"),
                true,
            )
        }
    }
}

/// The pixel's configured token, or a sluice API key bound to the pixel. Graph
/// answers a missing token with 104 and a wrong one with 190.
fn authenticate(state: &AppState, pixel: &str, token: Option<&str>) -> Result<(), Answer> {
    let Some(token) = token else {
        return Err(answers::missing_token());
    };
    if state.zero_config() {
        return Ok(());
    }
    let Some(config) = state.config.pixel(pixel) else {
        // Unknown to this gateway: like a dataset the token cannot see.
        return Err(answers::unknown_pixel(pixel));
    };
    let pixel_token = config
        .access_token
        .as_ref()
        .is_some_and(|t| t.matches(token));
    let bound_key = state
        .find_api_key(token)
        .is_some_and(|k| k.pixels.iter().any(|p| p == pixel));
    if pixel_token || bound_key {
        Ok(())
    } else {
        Err(answers::invalid_token())
    }
}

#[cfg(test)]
mod tests {
    use super::is_version;

    #[test]
    fn versions() {
        assert!(is_version("v26.0"));
        assert!(is_version("v24.10"));
        assert!(!is_version("26.0"));
        assert!(!is_version("v26"));
        assert!(!is_version("vx.0"));
    }
}
