//! The write operations, as plain functions over the writer's connection.
//!
//! Each function runs inside the writer's group-commit transaction. The
//! writer makes each one apply completely or not at all (see `writer`: a
//! failure rolls the batch back and replays it under savepoints), and each
//! keeps `pixel_counters` in step with the rows it touches. None of them
//! commits: durability is the writer's job. Each must give the same result
//! when applied twice to the same state, since a replay does exactly that.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{Connection, OptionalExtension, params};

use super::sql_error;
use crate::{
    DeadLetterId, DeadLetterReason, EnqueueOutcome, EventRowId, EventSource, ForgetReport,
    LeasedEvent, MergeFn, MergeOutcome, MergeRequest, NewEvent, StoreError, USER_KEY_SEPARATOR,
    ledger_order_id,
};

/// `last_error` longer than this is cut (at a char boundary) so that a
/// verbose upstream error cannot bloat every row of a large retry backlog.
const MAX_LAST_ERROR_BYTES: usize = 2048;

/// The due events of one pixel, oldest due first: a range of `queue_by_pixel_due`.
pub(crate) const LEASE_SELECT_SQL: &str =
    "SELECT id, pixel_id, event_name, event_id, event_time, source, payload,
                    attempts, last_error, test_event_code, enqueued_ms
             FROM queue
             WHERE pixel_id = ?1 AND due_ms <= ?2
             ORDER BY due_ms, id
             LIMIT ?3";

/// Starts the ledger entry of a key not in the ledger; a key already there
/// (live or expired) changes nothing, which `changes()` tells. One
/// primary-key descent for the common case of a new key.
pub(crate) const LEDGER_CLAIM_SQL: &str = "INSERT INTO dedup_ledger
                 (pixel_id, event_name, event_id, first_seen_ms, last_seen_ms, first_source, sources,
                  duplicates, merged, order_id, id_origin)
             VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, 0, 0, ?7, ?8)
             ON CONFLICT (pixel_id, event_name, event_id) DO NOTHING";

/// Charges a copy to the key's entry if that entry is live (first seen after
/// `?7`), returning the entry's first sighting; no row means it expired.
pub(crate) const LEDGER_MARK_DUPLICATE_SQL: &str = "UPDATE dedup_ledger
             SET sources = sources | ?4, duplicates = duplicates + 1,
                 last_seen_ms = MAX(last_seen_ms, ?5), order_id = COALESCE(order_id, ?6)
             WHERE pixel_id = ?1 AND event_name = ?2 AND event_id = ?3 AND first_seen_ms > ?7
             RETURNING first_seen_ms, first_source";

/// One bounded batch of expired ledger entries, found through `dedup_ledger_by_first_seen`.
pub(crate) const PURGE_LEDGER_SQL: &str = "DELETE FROM dedup_ledger
             WHERE (pixel_id, event_name, event_id) IN (
                 SELECT pixel_id, event_name, event_id FROM dedup_ledger
                 WHERE first_seen_ms <= ?1
                 LIMIT ?2)";

/// Per-pixel counter changes made by one operation, written to
/// `pixel_counters` at the end of the operation.
#[derive(Debug, Default)]
struct CounterDeltas {
    by_pixel: BTreeMap<String, Delta>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Delta {
    queued: i64,
    dead_letters: i64,
    delivered: i64,
    duplicates: i64,
    last_delivered_ms: Option<i64>,
}

// === impl CounterDeltas ===

impl CounterDeltas {
    fn pixel(&mut self, pixel_id: &str) -> &mut Delta {
        if !self.by_pixel.contains_key(pixel_id) {
            self.by_pixel.insert(pixel_id.to_owned(), Delta::default());
        }
        self.by_pixel
            .get_mut(pixel_id)
            .expect("entry inserted just above")
    }

