//! Group commit of enqueues, and how deduplication stays exact across nodes.
//!
//! # Group commit
//!
//! `enqueue_with_audit` (and so `enqueue` and `append_audit`) never talks
//! to the database itself: it sends its request to a channel and waits.
//! [`PostgresOptions::writers`](crate::PostgresOptions::writers) writer
//! tasks take turns draining that channel: one collects every request
//! already waiting (up to `group_commit_max_rows` rows), then commits them
//! all with **one statement** (`ENQUEUE_ROUND` in `sql`: data-modifying CTEs
//! over `unnest($1::text[], …)` arrays) run on its own, so PostgreSQL
//! commits it as one transaction: one round trip and one WAL flush per
//! group. Meanwhile the next writer collects the next group, and the
//! server flushes concurrent commits together. Each caller is answered only
//! after the commit returned, so its 2xx is durable. Under light load a
//! group is one request and nobody waits; under heavy load groups grow by
//! themselves.
//!
//! # Deduplication across nodes
//!
//! The dedup ledger's primary key `(pixel_id, event_name, event_id)` is the
//! arbiter. The statement claims the group's keys, in sorted order, with
//!
//! ```sql
//! INSERT INTO dedup_ledger … ON CONFLICT (pixel_id, event_name, event_id)
//! DO UPDATE SET first_seen_ms = CASE WHEN <expired> THEN excluded.… ELSE … END,
//!               duplicates    = CASE WHEN <expired> THEN copies - 1
//!                                    ELSE duplicates + copies END, …
//! RETURNING …, duplicates
//! ```
//!
//! A fresh key is inserted; an existing one is, under its row lock and on
//! its latest committed version, either restarted (its window had passed:
//! the group's copy wins) or charged with the group's copies as duplicates
//! (it is live). The returned `duplicates` tells which: a win stores
//! exactly `copies - 1`, a loss at least `copies`. When two nodes insert
//! the same key at the same instant, the second waits on the first's
//! unique-index entry until the first commits or aborts, then updates the
//! committed row (and loses) or inserts (and wins): exactly one queues the
//! event. The queue insert in the same statement takes only the winners'
//! first copies (and events without an id). Sorted keys mean two groups
//! never wait on each other in a cycle.
//!
//! Copies of one key inside a group are folded in memory first (the first
//! copy is the candidate, later ones its duplicates), because one statement
//! may not touch the same row twice. If the copies carry different `now_ms`
//! (they came from different requests), the group is split into rounds at
//! that request; the rounds then run as separate statements inside one
//! explicit transaction, so a copy arriving after the first copy's window
//! is judged against the entry the first copy left.
//!
//! # Failure semantics
//!
//! - A group whose statement fails with a server error is rolled back
//!   whole and nothing of it is visible. If it had several requests, each is then
//!   retried alone, so one bad request (say, a string PostgreSQL rejects)
//!   fails only its own caller. A deadlock or serialization failure is
//!   retried a few times.
//! - If the connection breaks while the statement (or `COMMIT`) is in
//!   flight, the outcome is unknown: the callers get `store_io` and nothing is retried here. A
//!   client retry then finds its events already in the ledger (reported as
//!   duplicates: they are queued) or, without an event id, queues them a
//!   second time; delivery is at-least-once either way.
//! - The channel is unbounded, but every sender waits for its answer, so
//!   it holds at most one request per concurrent caller.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use deadpool_postgres::GenericClient;
use sluice_store::{
    AuditRow, EnqueueOutcome, EventRowId, EventSource, NewEvent, StoreError, USER_KEY_SEPARATOR,
    ledger_order_id,
};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::Shared;
use crate::error::pg_error;

/// One caller's `enqueue_with_audit`: events, audit rows, or both. A
/// request's rows are always in one round, hence one transaction.
pub(crate) struct EnqueueRequest {
    pub(crate) events: Vec<NewEvent>,
    pub(crate) audit: Vec<AuditRow>,
    pub(crate) now_ms: i64,
    pub(crate) reply: oneshot::Sender<Result<Vec<EnqueueOutcome>, StoreError>>,
}

