//! Runs the pipeline over the events of one request and commits the survivors.
//!
//! A request's events are prepared one by one (CPU only), then handed to the
//! store with the request's consent-audit rows in a single
//! `enqueue_with_audit`, which returns once both are durably committed; only
//! then does the handler answer. Per-event outcomes come back in order.

use crate::consent_stage::RequestSignals;
use crate::metrics as m;
use crate::pipeline::{self, RequestContext, Source};
use crate::state::AppState;
use serde::Serialize;
use serde_json::{Map, Value};
use sluice_consent::{Applied, AuditRecord, ConsentFields};
use sluice_core::validate::Problem;
use sluice_store::{
    EnqueueOutcome, EventSource, MergeFn, MergeOutcome, MergeRequest, NewEvent, StoreError,
};
use std::sync::{Arc, OnceLock};

/// One event of a request, stripped of sluice fields, with its pixel resolved.
pub struct IngestItem {
    pub path: String,
    pub pixel_id: String,
    pub event: Map<String, Value>,
    pub test_event_code: Option<String>,
    /// The event's own consent fields (taken off with the other sluice fields).
    pub consent: ConsentFields,
}

/// What happened to one event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ItemOutcome {
    Accepted {
        event_id: String,
        /// 0–10, one decimal (see `sluice_core::match_quality`).
        match_quality: f64,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<Problem>,
    },
    Duplicate {
        event_id: String,
        first_source: String,
    },
    /// Folded into the held browser copy of the same event (identity merge):
    /// one event is sent, with the identifiers of both copies.
    Merged {
        event_id: String,
        /// The merged event's match quality, 0–10.
        match_quality: f64,
        /// The source of the copy it was merged into (`browser`).
        merged_into: String,
    },
    /// The consent policy said no: counted and audited, not stored.
    Dropped {
        event_id: String,
        rule: String,
        reasons: Vec<String>,
    },
    Rejected {
        problems: Vec<Problem>,
    },
}

impl ItemOutcome {
    pub fn rejected(problem: Problem) -> Self {
        ItemOutcome::Rejected {
            problems: vec![problem],
        }
    }
}