    fn flush(self, conn: &Connection) -> Result<(), StoreError> {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO pixel_counters
                     (pixel_id, queued, dead_letters, delivered_total, duplicates_total, last_delivered_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (pixel_id) DO UPDATE SET
                     queued = queued + excluded.queued,
                     dead_letters = dead_letters + excluded.dead_letters,
                     delivered_total = delivered_total + excluded.delivered_total,
                     duplicates_total = duplicates_total + excluded.duplicates_total,
                     last_delivered_ms = COALESCE(
                         MAX(last_delivered_ms, excluded.last_delivered_ms),
                         excluded.last_delivered_ms,
                         last_delivered_ms)",
            )
            .map_err(sql_error)?;
        for (pixel_id, d) in &self.by_pixel {
            stmt.execute(params![
                pixel_id,
                d.queued,
                d.dead_letters,
                d.delivered,
                d.duplicates,
                d.last_delivered_ms
            ])
            .map_err(sql_error)?;
        }
        Ok(())
    }
}

/// See [`Store::enqueue`](crate::Store::enqueue).
pub(crate) fn enqueue(
    conn: &Connection,
    events: &[NewEvent],
    now_ms: i64,
    dedup_window_ms: i64,
) -> Result<Vec<EnqueueOutcome>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut claim = conn.prepare_cached(LEDGER_CLAIM_SQL).map_err(sql_error)?;
    let mut mark_duplicate = conn
        .prepare_cached(LEDGER_MARK_DUPLICATE_SQL)
        .map_err(sql_error)?;
    let mut restart_entry = conn
        .prepare_cached(
            "UPDATE dedup_ledger
             SET first_seen_ms = ?4, last_seen_ms = ?4, first_source = ?5, sources = ?6,
                 duplicates = 0, merged = 0, order_id = ?7, id_origin = ?8
             WHERE pixel_id = ?1 AND event_name = ?2 AND event_id = ?3",
        )
        .map_err(sql_error)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO queue
                 (pixel_id, event_name, event_id, event_time, source, test_event_code,
                  enqueued_ms, due_ms, hold_until_ms, payload, user_keys)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(sql_error)?;
    let mut deltas = CounterDeltas::default();
    let mut outcomes = Vec::with_capacity(events.len());
    for event in events {
        let order_id = ledger_order_id(event.order_id.as_deref());
        if !event.event_id.is_empty() {
            let entry = params![
                event.pixel_id,
                event.event_name,
                event.event_id,
                now_ms,
                event.source,
                event.source.bit(),
                order_id,
                event.event_id_origin.code()
            ];
            // A new key (the common case) is one insert. A key already in
            // the ledger is either live (this copy is a duplicate) or
            // expired (the entry restarts with this copy).
            if claim.execute(entry).map_err(sql_error)? == 0 {
                let live: Option<(i64, EventSource)> = mark_duplicate
                    .query_row(
                        params![
                            event.pixel_id,
                            event.event_name,
                            event.event_id,
                            event.source.bit(),
                            now_ms,
                            order_id,
                            now_ms.saturating_sub(dedup_window_ms)
                        ],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()
                    .map_err(sql_error)?;
                if let Some((first_seen_ms, first_source)) = live {
                    deltas.pixel(&event.pixel_id).duplicates += 1;
                    outcomes.push(EnqueueOutcome::Duplicate {
                        first_source,
                        first_seen_ms,
                    });
                    continue;
                }
                restart_entry.execute(entry).map_err(sql_error)?;
            }
        }

        // A hold that has already passed is no hold: keep the column NULL so
        // the partial index `queue_by_hold` holds only real holds.
        let hold_until_ms = event.hold_until_ms.filter(|hold| *hold > now_ms);
        let due_ms = hold_until_ms.unwrap_or(now_ms);
        let keys = unique_keys(&event.user_keys);
        insert
            .execute(params![
                event.pixel_id,
                event.event_name,
                event.event_id,
                event.event_time,
                event.source,
                event.test_event_code,
                now_ms,
                due_ms,
                hold_until_ms,
                event.payload,
                join_keys(&keys)
            ])
            .map_err(sql_error)?;
        let row_id = conn.last_insert_rowid();
        deltas.pixel(&event.pixel_id).queued += 1;
        outcomes.push(EnqueueOutcome::Queued {
            id: EventRowId::from_raw(row_id),
        });
    }
    deltas.flush(conn)?;
    Ok(outcomes)
}

/// The held copy of a key that a later copy from another source may merge
/// into: a range of the partial index `queue_held_by_key` (held rows only).
pub(crate) const HELD_COPY_SQL: &str = "SELECT id, source, payload, user_keys FROM queue
             WHERE pixel_id = ?1 AND event_name = ?2 AND event_id = ?3
               AND hold_until_ms > ?4 AND leased_until_ms IS NULL AND attempts = 0
               AND source <> ?5
             ORDER BY id
             LIMIT 1";

/// See [`Store::merge_held`](crate::Store::merge_held). Runs on the writer
/// thread inside its transaction, so no lease can come between the check
/// and the update. `merge` runs here too; a panic in it is a refusal (it
/// must not take the writer thread down).
pub(crate) fn merge_held(
    conn: &Connection,
    request: &MergeRequest,
    merge: &MergeFn,
    now_ms: i64,
) -> Result<MergeOutcome, StoreError> {
    let held: Option<(i64, EventSource, Vec<u8>, Option<String>)> = conn
        .prepare_cached(HELD_COPY_SQL)
        .map_err(sql_error)?
        .query_row(
            params![
                request.pixel_id,
                request.event_name,
                request.event_id,
                now_ms,
                request.source
            ],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()
        .map_err(sql_error)?;
    let Some((row_id, into_source, payload, held_keys)) = held else {
        return Ok(MergeOutcome::NotMerged);
    };
    let merged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| merge(&payload)))
        .ok()
        .flatten();
    let Some(merged) = merged else {
        return Ok(MergeOutcome::NotMerged);
    };
    let mut keys: Vec<String> = split_keys(held_keys.as_deref())
        .chain(request.user_keys.iter().map(String::as_str))
        .map(str::to_owned)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    // The row may gain keys here after a `forget` scanned it: the merge
    // number lets that `forget` find it (see `forget`).
    let merge_seq: i64 = conn
        .prepare_cached(
            "UPDATE store_meta SET value = value + 1 WHERE key = 'merge_seq' RETURNING value",
        )
        .map_err(sql_error)?
        .query_row([], |row| row.get(0))
        .map_err(sql_error)?;
    conn.prepare_cached(
        "UPDATE queue SET payload = ?2, due_ms = ?3, hold_until_ms = NULL, user_keys = ?4,
                          merge_seq = ?5
         WHERE id = ?1",
    )
    .map_err(sql_error)?
    .execute(params![row_id, merged, now_ms, join_keys(&keys), merge_seq])
    .map_err(sql_error)?;
    conn.prepare_cached(
        "UPDATE dedup_ledger
         SET sources = sources | ?4, merged = merged + 1,
             last_seen_ms = MAX(last_seen_ms, ?5), order_id = COALESCE(order_id, ?6)
         WHERE pixel_id = ?1 AND event_name = ?2 AND event_id = ?3",
    )
    .map_err(sql_error)?
    .execute(params![
        request.pixel_id,
        request.event_name,
        request.event_id,
        request.source.bit(),
        now_ms,
        ledger_order_id(request.order_id.as_deref())
    ])
    .map_err(sql_error)?;
    Ok(MergeOutcome::Merged {
        id: EventRowId::from_raw(row_id),
        into_source,
    })
}

