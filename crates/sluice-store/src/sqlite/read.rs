//! Read-only queries, on a small pool of connections separate from the writer.
//!
//! In WAL mode readers never block the writer and see the last committed
//! state. Every query here is bounded: `stats` and `due_pixels` cost one
//! index seek per pixel plus the leased/held rows (partial indexes), never a
//! scan of the backlog; `dlq_list` is a keyset page. The one exception is
//! `queue_key_scan`, `forget`'s walk over the queue, which is here precisely
//! so that it runs beside the writer instead of on it. Callers run these on
//! tokio's blocking pool (`spawn_blocking`), never on a runtime thread.
//!
//! Connections are opened lazily, set `query_only`, and at most
//! `max_idle` are kept between calls.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params, params_from_iter};

use super::ops::{QueueKeyScan, attempts_from_sql, collect_carrying};
use super::sql_error;
use crate::{
    DeadLetter, DeadLetterId, DedupReport, DedupReportQuery, DedupReportRow, DlqFilter,
    EventIdConflict, EventIdOrigin, EventSource, LedgerEntry, MAX_IDS_PER_EXAMPLE, OrderIdConflict,
    PixelStats, SourceSet, StoreError, StoreStats,
};

/// Pixels with a due event: one index seek per pixel.
pub(crate) const DUE_PIXELS_SQL: &str = "SELECT p.pixel_id FROM pixel_counters AS p
             WHERE p.queued > 0
               AND EXISTS (SELECT 1 FROM queue AS q
                           WHERE q.pixel_id = p.pixel_id AND q.due_ms <= ?1)
             ORDER BY p.pixel_id";

/// Counters and oldest due instant per pixel: one index seek per pixel.
pub(crate) const PIXEL_COUNTERS_SQL: &str =
    "SELECT p.pixel_id, p.queued, p.dead_letters, p.delivered_total,
                        p.duplicates_total, p.last_delivered_ms,
                        (SELECT q.due_ms FROM queue AS q WHERE q.pixel_id = p.pixel_id
                         ORDER BY q.due_ms LIMIT 1)
                 FROM pixel_counters AS p
                 ORDER BY p.pixel_id";

/// Unexpired leases per pixel, from the partial index of leased rows.
pub(crate) const LEASED_BY_PIXEL_SQL: &str =
    "SELECT pixel_id, COUNT(*) FROM queue INDEXED BY queue_by_lease
             WHERE leased_until_ms > ?1 GROUP BY pixel_id";

/// Held events per pixel, from the partial index of held rows.
pub(crate) const HELD_BY_PIXEL_SQL: &str =
    "SELECT pixel_id, COUNT(*) FROM queue INDEXED BY queue_by_hold
             WHERE hold_until_ms > ?1 GROUP BY pixel_id";

/// A lazily grown set of read connections to one database file.
pub(crate) struct ReadPool {
    path: PathBuf,
    busy_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Connection>>,
}

// === impl ReadPool ===

impl ReadPool {
    pub(crate) fn new(path: PathBuf, busy_timeout: Duration, max_idle: usize) -> Self {
        ReadPool {
            path,
            busy_timeout,
            max_idle: max_idle.max(1),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on a pooled connection. Blocking: call from `spawn_blocking`.
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = f(&mut conn);
        // A connection left inside a transaction by an error is not reused.
        if conn.is_autocommit() {
            let mut idle = self
                .idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
        result
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_URI
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql_error)?;
        conn.busy_timeout(self.busy_timeout).map_err(sql_error)?;
        conn.pragma_update(None, "query_only", true)
            .map_err(sql_error)?;
        // Negative = KiB.
        conn.pragma_update(None, "cache_size", -super::READER_CACHE_KIB)
            .map_err(sql_error)?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    /// Gives the page caches of the idle connections back to the allocator
    /// (connections in use are left alone). Returns how many were shrunk.
    pub(crate) fn shrink_idle(&self) -> usize {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        idle.iter()
            .filter(|conn| conn.execute_batch("PRAGMA shrink_memory").is_ok())
            .count()
    }
}

/// `forget`'s first step: the queue rows carrying any of `user_keys`, in one
/// snapshot, with what the writer needs to re-check only what changed since
/// (see [`ops::forget`](super::ops::forget)). A full scan of the queue,
/// which is why it runs here, on a reader, and not on the writer.
pub(crate) fn queue_key_scan(
    conn: &mut Connection,
    user_keys: &[String],
) -> Result<QueueKeyScan, StoreError> {
    let wanted: std::collections::BTreeSet<&str> = user_keys.iter().map(String::as_str).collect();
    // One read transaction: the bounds and the scan see the same snapshot.
    let tx = conn.transaction().map_err(sql_error)?;
    let (through_id, merge_seq): (i64, i64) = tx
        .query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'queue'), 0),
                    (SELECT value FROM store_meta WHERE key = 'merge_seq')",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(sql_error)?;
    let mut matching = std::collections::BTreeSet::new();
    {
        let mut select = tx
            .prepare("SELECT id, user_keys FROM queue WHERE user_keys IS NOT NULL")
            .map_err(sql_error)?;
        let rows = select.query([]).map_err(sql_error)?;
        collect_carrying(rows, &wanted, &mut matching)?;
    }
    tx.finish().map_err(sql_error)?;
    Ok(QueueKeyScan {
        matching,
        through_id,
        merge_seq,
    })
}