/// Prepares every item, enqueues the good ones in one commit, and returns one
/// outcome per item (items that failed before this point are passed through in
/// `early` by index).
pub async fn ingest(
    state: &AppState,
    ctx: &RequestContext,
    request: &RequestSignals,
    items: Vec<IngestItem>,
) -> Result<Vec<ItemOutcome>, StoreError> {
    let source = ctx.source.as_str();
    let now_ms = state.now_ms();
    let mut outcomes: Vec<Option<ItemOutcome>> = Vec::with_capacity(items.len());
    let mut to_store: Vec<NewEvent> = Vec::new();
    let mut stored_index: Vec<Stored> = Vec::new();
    let mut audits: Vec<AuditRecord> = Vec::with_capacity(items.len());
    let merge_window_ms = state.config.dedup.merge_window_ms();

    for (index, mut item) in items.into_iter().enumerate() {
        let pixel_metrics = state.pixel_metrics(&item.pixel_id);
        pixel_metrics.received(ctx.source).increment(1);
        let id_origin = pipeline::enrich(&mut item.event, ctx);
        let order_id = pipeline::order_id(&item.event);
        let prepared = match pipeline::check(Value::Object(item.event), ctx, &item.path) {
            Err(rejection) => Err(rejection),
            Ok(mut checked) => {
                // The region is read from the raw event before hashing. For the
                // browser the edge's headers locate the visitor and win; for a
                // backend or Graph sender they locate the shop's server, so the
                // event's own country/state win there.
                let raw = pipeline::raw_region(&checked);
                let region = if ctx.source == crate::pipeline::Source::Browser {
                    request.region.clone().or(raw)
                } else {
                    raw.or(request.region.clone())
                };
                pipeline::hash(&mut checked, &state.normalize, &item.path);
                let signals = state.consent.signals(&item.consent, request);
                let result = state
                    .consent
                    .decide_and_apply(
                        &mut checked.event,
                        signals,
                        region,
                        ctx.source,
                        &item.pixel_id,
                        now_ms,
                    )
                    .await;
                audits.push(result.audit);
                match result.applied {
                    Applied::Drop => {
                        metrics::counter!(
                            m::EVENTS_DROPPED,
                            "source" => source,
                            "rule" => result.decision.rule_id.clone()
                        )
                        .increment(1);
                        outcomes.push(Some(ItemOutcome::Dropped {
                            event_id: checked.event.event_id.clone().unwrap_or_default(),
                            rule: result.decision.rule_id,
                            reasons: result.decision.reasons,
                        }));
                        continue;
                    }
                    Applied::Store(_) => pipeline::finish(checked, ctx, &item.path),
                }
            }
        };
        match prepared {
            Err(rejection) => {
                count_rejection(source, &rejection.problems);
                outcomes.push(Some(ItemOutcome::Rejected {
                    problems: rejection.problems,
                }));
            }
            Ok(prepared) => {
                for w in prepared
                    .warnings
                    .iter()
                    .filter(|w| w.path.contains(".user_data."))
                {
                    metrics::counter!(m::FIELDS_DROPPED, "source" => source, "code" => w.code)
                        .increment(1);
                }
                pixel_metrics
                    .match_quality()
                    .record(f64::from(prepared.match_quality));
                let event = &prepared.event;
                let event_id = event.event_id.clone().unwrap_or_default();
                to_store.push(NewEvent {
                    pixel_id: item.pixel_id.clone(),
                    event_name: event.event_name.clone(),
                    event_id: event_id.clone(),
                    event_time: event.event_time,
                    source: ctx.source.store_source(),
                    payload: prepared.payload,
                    user_keys: event.user_data.person_keys(),
                    test_event_code: item
                        .test_event_code
                        .clone()
                        .or_else(|| state.test_event_code_for(&item.pixel_id, ctx.source)),
                    // Browser copies wait for a server copy to merge into them.
                    hold_until_ms: merge_window_ms
                        .filter(|_| ctx.source == Source::Browser)
                        .map(|window| now_ms.saturating_add(window)),
                    order_id,
                    event_id_origin: id_origin,
                });
                stored_index.push(Stored {
                    index,
                    event_id,
                    match_quality: prepared.match_quality,
                    warnings: prepared.warnings,
                    metrics: pixel_metrics,
                });
                outcomes.push(None);
            }
        }
    }

    // The request's consent decisions commit with its events (one store
    // write, one wait), so no event is ever stored without its audit row.
    let mut audit = audit_rows(audits)?;
    if let Some(window_ms) = merge_window_ms
        && ctx.source != Source::Browser
        && !to_store.is_empty()
    {
        // A merge changes the held copy in a commit of its own: the
        // decisions must be durable before that.
        if !audit.is_empty() {
            state
                .store
                .append_audit(std::mem::take(&mut audit), now_ms)
                .await?;
        }
        // Server-side copies of held browser events are merged, not queued.
        let mut kept = Vec::with_capacity(to_store.len());
        let mut kept_index = Vec::with_capacity(to_store.len());
        for (event, stored) in to_store.into_iter().zip(stored_index) {
            match try_merge(state, &event, window_ms).await {
                Some(merged) => {
                    stored.metrics.merged(ctx.source).increment(1);
                    outcomes[stored.index] = Some(ItemOutcome::Merged {
                        event_id: stored.event_id,
                        match_quality: (f64::from(merged.0) * 10.0).round() / 10.0,
                        merged_into: merged.1.as_str().to_owned(),
                    });
                }
                None => {
                    kept.push(event);
                    kept_index.push(stored);
                }
            }
        }
        to_store = kept;
        stored_index = kept_index;
    }
    if !to_store.is_empty() || !audit.is_empty() {
        let names: Vec<String> = to_store.iter().map(|e| e.event_name.clone()).collect();
        let results = state
            .store
            .enqueue_with_audit(to_store, audit, state.now_ms())
            .await?;
        for ((outcome, stored), name) in results.into_iter().zip(stored_index).zip(names) {
            let Stored {
                index,
                event_id,
                match_quality,
                warnings,
                metrics,
            } = stored;
            outcomes[index] = Some(match outcome {
                EnqueueOutcome::Queued { .. } => {
                    metrics.accepted(ctx.source, &name).increment(1);
                    ItemOutcome::Accepted {
                        event_id,
                        match_quality: (f64::from(match_quality) * 10.0).round() / 10.0,
                        warnings,
                    }
                }
                EnqueueOutcome::Duplicate { first_source, .. } => {
                    metrics.duplicate(ctx.source).increment(1);
                    ItemOutcome::Duplicate {
                        event_id,
                        first_source: first_source.as_str().to_owned(),
                    }
                }
            });
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                ItemOutcome::rejected(Problem::error("internal", "$", "no outcome"))
            })
        })
        .collect())
}