/// See [`Store::lease`](crate::Store::lease).
pub(crate) fn lease(
    conn: &Connection,
    pixel_id: &str,
    max_events: usize,
    lease_ms: i64,
    now_ms: i64,
) -> Result<Vec<LeasedEvent>, StoreError> {
    let limit = i64::try_from(max_events).unwrap_or(i64::MAX);
    let leased_until_ms = now_ms.saturating_add(lease_ms);
    let mut select = conn.prepare_cached(LEASE_SELECT_SQL).map_err(sql_error)?;
    let events = select
        .query_map(params![pixel_id, now_ms, limit], |row| {
            Ok(LeasedEvent {
                id: EventRowId::from_raw(row.get(0)?),
                pixel_id: row.get(1)?,
                event_name: row.get(2)?,
                event_id: row.get(3)?,
                event_time: row.get(4)?,
                source: row.get(5)?,
                payload: row.get(6)?,
                attempts: attempts_from_sql(row.get(7)?),
                last_error: row.get(8)?,
                test_event_code: row.get(9)?,
                first_enqueued_ms: row.get(10)?,
            })
        })
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)?;

    let mut mark = conn
        .prepare_cached(
            "UPDATE queue SET due_ms = ?2, leased_until_ms = ?2, hold_until_ms = NULL
             WHERE id = ?1",
        )
        .map_err(sql_error)?;
    for event in &events {
        mark.execute(params![event.id.raw(), leased_until_ms])
            .map_err(sql_error)?;
    }
    Ok(events)
}

