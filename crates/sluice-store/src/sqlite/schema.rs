//! The SQLite on-disk format, and its migration.
//!
//! # Format (schema version 1)
//!
//! The file is marked with `PRAGMA application_id = 0x736c6963` ("slic") and
//! versioned with `PRAGMA user_version`. Opening a file with another
//! application id, or with tables but no version, fails with
//! `StoreError::Corrupt`; a newer version fails with `SchemaTooNew`.
//!
//! - `queue`: one row per event waiting for delivery. `id` is
//!   `AUTOINCREMENT`, so ids are never reused and grow with arrival.
//!   `due_ms` is the single instant at which the row may next be leased: on
//!   enqueue `max(now, hold_until)`, on lease the lease expiry, on retry
//!   the next attempt. Leasing is therefore one range scan of
//!   `queue_by_pixel_due (pixel_id, due_ms, id)`, whatever the backlog, and a
//!   crashed worker's rows come back by themselves once `due_ms` passes.
//!   `leased_until_ms` and `hold_until_ms` are kept (and indexed partially,
//!   non-NULL only) only so that `stats` can count leased and held rows
//!   without scanning. A lease clears `hold_until_ms`.
//! - `queue_user_keys (row_id, user_key)`: the hashed identifiers of each
//!   queued event, indexed by key for `forget` (replaced in version 4).
//! - `dead_letters` / `dead_letter_user_keys`: the same for the DLQ, plus
//!   the reason. Their ids are a separate sequence.
//! - `dedup_ledger`: one row per key `(pixel_id, event_name, event_id)`
//!   first seen within the window; `sources` is a bitmask of
//!   `EventSource::bit`. `first_seen_ms` is indexed for `purge`.
//! - `pixel_counters`: per pixel, maintained in the same transactions as
//!   the rows they count: `queued`, `dead_letters`, the monotonic
//!   `delivered_total` / `duplicates_total`, `last_delivered_ms`. `stats`
//!   reads these instead of `COUNT(*)` over millions of rows.
//! - `store_meta (key, value)`: `writable_probe` is bumped by `check_writable`.
//! - `consent_audit` (version 2): one row per consent decision, searched by
//!   time; the row's `record` is the decision as JSON, without personal data.
//! - Version 3 (dual tracking): `dedup_ledger` gains `order_id` (the first
//!   copy's `custom_data.order_id`, capped), `id_origin` (`EventIdOrigin`
//!   code: the sender's id, derived from the order id, or random) and
//!   `merged` (copies merged into the held first copy), for the dedup report;
//!   `queue_held_by_key` indexes held rows by dedup key (partial, so only
//!   events under a merge hold pay for it), for `merge_held`. The report's
//!   groupings scan the live ledger (no extra index on the hot insert path).
//!
//! - Version 4 (fewer index writes per event): `queue_user_keys (row_id,
//!   user_key)` and its index `queue_user_keys_by_key` (every key written
//!   twice on enqueue and deleted twice on ack) become one table
//!   `queue_keys (user_key, row_id)`, the primary key that `forget` seeks
//!   by key, and the event's keys move into `queue.user_keys` (unique keys
//!   joined with U+001F, which a key may not contain; NULL for none), which
//!   `ack`, `dead_letter` and `merge_held` read to find the key rows of a
//!   row. The DLQ keeps `dead_letter_user_keys` with its key index (a dead
//!   letter is written once, not per event on the hot path).
//!
//! - Version 5 (no user-key index on the hot path): `queue_keys` goes. Its
//!   three random-key inserts per event on enqueue and three deletes on ack
//!   cost the writer ~15 % of its CPU and a fifth of the bytes it wrote.
//!   `forget` now scans `queue.user_keys` on a read connection (off the
//!   writer), and the writer re-checks only what may have changed since that
//!   snapshot: rows with a higher id, and rows merged since, which
//!   `merge_held` marks with `queue.merge_seq`, drawn from
//!   `store_meta.merge_seq` and indexed partially (merged rows only).
//!
//! Sources are stored as their text name so that the `sqlite3` shell is
//! readable for operators; payloads are BLOBs and stay opaque.