/// How often a group that hit a deadlock or serialization failure is tried.
const MAX_TRANSIENT_TRIES: u32 = 3;

type Key<'a> = (&'a str, &'a str, &'a str);

/// One writer task: collects a group, commits it, answers, repeats. Ends
/// when the channel is closed and drained.
pub(crate) async fn run_writer(
    requests: Arc<Mutex<mpsc::UnboundedReceiver<EnqueueRequest>>>,
    shared: Arc<Shared>,
) {
    let max_rows = shared.options.group_commit_max_rows.max(1);
    let max_wait = shared.options.group_commit_max_wait;
    loop {
        let group = {
            let mut requests = requests.lock().await;
            let Some(first) = requests.recv().await else {
                return;
            };
            let mut rows = first.events.len() + first.audit.len();
            let mut group = vec![first];
            let deadline = Instant::now() + max_wait;
            while rows < max_rows {
                match requests.try_recv() {
                    Ok(request) => {
                        rows += request.events.len() + request.audit.len();
                        group.push(request);
                    }
                    Err(_) if max_wait.is_zero() => break,
                    Err(_) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        match tokio::time::timeout(left, requests.recv()).await {
                            Ok(Some(request)) => {
                                rows += request.events.len() + request.audit.len();
                                group.push(request);
                            }
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
            }
            group
        };
        commit_group(&shared, group).await;
    }
}

/// Commits one group and answers its callers.
async fn commit_group(shared: &Shared, group: Vec<EnqueueRequest>) {
    let started = Instant::now();
    let result = commit_with_retries(shared, &group).await;
    match result {
        Ok(outcomes) => {
            shared.stats.groups.fetch_add(1, Ordering::Relaxed);
            shared
                .stats
                .requests
                .fetch_add(group.len() as u64, Ordering::Relaxed);
            let events: usize = group.iter().map(|r| r.events.len()).sum();
            shared
                .stats
                .events
                .fetch_add(events as u64, Ordering::Relaxed);
            shared
                .stats
                .commit_us
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            tracing::trace!(
                requests = group.len(),
                elapsed_us = started.elapsed().as_micros() as u64,
                "group commit"
            );
            for (request, outcomes) in group.into_iter().zip(outcomes) {
                let _ = request.reply.send(Ok(outcomes));
            }
        }
        Err(Failure::Ambiguous(error)) => {
            tracing::warn!(code = error.code(), error = %error, requests = group.len(),
                "group commit outcome unknown");
            for request in group {
                let _ = request.reply.send(Err(error.clone()));
            }
        }
        Err(Failure::RolledBack(error)) if group.len() == 1 => {
            for request in group {
                let _ = request.reply.send(Err(error.clone()));
            }
        }
        Err(Failure::RolledBack(error)) => {
            tracing::debug!(
                code = error.code(),
                requests = group.len(),
                "group commit failed; retrying its requests one by one"
            );
            for request in group {
                let single = std::slice::from_ref(&request);
                let answer = match commit_with_retries(shared, single).await {
                    Ok(mut outcomes) => Ok(outcomes.pop().unwrap_or_default()),
                    Err(Failure::Ambiguous(e) | Failure::RolledBack(e)) => Err(e),
                };
                let _ = request.reply.send(answer);
            }
        }
    }
}

/// Why a group did not commit.
enum Failure {
    /// Nothing of the group was committed.
    RolledBack(StoreError),
    /// `COMMIT` was sent but its answer was lost.
    Ambiguous(StoreError),
}

async fn commit_with_retries(
    shared: &Shared,
    group: &[EnqueueRequest],
) -> Result<Vec<Vec<EnqueueOutcome>>, Failure> {
    let mut tries = 0;
    loop {
        tries += 1;
        match commit_once(shared, group).await {
            Err(Failure::RolledBack(StoreError::Busy { message }))
                if tries < MAX_TRANSIENT_TRIES =>
            {
                tracing::debug!(%message, tries, "group commit hit contention; retrying");
                tokio::time::sleep(Duration::from_millis(u64::from(tries) * 5)).await;
            }
            other => return other,
        }
    }
}

async fn commit_once(
    shared: &Shared,
    group: &[EnqueueRequest],
) -> Result<Vec<Vec<EnqueueOutcome>>, Failure> {
    let mut client = shared
        .pool
        .get()
        .await
        .map_err(|e| Failure::RolledBack(crate::error::pool_error(e)))?;
    let mut outcomes: Vec<Vec<Option<EnqueueOutcome>>> = group
        .iter()
        .map(|request| vec![None; request.events.len()])
        .collect();
    let rounds = split_rounds(group);
    if let [round] = rounds.as_slice() {
        // The common case: one statement, committed on its own (autocommit),
        // so the whole group costs one round trip and one commit. A server
        // error means it was rolled back; a lost connection leaves the
        // commit's fate unknown.
        commit_round(shared, &client, group, round.clone(), &mut outcomes)
            .await
            .map_err(|e| match e {
                RoundError::Db(e) if e.as_db_error().is_none() => Failure::Ambiguous(pg_error(e)),
                other => Failure::RolledBack(other.into()),
            })?;
    } else {
        let tx = client
            .transaction()
            .await
            .map_err(|e| Failure::RolledBack(pg_error(e)))?;
        for round in rounds {
            commit_round(shared, &tx, group, round, &mut outcomes)
                .await
                .map_err(|e| Failure::RolledBack(e.into()))?;
        }
        tx.commit()
            .await
            .map_err(|e| Failure::Ambiguous(pg_error(e)))?;
    }
    Ok(outcomes
        .into_iter()
        .map(|per_request| {
            per_request
                .into_iter()
                .map(|o| o.expect("every event of a committed group has an outcome"))
                .collect()
        })
        .collect())
}

/// A round failed: in the database (kept as is, to tell a server error
/// from a lost connection), or in checking its answer.
enum RoundError {
    Db(tokio_postgres::Error),
    Store(StoreError),
}

impl From<RoundError> for StoreError {
    fn from(error: RoundError) -> Self {
        match error {
            RoundError::Db(e) => pg_error(e),
            RoundError::Store(e) => e,
        }
    }
}

/// Splits a group into runs of requests in which every dedup key is seen
/// with a single `now_ms` (see the module header).
fn split_rounds(group: &[EnqueueRequest]) -> Vec<Range<usize>> {
    let mut rounds = Vec::new();
    let mut start = 0;
    let mut seen: HashMap<Key<'_>, i64> = HashMap::new();
    for (i, request) in group.iter().enumerate() {
        let conflict = request.events.iter().any(|e| {
            !e.event_id.is_empty()
                && seen
                    .get(&key_of(e))
                    .is_some_and(|now| *now != request.now_ms)
        });
        if conflict {
            rounds.push(start..i);
            start = i;
            seen.clear();
        }
        for event in request.events.iter().filter(|e| !e.event_id.is_empty()) {
            seen.insert(key_of(event), request.now_ms);
        }
    }
    rounds.push(start..group.len());
    rounds
}

fn key_of(event: &NewEvent) -> Key<'_> {
    (&event.pixel_id, &event.event_name, &event.event_id)
}

/// The copies of one key within a round.
struct KeyCopies<'a> {
    now_ms: i64,
    first: (usize, usize),
    first_source: EventSource,
    sources: u8,
    copies: i64,
    /// The first order id any copy carried.
    order_id: Option<&'a str>,
    /// The first copy's `EventIdOrigin` code.
    id_origin: i16,
}