/// See [`Store::ack`](crate::Store::ack).
pub(crate) fn ack(conn: &Connection, ids: &[EventRowId], now_ms: i64) -> Result<u64, StoreError> {
    let mut delete = conn
        .prepare_cached("DELETE FROM queue WHERE id = ?1 RETURNING pixel_id")
        .map_err(sql_error)?;
    let mut deltas = CounterDeltas::default();
    let mut deleted = 0;
    for id in dedup_ids(ids) {
        let pixel: Option<String> = delete
            .query_row([id], |row| row.get(0))
            .optional()
            .map_err(sql_error)?;
        if let Some(pixel) = pixel {
            let d = deltas.pixel(&pixel);
            d.queued -= 1;
            d.delivered += 1;
            d.last_delivered_ms = Some(now_ms);
            deleted += 1;
        }
    }
    deltas.flush(conn)?;
    Ok(deleted)
}

/// See [`Store::retry`](crate::Store::retry) (`count_attempt`) and
/// [`Store::release`](crate::Store::release).
pub(crate) fn reschedule(
    conn: &Connection,
    ids: &[EventRowId],
    due_at_ms: i64,
    count_attempt: bool,
    last_error: Option<&str>,
) -> Result<u64, StoreError> {
    let last_error = last_error.map(truncate_error);
    let mut update = conn
        .prepare_cached(
            "UPDATE queue SET
                 due_ms = MAX(?2, COALESCE(hold_until_ms, ?2)),
                 leased_until_ms = NULL,
                 attempts = attempts + ?3,
                 last_error = CASE WHEN ?3 = 1 THEN ?4 ELSE last_error END
             WHERE id = ?1",
        )
        .map_err(sql_error)?;
    let mut updated = 0;
    for id in dedup_ids(ids) {
        updated += update
            .execute(params![id, due_at_ms, i64::from(count_attempt), last_error])
            .map_err(sql_error)? as u64;
    }
    Ok(updated)
}