/// See [`Store::due_pixels`](crate::Store::due_pixels).
pub(crate) fn due_pixels(conn: &mut Connection, now_ms: i64) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(DUE_PIXELS_SQL).map_err(sql_error)?;
    stmt.query_map([now_ms], |row| row.get(0))
        .map_err(sql_error)?
        .collect::<Result<Vec<String>, _>>()
        .map_err(sql_error)
}

/// See [`Store::stats`](crate::Store::stats). One read transaction, so the
/// numbers are a consistent snapshot.
pub(crate) fn stats(conn: &mut Connection, now_ms: i64) -> Result<StoreStats, StoreError> {
    let tx = conn.transaction().map_err(sql_error)?;
    let mut per_pixel: Vec<PixelStats> = {
        let mut stmt = tx.prepare_cached(PIXEL_COUNTERS_SQL).map_err(sql_error)?;
        stmt.query_map([], |row| {
            Ok(PixelStats {
                pixel_id: row.get(0)?,
                queued: count_from_sql(row.get(1)?),
                dead_letters: count_from_sql(row.get(2)?),
                delivered_total: count_from_sql(row.get(3)?),
                duplicates_total: count_from_sql(row.get(4)?),
                last_delivered_ms: row.get(5)?,
                oldest_due_ms: row.get(6)?,
                leased: 0,
                held: 0,
            })
        })
        .map_err(sql_error)?
        .collect::<Result<_, _>>()
        .map_err(sql_error)?
    };

    // Both counts walk a partial index that holds only leased / held rows.
    // `INDEXED BY` pins that plan: left to itself the planner prefers to
    // scan `queue_by_pixel_due` to save the GROUP BY sort, which reads the
    // whole backlog (measured: 480 ms per call at 100k queued events).
    for (sql, is_leased) in [(LEASED_BY_PIXEL_SQL, true), (HELD_BY_PIXEL_SQL, false)] {
        let mut stmt = tx.prepare_cached(sql).map_err(sql_error)?;
        let rows = stmt
            .query_map([now_ms], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .map_err(sql_error)?;
        for row in rows {
            let (pixel_id, count) = row.map_err(sql_error)?;
            if let Ok(i) = per_pixel.binary_search_by(|p| p.pixel_id.as_str().cmp(&pixel_id)) {
                let pixel = &mut per_pixel[i];
                if is_leased {
                    pixel.leased = count_from_sql(count);
                } else {
                    pixel.held = count_from_sql(count);
                }
            }
        }
    }
    tx.finish().map_err(sql_error)?;

    let mut stats = StoreStats::default();
    for pixel in &per_pixel {
        stats.queued += pixel.queued;
        stats.leased += pixel.leased;
        stats.held += pixel.held;
        stats.dead_letters += pixel.dead_letters;
        stats.delivered_total += pixel.delivered_total;
        stats.duplicates_total += pixel.duplicates_total;
    }
    stats.per_pixel = per_pixel;
    Ok(stats)
}

/// See [`Store::dlq_list`](crate::Store::dlq_list).
pub(crate) fn dlq_list(
    conn: &mut Connection,
    filter: &DlqFilter,
) -> Result<Vec<DeadLetter>, StoreError> {
    let mut conditions: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut bind = |condition: &str, value: Value| {
        args.push(value);
        conditions.push(format!("{condition} ?{}", args.len()));
    };
    if let Some(pixel_id) = &filter.pixel_id {
        bind("pixel_id =", Value::Text(pixel_id.clone()));
    }
    if let Some(event_name) = &filter.event_name {
        bind("event_name =", Value::Text(event_name.clone()));
    }
    if let Some(code) = &filter.code {
        bind("code =", Value::Text(code.clone()));
    }
    if let Some(since_ms) = filter.since_ms {
        bind("dead_lettered_ms >=", Value::Integer(since_ms));
    }
    if let Some(after_id) = filter.after_id {
        bind("id >", Value::Integer(after_id.raw()));
    }
    args.push(Value::Integer(i64::from(filter.effective_limit())));
    let where_clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters {where_clause} ORDER BY id LIMIT ?{}",
        args.len()
    );
    // The statement text varies with the filter's shape only (at most 32
    // shapes), so the statement cache stays small and effective.
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
    stmt.query_map(params_from_iter(args), dead_letter_from_row)
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)
}