use rusqlite::Connection;

use super::sql_error;
use crate::StoreError;

/// `PRAGMA application_id` of a sluice store ("slic").
pub(crate) const APPLICATION_ID: i64 = 0x736c_6963;

/// The schema version this build writes and understands.
pub(crate) const SCHEMA_VERSION: i64 = 5;

/// Version 1: the whole schema described in the module header.
const SCHEMA_V1: &str = r#"
CREATE TABLE queue (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    pixel_id         TEXT    NOT NULL,
    event_name       TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,
    event_time       INTEGER NOT NULL,
    source           TEXT    NOT NULL,
    test_event_code  TEXT,
    enqueued_ms      INTEGER NOT NULL,
    due_ms           INTEGER NOT NULL,
    hold_until_ms    INTEGER,
    leased_until_ms  INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    payload          BLOB    NOT NULL
);
CREATE INDEX queue_by_pixel_due ON queue (pixel_id, due_ms, id);
CREATE INDEX queue_by_lease ON queue (leased_until_ms) WHERE leased_until_ms IS NOT NULL;
CREATE INDEX queue_by_hold ON queue (hold_until_ms) WHERE hold_until_ms IS NOT NULL;

CREATE TABLE queue_user_keys (
    row_id   INTEGER NOT NULL,
    user_key TEXT    NOT NULL,
    PRIMARY KEY (row_id, user_key)
) WITHOUT ROWID;
CREATE INDEX queue_user_keys_by_key ON queue_user_keys (user_key);

CREATE TABLE dead_letters (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    pixel_id          TEXT    NOT NULL,
    event_name        TEXT    NOT NULL,
    event_id          TEXT    NOT NULL,
    event_time        INTEGER NOT NULL,
    source            TEXT    NOT NULL,
    test_event_code   TEXT,
    enqueued_ms       INTEGER NOT NULL,
    attempts          INTEGER NOT NULL,
    code              TEXT    NOT NULL,
    message           TEXT    NOT NULL,
    detail_json       TEXT,
    dead_lettered_ms  INTEGER NOT NULL,
    payload           BLOB    NOT NULL
);
CREATE INDEX dead_letters_by_pixel ON dead_letters (pixel_id, id);

CREATE TABLE dead_letter_user_keys (
    row_id   INTEGER NOT NULL,
    user_key TEXT    NOT NULL,
    PRIMARY KEY (row_id, user_key)
) WITHOUT ROWID;
CREATE INDEX dead_letter_user_keys_by_key ON dead_letter_user_keys (user_key);

CREATE TABLE dedup_ledger (
    pixel_id       TEXT    NOT NULL,
    event_name     TEXT    NOT NULL,
    event_id       TEXT    NOT NULL,
    first_seen_ms  INTEGER NOT NULL,
    last_seen_ms   INTEGER NOT NULL,
    first_source   TEXT    NOT NULL,
    sources        INTEGER NOT NULL,
    duplicates     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (pixel_id, event_name, event_id)
) WITHOUT ROWID;
CREATE INDEX dedup_ledger_by_first_seen ON dedup_ledger (first_seen_ms);

CREATE TABLE pixel_counters (
    pixel_id           TEXT    PRIMARY KEY,
    queued             INTEGER NOT NULL DEFAULT 0,
    dead_letters       INTEGER NOT NULL DEFAULT 0,
    delivered_total    INTEGER NOT NULL DEFAULT 0,
    duplicates_total   INTEGER NOT NULL DEFAULT 0,
    last_delivered_ms  INTEGER
) WITHOUT ROWID;