/// See [`Store::dead_letter`](crate::Store::dead_letter).
pub(crate) fn dead_letter(
    conn: &Connection,
    ids: &[EventRowId],
    reason: &DeadLetterReason,
    now_ms: i64,
) -> Result<Vec<DeadLetterId>, StoreError> {
    let mut copy = conn
        .prepare_cached(
            "INSERT INTO dead_letters
                 (pixel_id, event_name, event_id, event_time, source, test_event_code,
                  enqueued_ms, attempts, code, message, detail_json, dead_lettered_ms, payload)
             SELECT pixel_id, event_name, event_id, event_time, source, test_event_code,
                    enqueued_ms, attempts + 1, ?2, ?3, ?4, ?5, payload
             FROM queue WHERE id = ?1
             RETURNING id, pixel_id",
        )
        .map_err(sql_error)?;
    let mut copy_key = conn
        .prepare_cached("INSERT INTO dead_letter_user_keys (row_id, user_key) VALUES (?1, ?2)")
        .map_err(sql_error)?;
    let mut delete = conn
        .prepare_cached("DELETE FROM queue WHERE id = ?1 RETURNING user_keys")
        .map_err(sql_error)?;

    let mut deltas = CounterDeltas::default();
    let mut moved = Vec::with_capacity(ids.len());
    for id in dedup_ids(ids) {
        let copied: Option<(i64, String)> = copy
            .query_row(
                params![id, reason.code, reason.message, reason.detail_json, now_ms],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(sql_error)?;
        let Some((dead_letter_id, pixel)) = copied else {
            continue;
        };
        let keys: Option<String> = delete
            .query_row([id], |row| row.get(0))
            .map_err(sql_error)?;
        for key in split_keys(keys.as_deref()) {
            copy_key
                .execute(params![dead_letter_id, key])
                .map_err(sql_error)?;
        }
        let d = deltas.pixel(&pixel);
        d.queued -= 1;
        d.dead_letters += 1;
        moved.push(DeadLetterId::from_raw(dead_letter_id));
    }
    deltas.flush(conn)?;
    Ok(moved)
}

/// See [`Store::dlq_replay`](crate::Store::dlq_replay).
pub(crate) fn dlq_replay(
    conn: &Connection,
    ids: &[DeadLetterId],
    test_event_code: Option<&str>,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let mut copy = conn
        .prepare_cached(
            "INSERT INTO queue
                 (pixel_id, event_name, event_id, event_time, source, test_event_code,
                  enqueued_ms, due_ms, hold_until_ms, leased_until_ms, attempts, last_error, payload)
             SELECT pixel_id, event_name, event_id, event_time, source,
                    COALESCE(?2, test_event_code), enqueued_ms, ?3, NULL, NULL, 0, NULL, payload
             FROM dead_letters WHERE id = ?1
             RETURNING id, pixel_id",
        )
        .map_err(sql_error)?;
    let mut copy_keys = conn
        .prepare_cached("SELECT user_key FROM dead_letter_user_keys WHERE row_id = ?1")
        .map_err(sql_error)?;
    let mut set_keys = conn
        .prepare_cached("UPDATE queue SET user_keys = ?2 WHERE id = ?1")
        .map_err(sql_error)?;
    let mut delete_keys = conn
        .prepare_cached("DELETE FROM dead_letter_user_keys WHERE row_id = ?1")
        .map_err(sql_error)?;
    let mut delete = conn
        .prepare_cached("DELETE FROM dead_letters WHERE id = ?1")
        .map_err(sql_error)?;

    let mut deltas = CounterDeltas::default();
    let mut replayed = 0;
    for id in dedup_ids(ids) {
        let copied: Option<(i64, String)> = copy
            .query_row(params![id, test_event_code, now_ms], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
            .map_err(sql_error)?;
        let Some((row_id, pixel)) = copied else {
            continue;
        };
        let mut keys = copy_keys
            .query_map([id], |row| row.get::<_, String>(0))
            .map_err(sql_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql_error)?;
        keys.sort_unstable();
        set_keys
            .execute(params![row_id, join_keys(&keys)])
            .map_err(sql_error)?;
        delete_keys.execute([id]).map_err(sql_error)?;
        delete.execute([id]).map_err(sql_error)?;
        let d = deltas.pixel(&pixel);
        d.queued += 1;
        d.dead_letters -= 1;
        replayed += 1;
    }
    deltas.flush(conn)?;
    Ok(replayed)
}

/// See [`Store::dlq_delete`](crate::Store::dlq_delete).
pub(crate) fn dlq_delete(conn: &Connection, ids: &[DeadLetterId]) -> Result<u64, StoreError> {
    let mut delete = conn
        .prepare_cached("DELETE FROM dead_letters WHERE id = ?1 RETURNING pixel_id")
        .map_err(sql_error)?;
    let mut delete_keys = conn
        .prepare_cached("DELETE FROM dead_letter_user_keys WHERE row_id = ?1")
        .map_err(sql_error)?;
    let mut deltas = CounterDeltas::default();
    let mut deleted = 0;
    for id in dedup_ids(ids) {
        let pixel: Option<String> = delete
            .query_row([id], |row| row.get(0))
            .optional()
            .map_err(sql_error)?;
        if let Some(pixel) = pixel {
            delete_keys.execute([id]).map_err(sql_error)?;
            deltas.pixel(&pixel).dead_letters -= 1;
            deleted += 1;
        }
    }
    deltas.flush(conn)?;
    Ok(deleted)
}

/// One bounded step of [`Store::purge`](crate::Store::purge): deletes at most
/// `limit` ledger entries first seen at or before `cutoff_ms`.
pub(crate) fn purge_ledger_batch(
    conn: &Connection,
    cutoff_ms: i64,
    limit: usize,
) -> Result<u64, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut delete = conn.prepare_cached(PURGE_LEDGER_SQL).map_err(sql_error)?;
    Ok(delete
        .execute(params![cutoff_ms, limit])
        .map_err(sql_error)? as u64)
}

/// What `forget`'s scan of the queue found, on a read connection and in one
/// snapshot (see [`read::queue_key_scan`](super::read::queue_key_scan)).
#[derive(Debug)]
pub(crate) struct QueueKeyScan {
    /// Queue rows carrying any of the keys in that snapshot.
    pub(crate) matching: BTreeSet<i64>,
    /// The highest queue id handed out as of the snapshot: a row with a
    /// higher id came later and was not scanned.
    pub(crate) through_id: i64,
    /// `store_meta.merge_seq` as of the snapshot: a row merged later may
    /// have gained one of the keys.
    pub(crate) merge_seq: i64,
}

/// Queue rows newer than a `forget` scan's snapshot: a rowid range.
pub(crate) const ROWS_AFTER_SCAN_SQL: &str = "SELECT id, user_keys FROM queue WHERE id > ?1";

/// Queue rows merged after a `forget` scan's snapshot: a range of the
/// partial index `queue_by_merge`.
pub(crate) const ROWS_MERGED_AFTER_SCAN_SQL: &str =
    "SELECT id, user_keys FROM queue WHERE merge_seq > ?1";

/// Adds to `ids` the rows of `rows` (`id, user_keys`) whose keys hold any
/// of `wanted`: `forget`'s test, on the reader's scan and on the writer's
/// re-check alike.
pub(crate) fn collect_carrying(
    mut rows: rusqlite::Rows<'_>,
    wanted: &BTreeSet<&str>,
    ids: &mut BTreeSet<i64>,
) -> Result<(), StoreError> {
    while let Some(row) = rows.next().map_err(sql_error)? {
        let keys: Option<String> = row.get(1).map_err(sql_error)?;
        if split_keys(keys.as_deref()).any(|key| wanted.contains(key)) {
            ids.insert(row.get(0).map_err(sql_error)?);
        }
    }
    Ok(())
}

/// See [`Store::forget`](crate::Store::forget). `scan` was taken before on
/// a read connection, so the writer (and every ingest waiting on it) never
/// walks the whole queue; here only what may have changed since is checked.
/// Queue rows only gain keys by being inserted (a higher id) or merged (a
/// higher `merge_seq`), and never lose one, so the two ranges below and the
/// scan's matches together are every row that carries a key now.
pub(crate) fn forget(
    conn: &Connection,
    user_keys: &[String],
    scan: &QueueKeyScan,
) -> Result<ForgetReport, StoreError> {
    let mut report = ForgetReport::default();
    let mut deltas = CounterDeltas::default();
    let mut ledger_keys: BTreeSet<(String, String, String)> = BTreeSet::new();
    let wanted: BTreeSet<&str> = user_keys.iter().map(String::as_str).collect();

    // Collect first, then delete: never mutate a table under an open cursor on it.
    let mut queue_ids = scan.matching.clone();
    for (sql, after) in [
        (ROWS_AFTER_SCAN_SQL, scan.through_id),
        (ROWS_MERGED_AFTER_SCAN_SQL, scan.merge_seq),
    ] {
        let mut select = conn.prepare_cached(sql).map_err(sql_error)?;
        let rows = select.query([after]).map_err(sql_error)?;
        collect_carrying(rows, &wanted, &mut queue_ids)?;
    }
    let dead_letter_ids = rows_with_keys(conn, "dead_letter_user_keys", user_keys)?;

    let mut delete_dead_letter_keys = conn
        .prepare_cached("DELETE FROM dead_letter_user_keys WHERE row_id = ?1")
        .map_err(sql_error)?;
    for (table, ids) in [("queue", &queue_ids), ("dead_letters", &dead_letter_ids)] {
        let mut delete = conn
            .prepare_cached(&format!(
                "DELETE FROM {table} WHERE id = ?1 RETURNING pixel_id, event_name, event_id"
            ))
            .map_err(sql_error)?;
        for id in ids {
            let deleted: Option<(String, String, String)> = delete
                .query_row([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .optional()
                .map_err(sql_error)?;
            if table == "dead_letters" {
                delete_dead_letter_keys.execute([id]).map_err(sql_error)?;
            }
            let Some(key) = deleted else { continue };
            let d = deltas.pixel(&key.0);
            if table == "queue" {
                d.queued -= 1;
                report.queued += 1;
            } else {
                d.dead_letters -= 1;
                report.dead_letters += 1;
            }
            if !key.2.is_empty() {
                ledger_keys.insert(key);
            }
        }
    }

    let mut delete_entry = conn
        .prepare_cached(
            "DELETE FROM dedup_ledger WHERE pixel_id = ?1 AND event_name = ?2 AND event_id = ?3",
        )
        .map_err(sql_error)?;
    for (pixel_id, event_name, event_id) in &ledger_keys {
        report.ledger += delete_entry
            .execute(params![pixel_id, event_name, event_id])
            .map_err(sql_error)? as u64;
    }
    deltas.flush(conn)?;
    Ok(report)
}

/// Bumps `store_meta.writable_probe`: a real write, so the commit that
/// follows proves the file, the disk and the lock are usable.
pub(crate) fn probe(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE store_meta SET value = value + 1 WHERE key = 'writable_probe'")
        .map_err(sql_error)?
        .execute([])
        .map_err(sql_error)?;
    Ok(())
}

/// Every leased row, found through the partial index `queue_by_lease`.
pub(crate) const RELEASE_ALL_LEASES_SQL: &str = "UPDATE queue
             SET due_ms = MIN(enqueued_ms, ?1), leased_until_ms = NULL
             WHERE leased_until_ms IS NOT NULL";

/// See `SqliteStore::claim_ownership`: every leased event becomes due again
/// at once, without counting an attempt. Due at its arrival (not later than
/// `now_ms`), so it is leased again in arrival order, ahead of events that
/// came after it. Costs one step per leased row, not per queued one.
pub(crate) fn release_all_leases(conn: &Connection, now_ms: i64) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached(RELEASE_ALL_LEASES_SQL)
        .map_err(sql_error)?
        .execute([now_ms])
        .map_err(sql_error)? as u64)
}

/// An event's keys, each once, sorted.
fn unique_keys(keys: &[String]) -> Vec<&str> {
    let mut unique: Vec<&str> = keys.iter().map(String::as_str).collect();
    unique.sort_unstable();
    unique.dedup();
    unique
}

/// `queue.user_keys` for `keys` (already unique): NULL for none.
fn join_keys<S: AsRef<str>>(keys: &[S]) -> Option<String> {
    let mut joined = String::new();
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            joined.push(USER_KEY_SEPARATOR);
        }
        joined.push_str(key.as_ref());
    }
    (!keys.is_empty()).then_some(joined)
}