/// Runs one round (see [`crate::sql`]'s `ENQUEUE_ROUND`) and fills
/// `outcomes` for the round's events.
async fn commit_round<C: GenericClient + Sync>(
    shared: &Shared,
    client: &C,
    group: &[EnqueueRequest],
    round: Range<usize>,
    outcomes: &mut [Vec<Option<EnqueueOutcome>>],
) -> Result<(), RoundError> {
    // Fold the copies of each key, in sorted key order (the lock order).
    let mut folded: BTreeMap<Key<'_>, KeyCopies<'_>> = BTreeMap::new();
    let mut pixel_totals: BTreeMap<&str, i64> = BTreeMap::new();
    for r in round.clone() {
        let request = &group[r];
        for (e, event) in request.events.iter().enumerate() {
            *pixel_totals.entry(&event.pixel_id).or_default() += 1;
            if event.event_id.is_empty() {
                continue;
            }
            let order_id = ledger_order_id(event.order_id.as_deref());
            folded
                .entry(key_of(event))
                .and_modify(|k| {
                    k.sources |= event.source.bit();
                    k.copies += 1;
                    k.order_id = k.order_id.or(order_id);
                })
                .or_insert(KeyCopies {
                    now_ms: request.now_ms,
                    first: (r, e),
                    first_source: event.source,
                    sources: event.source.bit(),
                    copies: 1,
                    order_id,
                    id_origin: event.event_id_origin.code(),
                });
        }
    }
    let keys: Vec<(Key<'_>, KeyCopies<'_>)> = folded.into_iter().collect();
    let position: HashMap<Key<'_>, usize> =
        keys.iter().enumerate().map(|(i, (k, _))| (*k, i)).collect();

    // The candidates: first copies of keys, and events without an id.
    let candidates: Vec<(usize, usize, i64)> = round
        .clone()
        .flat_map(|r| (0..group[r].events.len()).map(move |e| (r, e)))
        .filter_map(|(r, e)| {
            let event = &group[r].events[e];
            if event.event_id.is_empty() {
                return Some((r, e, 0));
            }
            let i = position[&key_of(event)];
            (keys[i].1.first == (r, e)).then_some((r, e, i as i64 + 1))
        })
        .collect();

    let k_pixel: Vec<&str> = keys.iter().map(|(k, _)| k.0).collect();
    let k_name: Vec<&str> = keys.iter().map(|(k, _)| k.1).collect();
    let k_id: Vec<&str> = keys.iter().map(|(k, _)| k.2).collect();
    let k_now: Vec<i64> = keys.iter().map(|(_, c)| c.now_ms).collect();
    let k_first: Vec<&str> = keys.iter().map(|(_, c)| c.first_source.as_str()).collect();
    let k_sources: Vec<i16> = keys.iter().map(|(_, c)| i16::from(c.sources)).collect();
    let k_extra: Vec<i64> = keys.iter().map(|(_, c)| c.copies - 1).collect();
    let k_order: Vec<Option<&str>> = keys.iter().map(|(_, c)| c.order_id).collect();
    let k_origin: Vec<i16> = keys.iter().map(|(_, c)| c.id_origin).collect();

    let n = candidates.len();
    let mut key_ord = Vec::with_capacity(n);
    let mut pixel = Vec::with_capacity(n);
    let mut due = Vec::with_capacity(n);
    let mut hold = Vec::with_capacity(n);
    let mut enqueued = Vec::with_capacity(n);
    let mut event_time = Vec::with_capacity(n);
    let mut source = Vec::with_capacity(n);
    let mut name = Vec::with_capacity(n);
    let mut id = Vec::with_capacity(n);
    let mut code = Vec::with_capacity(n);
    let mut user_keys = Vec::with_capacity(n);
    let mut payload = Vec::with_capacity(n);
    for &(r, e, ord) in &candidates {
        let now_ms = group[r].now_ms;
        let event = &group[r].events[e];
        // A hold that has already passed is no hold.
        let hold_until = event.hold_until_ms.filter(|h| *h > now_ms);
        key_ord.push(ord);
        pixel.push(event.pixel_id.as_str());
        due.push(hold_until.unwrap_or(now_ms));
        hold.push(hold_until);
        enqueued.push(now_ms);
        event_time.push(event.event_time);
        source.push(event.source.as_str());
        name.push(event.event_name.as_str());
        id.push(event.event_id.as_str());
        code.push(event.test_event_code.as_deref());
        user_keys.push(user_keys_text(&event.user_keys));
        payload.push(event.payload.as_slice());
    }
    let t_pixel: Vec<&str> = pixel_totals.keys().copied().collect();
    let t_total: Vec<i64> = pixel_totals.values().copied().collect();

    let audit: Vec<&AuditRow> = round.clone().flat_map(|r| &group[r].audit).collect();
    let a_time: Vec<i64> = audit.iter().map(|a| a.time_ms).collect();
    let a_pixel: Vec<&str> = audit.iter().map(|a| a.pixel_id.as_str()).collect();
    let a_name: Vec<&str> = audit.iter().map(|a| a.event_name.as_str()).collect();
    let a_id: Vec<Option<&str>> = audit.iter().map(|a| a.event_id.as_deref()).collect();
    let a_source: Vec<&str> = audit.iter().map(|a| a.source.as_str()).collect();
    let a_outcome: Vec<&str> = audit.iter().map(|a| a.outcome.as_str()).collect();
    let a_rule: Vec<&str> = audit.iter().map(|a| a.rule_id.as_str()).collect();
    let a_record: Vec<&str> = audit.iter().map(|a| a.record_json.as_str()).collect();

    let stmt = client
        .prepare_cached(&shared.sql.enqueue_round)
        .await
        .map_err(RoundError::Db)?;
    let rows = client
        .query(
            &stmt,
            &[
                &k_pixel,
                &k_name,
                &k_id,
                &k_now,
                &k_first,
                &k_sources,
                &k_extra,
                &shared.options.dedup_window_ms,
                &key_ord,
                &pixel,
                &due,
                &hold,
                &enqueued,
                &event_time,
                &source,
                &name,
                &id,
                &code,
                &user_keys,
                &payload,
                &t_pixel,
                &t_total,
                &shared.next_shard(),
                &a_time,
                &a_pixel,
                &a_name,
                &a_id,
                &a_source,
                &a_outcome,
                &a_rule,
                &a_record,
                &k_order,
                &k_origin,
                &shared.queue_part(),
            ],
        )
        .await
        .map_err(RoundError::Db)?;

    // Read the answer: each key's fate, and the new queue ids.
    let mut fate: Vec<Option<(bool, EventSource, i64)>> = vec![None; keys.len()];
    let mut ids: Vec<i64> = Vec::with_capacity(n);
    for row in &rows {
        let kind: i32 = row.try_get(0).map_err(RoundError::Db)?;
        let value: i64 = row.try_get(1).map_err(RoundError::Db)?;
        if kind == 1 {
            ids.push(value);
            continue;
        }
        let at = ordinal(value, keys.len()).map_err(RoundError::Store)?;
        let won: bool = row.try_get(2).map_err(RoundError::Db)?;
        let first_source: &str = row.try_get(3).map_err(RoundError::Db)?;
        let first_source = first_source.parse().map_err(|_| {
            RoundError::Store(StoreError::Corrupt {
                message: "dedup_ledger.first_source holds an unknown source".to_owned(),
            })
        })?;
        fate[at] = Some((won, first_source, row.try_get(4).map_err(RoundError::Db)?));
    }
    if fate.iter().any(Option::is_none) {
        return Err(RoundError::Store(StoreError::Backend {
            message: "the dedup ledger did not answer for every key".to_owned(),
        }));
    }
    // Identity values are drawn in insertion order (`ORDER BY ord`), so the
    // sorted ids line up with the queued candidates in arrival order.
    ids.sort_unstable();
    let queued: Vec<(usize, usize)> = candidates
        .iter()
        .filter(|(_, _, ord)| *ord == 0 || fate[(*ord - 1) as usize].is_some_and(|f| f.0))
        .map(|(r, e, _)| (*r, *e))
        .collect();
    if ids.len() != queued.len() {
        return Err(RoundError::Store(StoreError::Backend {
            message: format!(
                "queue insert returned {} ids for {} events",
                ids.len(),
                queued.len()
            ),
        }));
    }
    for ((r, e), id) in queued.into_iter().zip(ids) {
        outcomes[r][e] = Some(EnqueueOutcome::Queued {
            id: EventRowId::from_raw(id),
        });
    }
    // Everything else is a duplicate of its key's entry (for a key this
    // round won, that entry is the round's own first copy).
    for r in round {
        for (e, event) in group[r].events.iter().enumerate() {
            if outcomes[r][e].is_none() {
                let i = position[&key_of(event)];
                let (_, first_source, first_seen_ms) = fate[i].expect("checked above");
                outcomes[r][e] = Some(EnqueueOutcome::Duplicate {
                    first_source,
                    first_seen_ms,
                });
            }
        }
    }
    Ok(())
}