/// See [`Store::dlq_get`](crate::Store::dlq_get).
pub(crate) fn dlq_get(
    conn: &mut Connection,
    id: DeadLetterId,
) -> Result<Option<DeadLetter>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id = ?1"
    ))
    .map_err(sql_error)?
    .query_row([id.raw()], dead_letter_from_row)
    .optional()
    .map_err(sql_error)
}

/// See [`Store::dedup_lookup`](crate::Store::dedup_lookup).
pub(crate) fn dedup_lookup(
    conn: &mut Connection,
    key: (&str, &str, &str),
    live_after_ms: i64,
) -> Result<Option<LedgerEntry>, StoreError> {
    conn.prepare_cached(
        "SELECT pixel_id, event_name, event_id, first_source, sources,
                first_seen_ms, last_seen_ms, duplicates, merged, order_id, id_origin
         FROM dedup_ledger
         WHERE pixel_id = ?1 AND event_name = ?2 AND event_id = ?3 AND first_seen_ms > ?4",
    )
    .map_err(sql_error)?
    .query_row(params![key.0, key.1, key.2, live_after_ms], |row| {
        Ok(LedgerEntry {
            pixel_id: row.get(0)?,
            event_name: row.get(1)?,
            event_id: row.get(2)?,
            first_source: row.get(3)?,
            sources: source_set_from_sql(row.get(4)?),
            first_seen_ms: row.get(5)?,
            last_seen_ms: row.get(6)?,
            duplicates: count_from_sql(row.get(7)?),
            merged: count_from_sql(row.get(8)?),
            order_id: row.get(9)?,
            event_id_origin: EventIdOrigin::from_code(row.get(10)?),
        })
    })
    .optional()
    .map_err(sql_error)
}

/// The report's rows: every live key first seen in the period, counted once
/// by where it came from (bit 1 = browser, bits 2|4|8 = the server side).
pub(crate) const REPORT_ROWS_SQL: &str = "SELECT pixel_id, event_name, COUNT(*),
                SUM(merged = 0 AND (sources & 1) <> 0 AND (sources & 14) = 0),
                SUM(merged = 0 AND (sources & 1) = 0),
                SUM(merged = 0 AND (sources & 1) <> 0 AND (sources & 14) <> 0),
                SUM(merged > 0),
                SUM(duplicates),
                SUM(id_origin <> 0),
                SUM(id_origin = 2)
         FROM dedup_ledger
         WHERE first_seen_ms >= ?1 AND (?2 IS NULL OR pixel_id = ?2)
         GROUP BY pixel_id, event_name
         ORDER BY pixel_id, event_name";

/// Order ids with more than one event id, per pixel and event name.
const REPORT_ORDER_CONFLICTS_SQL: &str =
    "SELECT pixel_id, event_name, order_id, COUNT(DISTINCT event_id) AS n
         FROM dedup_ledger
         WHERE first_seen_ms >= ?1 AND (?2 IS NULL OR pixel_id = ?2) AND order_id IS NOT NULL
         GROUP BY pixel_id, event_name, order_id
         HAVING n > 1
         ORDER BY pixel_id, event_name, order_id
         LIMIT ?3";