CREATE TABLE store_meta (
    key   TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO store_meta (key, value) VALUES ('writable_probe', 0);
"#;

/// Version 2: the consent audit. One row per consent decision; `record` is
/// the caller's JSON (codes and names, no personal data). `time_ms` is
/// indexed for the retention purge and time-window queries.
const SCHEMA_V2_DELTA: &str = r#"
CREATE TABLE consent_audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms     INTEGER NOT NULL,
    pixel_id    TEXT    NOT NULL,
    event_name  TEXT    NOT NULL,
    event_id    TEXT,
    source      TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    rule_id     TEXT    NOT NULL,
    record      TEXT    NOT NULL
);
CREATE INDEX consent_audit_by_time ON consent_audit (time_ms);
"#;

/// Version 3: dual tracking (see the module header).
const SCHEMA_V3_DELTA: &str = r#"
ALTER TABLE dedup_ledger ADD COLUMN order_id TEXT;
ALTER TABLE dedup_ledger ADD COLUMN id_origin INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dedup_ledger ADD COLUMN merged INTEGER NOT NULL DEFAULT 0;
CREATE INDEX queue_held_by_key ON queue (pixel_id, event_name, event_id)
    WHERE hold_until_ms IS NOT NULL;
"#;

/// Version 4: one user-key row per key and event (see the module header).
/// Existing rows move over; their keys are joined in key order.
const SCHEMA_V4_DELTA: &str = r#"
ALTER TABLE queue ADD COLUMN user_keys TEXT;
CREATE TABLE queue_keys (
    user_key TEXT    NOT NULL,
    row_id   INTEGER NOT NULL,
    PRIMARY KEY (user_key, row_id)
) WITHOUT ROWID;
INSERT INTO queue_keys (user_key, row_id) SELECT user_key, row_id FROM queue_user_keys;
UPDATE queue SET user_keys = (
    SELECT group_concat(user_key, char(31)) FROM (
        SELECT user_key FROM queue_user_keys WHERE row_id = queue.id ORDER BY user_key))
WHERE id IN (SELECT row_id FROM queue_user_keys);
DROP TABLE queue_user_keys;
"#;

/// Version 5: `forget` scans the queue instead of an index of its keys (see
/// the module header). `merge_seq` numbers the merges, so `forget` can find
/// the rows that gained keys after its scan.
const SCHEMA_V5_DELTA: &str = r#"
DROP TABLE queue_keys;
ALTER TABLE queue ADD COLUMN merge_seq INTEGER;
CREATE INDEX queue_by_merge ON queue (merge_seq) WHERE merge_seq IS NOT NULL;
INSERT INTO store_meta (key, value) VALUES ('merge_seq', 0);
"#;