/// A 1-based `WITH ORDINALITY` position returned by a statement, checked.
fn ordinal(raw: i64, len: usize) -> Result<usize, StoreError> {
    usize::try_from(raw)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .filter(|i| *i < len)
        .ok_or_else(|| StoreError::Backend {
            message: format!("statement returned position {raw} of {len}"),
        })
}

/// The user keys as one text (joined with `USER_KEY_SEPARATOR`, which
/// `sluice_store::check_new_events` refuses inside a key), split again by
/// `string_to_array` in SQL:
/// the cheapest way to pass a variable-length list per row through
/// `unnest` (arrays of arrays must be rectangular; a JSON array per row
/// cost a quarter of the insert statement's time). Duplicates go; an
/// empty list is the empty string, which splits into no keys.
pub(crate) fn user_keys_text(keys: &[String]) -> String {
    let mut unique: Vec<&str> = keys.iter().map(String::as_str).collect();
    unique.sort_unstable();
    unique.dedup();
    let mut sep = [0u8; 4];
    unique.join(USER_KEY_SEPARATOR.encode_utf8(&mut sep))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(keys: &[&str], now_ms: i64) -> EnqueueRequest {
        let events = keys
            .iter()
            .map(|k| NewEvent {
                pixel_id: "p".into(),
                event_name: "Purchase".into(),
                event_id: (*k).into(),
                event_time: 0,
                source: EventSource::Backend,
                payload: Vec::new(),
                user_keys: Vec::new(),
                test_event_code: None,
                hold_until_ms: None,
                order_id: None,
                event_id_origin: sluice_store::EventIdOrigin::Sent,
            })
            .collect();
        EnqueueRequest {
            events,
            audit: Vec::new(),
            now_ms,
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn rounds_split_only_where_one_key_is_seen_at_two_instants() {
        let group = [
            request(&["a", "b"], 10),
            request(&["a", "c"], 10),
            request(&["", ""], 11),
            request(&["d"], 12),
            request(&["b"], 13),
            request(&["a"], 13),
        ];
        assert_eq!(split_rounds(&group), vec![0..4, 4..6]);
        assert_eq!(split_rounds(&group[..1]), vec![0..1]);
    }

    #[test]
    fn user_keys_travel_as_one_separated_text() {
        let keys = vec!["b,x".to_owned(), "a".to_owned(), "a".to_owned()];
        assert_eq!(user_keys_text(&keys), "a\u{1f}b,x");
        assert_eq!(user_keys_text(&[]), "");
    }

    #[test]
    fn ordinals_are_checked() {
        assert_eq!(ordinal(1, 3).unwrap(), 0);
        assert_eq!(ordinal(3, 3).unwrap(), 2);
        assert!(ordinal(0, 3).is_err());
        assert!(ordinal(4, 3).is_err());
    }
}