const REPORT_ORDER_EVENT_IDS_SQL: &str = "SELECT DISTINCT event_id FROM dedup_ledger
         WHERE pixel_id = ?1 AND event_name = ?2 AND order_id = ?3 AND first_seen_ms >= ?4
         ORDER BY event_id
         LIMIT ?5";

/// Event ids with more than one event name, per pixel.
const REPORT_NAME_CONFLICTS_SQL: &str = "SELECT pixel_id, event_id
         FROM dedup_ledger
         WHERE first_seen_ms >= ?1 AND (?2 IS NULL OR pixel_id = ?2)
         GROUP BY pixel_id, event_id
         HAVING COUNT(DISTINCT event_name) > 1
         ORDER BY pixel_id, event_id
         LIMIT ?3";

const REPORT_NAMES_OF_ID_SQL: &str = "SELECT DISTINCT event_name FROM dedup_ledger
         WHERE pixel_id = ?1 AND event_id = ?2 AND first_seen_ms >= ?3
         ORDER BY event_name";

/// See [`Store::dedup_report`](crate::Store::dedup_report). Runs in one read
/// transaction, so the rows and the lists describe the same snapshot.
pub(crate) fn dedup_report(
    conn: &mut Connection,
    query: &DedupReportQuery,
    now_ms: i64,
    window_ms: i64,
) -> Result<DedupReport, StoreError> {
    let since_ms = query.effective_since_ms(now_ms, window_ms);
    let pixel_id = query.pixel_id.as_deref();
    let max = i64::from(query.effective_max_examples());
    let tx = conn.transaction().map_err(sql_error)?;
    let rows = tx
        .prepare_cached(REPORT_ROWS_SQL)
        .map_err(sql_error)?
        .query_map(params![since_ms, pixel_id], |row| {
            let n = |i: usize| {
                row.get::<_, Option<i64>>(i)
                    .map(|v| count_from_sql(v.unwrap_or(0)))
            };
            Ok(DedupReportRow {
                pixel_id: row.get(0)?,
                event_name: row.get(1)?,
                events: n(2)?,
                browser_only: n(3)?,
                server_only: n(4)?,
                both: n(5)?,
                merged: n(6)?,
                duplicates: n(7)?,
                without_event_id: n(8)?,
                random_event_id: n(9)?,
            })
        })
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)?;

    // One more than asked tells whether a list was cut.
    let order_groups: Vec<(String, String, String, i64)> = tx
        .prepare_cached(REPORT_ORDER_CONFLICTS_SQL)
        .map_err(sql_error)?
        .query_map(params![since_ms, pixel_id, max + 1], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .map_err(sql_error)?
        .collect::<Result<_, _>>()
        .map_err(sql_error)?;
    let name_groups: Vec<(String, String)> = tx
        .prepare_cached(REPORT_NAME_CONFLICTS_SQL)
        .map_err(sql_error)?
        .query_map(params![since_ms, pixel_id, max + 1], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .map_err(sql_error)?
        .collect::<Result<_, _>>()
        .map_err(sql_error)?;
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let truncated = order_groups.len() > limit || name_groups.len() > limit;

    let mut orders = Vec::new();
    {
        let mut ids = tx
            .prepare_cached(REPORT_ORDER_EVENT_IDS_SQL)
            .map_err(sql_error)?;
        for (pixel_id, event_name, order_id, n) in order_groups.into_iter().take(limit) {
            let event_ids = ids
                .query_map(
                    params![
                        pixel_id,
                        event_name,
                        order_id,
                        since_ms,
                        MAX_IDS_PER_EXAMPLE as i64
                    ],
                    |row| row.get(0),
                )
                .map_err(sql_error)?
                .collect::<Result<Vec<String>, _>>()
                .map_err(sql_error)?;
            orders.push(OrderIdConflict {
                pixel_id,
                event_name,
                order_id,
                event_id_count: count_from_sql(n),
                event_ids,
            });
        }
    }
    let mut names = Vec::new();
    {
        let mut of_id = tx
            .prepare_cached(REPORT_NAMES_OF_ID_SQL)
            .map_err(sql_error)?;
        for (pixel_id, event_id) in name_groups.into_iter().take(limit) {
            let event_names = of_id
                .query_map(params![pixel_id, event_id, since_ms], |row| row.get(0))
                .map_err(sql_error)?
                .collect::<Result<Vec<String>, _>>()
                .map_err(sql_error)?;
            names.push(EventIdConflict {
                pixel_id,
                event_id,
                event_names,
            });
        }
    }
    tx.finish().map_err(sql_error)?;
    Ok(DedupReport {
        since_ms,
        until_ms: now_ms,
        rows,
        order_ids_with_several_event_ids: orders,
        event_ids_with_several_event_names: names,
        truncated,
    })
}

const DEAD_LETTER_COLUMNS: &str = "id, pixel_id, event_name, event_id, event_time, source, payload, \
     attempts, test_event_code, enqueued_ms, code, message, detail_json, dead_lettered_ms";

fn dead_letter_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: DeadLetterId::from_raw(row.get(0)?),
        pixel_id: row.get(1)?,
        event_name: row.get(2)?,
        event_id: row.get(3)?,
        event_time: row.get(4)?,
        source: row.get::<_, EventSource>(5)?,
        payload: row.get(6)?,
        attempts: attempts_from_sql(row.get(7)?),
        test_event_code: row.get(8)?,
        first_enqueued_ms: row.get(9)?,
        code: row.get(10)?,
        message: row.get(11)?,
        detail_json: row.get(12)?,
        dead_lettered_ms: row.get(13)?,
    })
}