/// Brings the file at `conn` to [`SCHEMA_VERSION`], in one transaction.
///
/// Runs on the writer connection before anything else touches the file.
/// Safe against a concurrent opener: `BEGIN IMMEDIATE` takes the write lock
/// before the version is read.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql_error)?;

    let application_id: i64 = tx
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(sql_error)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(sql_error)?;
    let tables: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |row| row.get(0),
        )
        .map_err(sql_error)?;

    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(StoreError::Corrupt {
            message: format!("file has application_id {application_id:#x}, not a sluice store"),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == 0 && tables > 0 {
        return Err(StoreError::Corrupt {
            message: "file has tables but no sluice schema version".to_owned(),
        });
    }

    if version < 1 {
        tx.execute_batch(SCHEMA_V1).map_err(sql_error)?;
    }
    if version < 2 {
        tx.execute_batch(SCHEMA_V2_DELTA).map_err(sql_error)?;
    }
    if version < 3 {
        tx.execute_batch(SCHEMA_V3_DELTA).map_err(sql_error)?;
    }
    if version < 4 {
        tx.execute_batch(SCHEMA_V4_DELTA).map_err(sql_error)?;
    }
    if version < 5 {
        tx.execute_batch(SCHEMA_V5_DELTA).map_err(sql_error)?;
    }

    if version < SCHEMA_VERSION {
        // PRAGMAs take no bound parameters; both values are constants.
        tx.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION};"
        ))
        .map_err(sql_error)?;
        tracing::info!(
            from = version,
            to = SCHEMA_VERSION,
            "migrated sqlite store schema"
        );
    }
    tx.commit().map_err(sql_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-2 file (as the previous release wrote it) with a ledger
    /// entry gains the version-3 columns with neutral values.
    #[test]
    fn version_2_files_migrate_to_version_3() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("v2.db")).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute_batch(SCHEMA_V2_DELTA).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 2;
             INSERT INTO dedup_ledger (pixel_id, event_name, event_id, first_seen_ms,
                 last_seen_ms, first_source, sources, duplicates)
             VALUES ('p1', 'Purchase', 'order-1', 1, 2, 'browser', 3, 1);"
        ))
        .unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let row: (Option<String>, i64, i64, i64) = conn
            .query_row(
                "SELECT order_id, id_origin, merged, duplicates FROM dedup_ledger",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(row, (None, 0, 0, 1));
    }

    /// A version-3 file with queued events and their user keys: the keys
    /// move to `queue_keys` and `queue.user_keys`, and the old table goes.
    #[test]
    fn version_3_files_migrate_their_user_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("v3.db")).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute_batch(SCHEMA_V2_DELTA).unwrap();
        conn.execute_batch(SCHEMA_V3_DELTA).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 3;
             INSERT INTO queue (id, pixel_id, event_name, event_id, event_time, source,
                 enqueued_ms, due_ms, payload)
             VALUES (1, 'p1', 'Purchase', 'a', 1, 'backend', 1, 1, x''),
                    (2, 'p1', 'Purchase', 'b', 1, 'backend', 1, 1, x''),
                    (3, 'p1', 'Purchase', 'c', 1, 'backend', 1, 1, x'');
             INSERT INTO queue_user_keys (row_id, user_key)
             VALUES (1, 'kb'), (1, 'ka'), (2, 'ka');"
        ))
        .unwrap();
        migrate(&mut conn).unwrap();
        let pairs = |sql: &str| -> Vec<(rusqlite::types::Value, rusqlite::types::Value)> {
            conn.prepare(sql)
                .unwrap()
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let text = |t: &str| rusqlite::types::Value::Text(t.to_owned());
        let int = rusqlite::types::Value::Integer;
        assert_eq!(
            pairs("SELECT id, user_keys FROM queue ORDER BY id"),
            [
                (int(1), text("ka\u{1f}kb")),
                (int(2), text("ka")),
                (int(3), rusqlite::types::Value::Null)
            ]
        );
        let old: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema
                 WHERE name LIKE 'queue_user_keys%' OR name = 'queue_keys'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old, 0, "the key tables and their index are gone");
        let merge_seq: i64 = conn
            .query_row(
                "SELECT value FROM store_meta WHERE key = 'merge_seq'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(merge_seq, 0, "no merge numbered yet");
    }

    /// A version-4 file keeps its queued events and their `user_keys`;
    /// `queue_keys` goes.
    #[test]
    fn version_4_files_drop_the_key_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("v4.db")).unwrap();
        for delta in [SCHEMA_V1, SCHEMA_V2_DELTA, SCHEMA_V3_DELTA, SCHEMA_V4_DELTA] {
            conn.execute_batch(delta).unwrap();
        }
        conn.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 4;
             INSERT INTO queue (id, pixel_id, event_name, event_id, event_time, source,
                 enqueued_ms, due_ms, payload, user_keys)
             VALUES (7, 'p1', 'Purchase', 'a', 1, 'backend', 1, 1, x'', 'ka');
             INSERT INTO queue_keys (user_key, row_id) VALUES ('ka', 7);"
        ))
        .unwrap();
        migrate(&mut conn).unwrap();
        let row: (i64, String, Option<i64>) = conn
            .query_row("SELECT id, user_keys, merge_seq FROM queue", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(row, (7, "ka".to_owned(), None));
        let gone: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'queue_keys'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(gone, 0);
    }
}