/// An event handed to the store, and what its outcome needs.
struct Stored {
    /// Its position in the request.
    index: usize,
    event_id: String,
    match_quality: f32,
    warnings: Vec<Problem>,
    metrics: Arc<crate::metrics::PixelMetrics>,
}

/// Merges a server-side copy into the held browser copy of the same event,
/// if the ledger says the browser sent it first within the merge window and
/// the copy is still held. Returns the merged event's match quality and the
/// source merged into; `None` leaves the event to `enqueue` (which then calls
/// it a duplicate). A store error here is logged and also leaves it to
/// `enqueue`, which reports the store's state to the sender.
async fn try_merge(
    state: &AppState,
    event: &NewEvent,
    window_ms: i64,
) -> Option<(f32, EventSource)> {
    if event.event_id.is_empty() {
        return None;
    }
    let now_ms = state.now_ms();
    let entry = match state
        .store
        .dedup_lookup(&event.pixel_id, &event.event_name, &event.event_id, now_ms)
        .await
    {
        Ok(entry) => entry?,
        Err(e) => {
            tracing::warn!(
                code = e.code(),
                "merge: ledger lookup failed; treating as a plain copy"
            );
            return None;
        }
    };
    if entry.first_source != EventSource::Browser
        || entry.first_seen_ms.saturating_add(window_ms) <= now_ms
    {
        return None;
    }
    let server_copy = event.payload.clone();
    let quality = Arc::new(OnceLock::new());
    let quality_out = Arc::clone(&quality);
    let merge: MergeFn = Box::new(move |held: &[u8]| {
        let merged = crate::merge::merge(held, &server_copy)?;
        let _ = quality_out.set(merged.match_quality);
        Some(merged.payload)
    });
    let request = MergeRequest {
        pixel_id: event.pixel_id.clone(),
        event_name: event.event_name.clone(),
        event_id: event.event_id.clone(),
        source: event.source,
        user_keys: event.user_keys.clone(),
        order_id: event.order_id.clone(),
    };
    match state.store.merge_held(request, merge, now_ms).await {
        Ok(MergeOutcome::Merged { into_source, .. }) => {
            Some((quality.get().copied().unwrap_or_default(), into_source))
        }
        Ok(MergeOutcome::NotMerged) => None,
        Err(e) => {
            tracing::warn!(
                code = e.code(),
                "merge: store refused; treating as a plain copy"
            );
            None
        }
    }
}

pub fn count_rejection(source: &'static str, problems: &[Problem]) {
    let code = problems
        .iter()
        .find(|p| p.is_error())
        .map(|p| p.code)
        .unwrap_or("unknown");
    metrics::counter!(m::EVENTS_REJECTED, "source" => source, "code" => code).increment(1);
}

/// Audit records as the store keeps them (the full record as JSON, plus the
/// columns it is searched by).
fn audit_rows(records: Vec<AuditRecord>) -> Result<Vec<sluice_store::AuditRow>, StoreError> {
    records
        .into_iter()
        .map(|r| {
            let record_json = serde_json::to_string(&r)
                .map_err(|_| StoreError::invalid("audit record could not be serialized"))?;
            Ok(sluice_store::AuditRow {
                time_ms: r.time_ms,
                pixel_id: r.pixel_id,
                event_name: r.event_name,
                event_id: r.event_id,
                source: r.source.as_str().to_owned(),
                outcome: r.outcome.as_str().to_owned(),
                rule_id: r.rule_id,
                record_json,
            })
        })
        .collect()
}