/// The keys in a `queue.user_keys` value.
fn split_keys(joined: Option<&str>) -> impl Iterator<Item = &str> {
    joined
        .into_iter()
        .flat_map(|j| j.split(USER_KEY_SEPARATOR))
        .filter(|k| !k.is_empty())
}

/// The distinct row ids of `keys_table` that carry any of `user_keys`.
fn rows_with_keys(
    conn: &Connection,
    keys_table: &str,
    user_keys: &[String],
) -> Result<BTreeSet<i64>, StoreError> {
    let mut select = conn
        .prepare_cached(&format!(
            "SELECT row_id FROM {keys_table} WHERE user_key = ?1"
        ))
        .map_err(sql_error)?;
    let mut ids = BTreeSet::new();
    for key in user_keys {
        let rows = select
            .query_map([key], |row| row.get::<_, i64>(0))
            .map_err(sql_error)?;
        for id in rows {
            ids.insert(id.map_err(sql_error)?);
        }
    }
    Ok(ids)
}

/// The raw ids, each once, in first-seen order (so a repeated id in one
/// call is not counted twice).
fn dedup_ids<I: Copy + Into<RawId>>(ids: &[I]) -> Vec<i64> {
    let mut seen = BTreeSet::new();
    ids.iter()
        .map(|id| (*id).into().0)
        .filter(|raw| seen.insert(*raw))
        .collect()
}

