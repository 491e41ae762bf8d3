//! `/admin/*`: dead letters and replay, and the dedup report, guarded by the
//! admin key.
//!
//! Off unless `[admin] key` is configured. The same operations are available
//! offline through `sluice dlq` and `sluice dedup report`.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_store::{DeadLetter, DeadLetterId, DedupReportQuery, DlqFilter};
use std::sync::Arc;

const SOURCE: &str = "admin";

/// The answer of an admin handler: its value, or the error counted under `admin`.
fn respond<T: IntoResponse>(result: Result<T, ApiError>) -> Response {
    result
        .map(IntoResponse::into_response)
        .unwrap_or_else(|e| e.counted(SOURCE).into_response())
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = state.config.admin.key.as_ref() else {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "admin_disabled",
            "the admin API is off; set [admin] key in sluice.toml",
        ));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(p) if key.matches(p.trim()) => Ok(()),
        _ => Err(ApiError::unauthorized(
            "admin key required as 'Authorization: Bearer <key>'",
        )),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub pixel: Option<String>,
    pub event_name: Option<String>,
    pub code: Option<String>,
    pub since_ms: Option<i64>,
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// A dead letter as JSON, with its payload as an object rather than bytes.
pub fn dead_letter_json(d: &DeadLetter) -> Value {
    json!({
        "id": d.id.to_string(),
        "pixel_id": d.pixel_id,
        "event_name": d.event_name,
        "event_id": d.event_id,
        "event_time": d.event_time,
        "source": d.source.as_str(),
        "attempts": d.attempts,
        "test_event_code": d.test_event_code,
        "first_enqueued_ms": d.first_enqueued_ms,
        "dead_lettered_ms": d.dead_lettered_ms,
        "code": d.code,
        "message": d.message,
        "detail": d.detail_json.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok()),
        "event": serde_json::from_slice::<Value>(&d.payload).unwrap_or(Value::Null),
    })
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        authorize(&state, &headers)?;
        let Query(q) = query.map_err(|_| {
            ApiError::bad_request("invalid_query", "unknown or malformed query parameter")
        })?;
        let after_id = match q.after.as_deref() {
            Some(a) => Some(a.parse::<DeadLetterId>().map_err(|_| {
                ApiError::bad_request("invalid_id", "after is not a dead-letter id")
            })?),
            None => None,
        };
        let filter = DlqFilter {
            pixel_id: q.pixel,
            event_name: q.event_name,
            code: q.code,
            since_ms: q.since_ms,
            limit: q.limit,
            after_id,
        };
        let items = state
            .store
            .dlq_list(&filter)
            .await
            .map_err(|_| ApiError::store_unavailable())?;
        let next = items.last().map(|d| d.id.to_string());
        Ok::<_, ApiError>(Json(json!({
            "dead_letters": items.iter().map(dead_letter_json).collect::<Vec<_>>(),
            "next_after": next,
        })))
    }
    .await;
    respond(result)
}

pub async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        authorize(&state, &headers)?;
        let id: DeadLetterId = id
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_id", "not a dead-letter id"))?;
        match state
            .store
            .dlq_get(id)
            .await
            .map_err(|_| ApiError::store_unavailable())?
        {
            Some(d) => Ok(Json(dead_letter_json(&d))),
            None => Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "no such dead letter",
            )),
        }
    }
    .await;
    respond(result)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Ids to replay; when absent, every dead letter matching the filter.
    pub ids: Option<Vec<String>>,
    pub pixel: Option<String>,
    pub event_name: Option<String>,
    pub code: Option<String>,
    pub test_event_code: Option<String>,
}

pub async fn replay(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Json<ReplayRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let result = async {
        authorize(&state, &headers)?;
        let Json(req) = body.map_err(|_| {
            ApiError::bad_request("invalid_json", "expected {\"ids\": [...]} or a filter")
        })?;
        let ids: Vec<DeadLetterId> = match req.ids {
            Some(ids) => ids
                .iter()
                .map(|i| i.parse())
                .collect::<Result<_, _>>()
                .map_err(|_| ApiError::bad_request("invalid_id", "ids must be dead-letter ids"))?,
            None => {
                let filter = DlqFilter {
                    pixel_id: req.pixel,
                    event_name: req.event_name,
                    code: req.code,
                    ..DlqFilter::default()
                };
                crate::dlq::matching_ids(state.store.as_ref(), filter)
                    .await
                    .map_err(|_| ApiError::store_unavailable())?
            }
        };
        let replayed = state
            .store
            .dlq_replay(&ids, req.test_event_code, state.now_ms())
            .await
            .map_err(|_| ApiError::store_unavailable())?;
        Ok::<_, ApiError>(Json(json!({"replayed": replayed})))
    }
    .await;
    respond(result)
}

/// Parses a look-back period: a number with a unit, `90s`, `30m`, `24h`,
/// `2d` (also `1w`); at most a year. For `--since` and `?since=`.
pub fn parse_period_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?}: add a unit (s, m, h, d, w), e.g. 24h"))?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a period like 24h"))?;
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use s, m, h, d, w)"
            ));
        }
    };
    let ms = number.saturating_mul(unit_ms);
    if ms > 366 * 86_400_000 {
        return Err(format!("{text:?} is longer than a year"));
    }
    Ok(ms)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupQuery {
    /// Look-back period (`24h`); default: the whole dedup window.
    pub since: Option<String>,
    /// Or an instant, Unix ms.
    pub since_ms: Option<i64>,
    pub pixel: Option<String>,
    /// Entries per list of suspicious ids.
    pub limit: Option<u32>,
}

/// `GET /admin/dedup?since=24h&pixel=…&limit=…`: the dedup report as JSON
/// (`sluice_store::DedupReport`).
pub async fn dedup_report(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<DedupQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        authorize(&state, &headers)?;
        let Query(q) = query.map_err(|_| {
            ApiError::bad_request("invalid_query", "unknown or malformed query parameter")
        })?;
        let now_ms = state.now_ms();
        let since_ms = match (q.since.as_deref(), q.since_ms) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "give since (a period) or since_ms, not both",
                ));
            }
            (Some(period), None) => Some(now_ms.saturating_sub(
                parse_period_ms(period).map_err(|m| ApiError::bad_request("invalid_query", m))?,
            )),
            (None, ms) => ms,
        };
        let report = state
            .store
            .dedup_report(
                &DedupReportQuery {
                    pixel_id: q.pixel,
                    since_ms,
                    max_examples: q.limit,
                },
                now_ms,
            )
            .await
            .map_err(|_| ApiError::store_unavailable())?;
        Ok::<_, ApiError>(Json(report))
    }
    .await;
    respond(result)
}

#[cfg(test)]
mod tests {
    use super::parse_period_ms;

    #[test]
    fn periods() {
        assert_eq!(parse_period_ms("90s"), Ok(90_000));
        assert_eq!(parse_period_ms("30m"), Ok(1_800_000));
        assert_eq!(parse_period_ms(" 24h"), Ok(86_400_000));
        assert_eq!(parse_period_ms("2d"), Ok(172_800_000));
        assert_eq!(parse_period_ms("1w"), Ok(604_800_000));
        for bad in ["24", "h", "-1h", "1y", "1.5h", "", "400d"] {
            assert!(parse_period_ms(bad).is_err(), "{bad}");
        }
    }
}