fn count_from_sql(raw: i64) -> u64 {
    u64::try_from(raw).unwrap_or(0)
}

fn source_set_from_sql(raw: i64) -> SourceSet {
    SourceSet::from_bits(u8::try_from(raw & 0xff).unwrap_or(0))
}

/// See [`Store::audit_list`](crate::Store::audit_list).
pub(crate) fn audit_list(
    conn: &mut Connection,
    filter: &crate::AuditFilter,
) -> Result<Vec<crate::AuditEntry>, StoreError> {
    let mut conditions: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut bind = |condition: &str, value: Value| {
        args.push(value);
        conditions.push(format!("{condition} ?{}", args.len()));
    };
    if let Some(since_ms) = filter.since_ms {
        bind("time_ms >=", Value::Integer(since_ms));
    }
    if let Some(pixel_id) = &filter.pixel_id {
        bind("pixel_id =", Value::Text(pixel_id.clone()));
    }
    if let Some(outcome) = &filter.outcome {
        bind("outcome =", Value::Text(outcome.clone()));
    }
    if let Some(rule_id) = &filter.rule_id {
        bind("rule_id =", Value::Text(rule_id.clone()));
    }
    if let Some(after_id) = filter.after_id {
        bind("id >", Value::Integer(after_id));
    }
    args.push(Value::Integer(i64::from(filter.effective_limit())));
    let where_clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT id, time_ms, pixel_id, event_name, event_id, source, outcome, rule_id, record \
         FROM consent_audit {where_clause} ORDER BY id LIMIT ?{}",
        args.len()
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_error)?;
    stmt.query_map(params_from_iter(args), |row| {
        Ok(crate::AuditEntry {
            id: row.get(0)?,
            row: crate::AuditRow {
                time_ms: row.get(1)?,
                pixel_id: row.get(2)?,
                event_name: row.get(3)?,
                event_id: row.get(4)?,
                source: row.get(5)?,
                outcome: row.get(6)?,
                rule_id: row.get(7)?,
                record_json: row.get(8)?,
            },
        })
    })
    .map_err(sql_error)?
    .collect::<Result<Vec<_>, _>>()
    .map_err(sql_error)
}

/// Up to `limit` dead letters moved to the queue before `before_ms`, oldest
/// first, for [`Store::purge_dead_letters`](crate::Store::purge_dead_letters).
pub(crate) fn dead_letters_before(
    conn: &mut Connection,
    before_ms: i64,
    limit: usize,
) -> Result<Vec<DeadLetterId>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut select = conn
        .prepare_cached(
            "SELECT id FROM dead_letters WHERE dead_lettered_ms < ?1 ORDER BY id LIMIT ?2",
        )
        .map_err(sql_error)?;
    let ids = select
        .query_map(params![before_ms, limit], |row| {
            row.get(0).map(DeadLetterId::from_raw)
        })
        .map_err(sql_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql_error)?;
    Ok(ids)
}