/// A backend row id, whichever table it belongs to.
struct RawId(i64);

impl From<EventRowId> for RawId {
    fn from(id: EventRowId) -> Self {
        RawId(id.raw())
    }
}

impl From<DeadLetterId> for RawId {
    fn from(id: DeadLetterId) -> Self {
        RawId(id.raw())
    }
}

/// `attempts` as stored (i64) to the API's u32, saturating.
pub(crate) fn attempts_from_sql(raw: i64) -> u32 {
    u32::try_from(raw.max(0)).unwrap_or(u32::MAX)
}

fn truncate_error(message: &str) -> &str {
    if message.len() <= MAX_LAST_ERROR_BYTES {
        return message;
    }
    let mut end = MAX_LAST_ERROR_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// See [`Store::append_audit`](crate::Store::append_audit).
pub(crate) fn append_audit(conn: &Connection, rows: &[crate::AuditRow]) -> Result<(), StoreError> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO consent_audit (time_ms, pixel_id, event_name, event_id, source, outcome, rule_id, record) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(sql_error)?;
    for row in rows {
        insert
            .execute(params![
                row.time_ms,
                row.pixel_id,
                row.event_name,
                row.event_id,
                row.source,
                row.outcome,
                row.rule_id,
                row.record_json
            ])
            .map_err(sql_error)?;
    }
    Ok(())
}

/// Deletes up to `limit` audit rows older than `before_ms`.
pub(crate) fn purge_audit_batch(
    conn: &Connection,
    before_ms: i64,
    limit: usize,
) -> Result<u64, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut delete = conn
        .prepare_cached(
            "DELETE FROM consent_audit WHERE id IN \
             (SELECT id FROM consent_audit WHERE time_ms < ?1 ORDER BY time_ms LIMIT ?2)",
        )
        .map_err(sql_error)?;
    Ok(delete
        .execute(params![before_ms, limit])
        .map_err(sql_error)? as u64)
}
