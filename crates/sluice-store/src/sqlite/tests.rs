//! Query-plan guards: the hot queries must stay index range scans, whatever
//! the backlog. A plan that silently turns into a table scan is invisible in
//! functional tests and fatal at ten million queued events.

use rusqlite::Connection;

use super::{ops, read, schema};

fn migrated() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = Connection::open(dir.path().join("plan.db")).unwrap();
    schema::migrate(&mut conn).unwrap();
    (dir, conn)
}

/// The `EXPLAIN QUERY PLAN` detail lines of `sql`, all parameters bound to 1.
fn plan(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let params = std::iter::repeat_n(1i64, stmt.parameter_count());
    stmt.query_map(rusqlite::params_from_iter(params), |row| row.get(3))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn assert_no_scan(conn: &Connection, sql: &str, table: &str) -> Vec<String> {
    let lines = plan(conn, sql);
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with(&format!("SCAN {table}"))),
        "full scan of {table}:\n{sql}\n{lines:#?}"
    );
    lines
}

#[test]
fn lease_is_a_range_of_the_pixel_due_index() {
    let (_dir, conn) = migrated();
    let lines = assert_no_scan(&conn, ops::LEASE_SELECT_SQL, "queue");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("queue_by_pixel_due (pixel_id=? AND due_ms<?)")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("TEMP B-TREE")),
        "no sort: {lines:#?}"
    );
}

#[test]
fn stats_and_due_pixels_never_scan_the_queue() {
    let (_dir, conn) = migrated();
    for sql in [
        read::DUE_PIXELS_SQL,
        read::PIXEL_COUNTERS_SQL,
        read::LEASED_BY_PIXEL_SQL,
        read::HELD_BY_PIXEL_SQL,
    ] {
        assert_no_scan(&conn, sql, "queue");
        assert_no_scan(&conn, sql, "q");
    }
}

#[test]
fn ledger_lookup_and_purge_use_indexes() {
    let (_dir, conn) = migrated();
    let lines = assert_no_scan(&conn, ops::LEDGER_MARK_DUPLICATE_SQL, "dedup_ledger");
    assert!(
        lines.iter().any(|l| l.contains("PRIMARY KEY")),
        "{lines:#?}"
    );
    let lines = assert_no_scan(&conn, ops::PURGE_LEDGER_SQL, "dedup_ledger");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("dedup_ledger_by_first_seen")),
        "{lines:#?}"
    );
}

#[test]
fn releasing_every_lease_walks_only_the_leased_rows() {
    let (_dir, conn) = migrated();
    let lines = assert_no_scan(&conn, ops::RELEASE_ALL_LEASES_SQL, "queue");
    assert!(
        lines.iter().any(|l| l.contains("queue_by_lease")),
        "{lines:#?}"
    );
}

#[test]
fn forget_rechecks_only_rows_newer_or_merged_since_its_scan() {
    let (_dir, conn) = migrated();
    let lines = assert_no_scan(&conn, ops::ROWS_AFTER_SCAN_SQL, "queue");
    assert!(
        lines.iter().any(|l| l.contains("INTEGER PRIMARY KEY")),
        "{lines:#?}"
    );
    let lines = assert_no_scan(&conn, ops::ROWS_MERGED_AFTER_SCAN_SQL, "queue");
    assert!(
        lines.iter().any(|l| l.contains("queue_by_merge")),
        "{lines:#?}"
    );
}

#[test]
fn held_copy_lookup_uses_the_partial_key_index() {
    let (_dir, conn) = migrated();
    let lines = assert_no_scan(&conn, ops::HELD_COPY_SQL, "queue");
    assert!(
        lines.iter().any(|l| l.contains("queue_held_by_key")),
        "{lines:#?}"
    );
}

#[test]
fn migration_is_idempotent_and_versioned() {
    let (_dir, mut conn) = migrated();
    schema::migrate(&mut conn).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let app: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        (version, app),
        (schema::SCHEMA_VERSION, schema::APPLICATION_ID)
    );
}

#[test]
fn connections_keep_small_page_caches_and_the_statement_journal_off_the_heap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pragmas.db");
    let writer = super::open_writer(&path, &super::SqliteOptions::default()).unwrap();
    let pragma = |conn: &Connection, name: &str| -> i64 {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .unwrap()
    };
    // 1 = FILE: statement journals spill to a temp file past 64 KiB.
    assert_eq!(pragma(&writer, "temp_store"), 1);
    assert_eq!(pragma(&writer, "cache_size"), -super::WRITER_CACHE_KIB);
    let pool = read::ReadPool::new(path, std::time::Duration::from_secs(1), 2);
    let cache = pool.with(|conn| Ok(pragma(conn, "cache_size"))).unwrap();
    assert_eq!(cache, -super::READER_CACHE_KIB);
    assert_eq!(pool.shrink_idle(), 1, "the idle reader is shrunk");
}

#[tokio::test]
async fn an_idle_writer_gives_the_page_caches_back_once_per_idle_spell() {
    use crate::conformance::event;
    use crate::{EventSource, Store};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let store = super::SqliteStore::open(
        dir.path().join("idle.db"),
        super::SqliteOptions {
            synchronous_full: false,
            idle_shrink_after: Duration::from_millis(20),
            ..super::SqliteOptions::default()
        },
    )
    .await
    .unwrap();
    let event = |i: usize| event("1", "Lead", &format!("e{i}"), EventSource::Backend);
    // Polls a condition against a generous deadline (no timing is asserted).
    async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    assert_eq!(
        store.writer_stats().idle_shrinks,
        0,
        "nothing to give back yet"
    );
    store
        .enqueue((0..50).map(event).collect(), 1_000)
        .await
        .unwrap();
    store.stats(1_000).await.unwrap();
    eventually("an idle shrink", || store.writer_stats().idle_shrinks >= 1).await;

    // The store works as before, and the next idle spell shrinks again.
    let leased = store.lease("1", 100, 60_000, 2_000).await.unwrap();
    assert_eq!(leased.len(), 50);
    assert!(store.writer_stats().idle_shrinks >= 1);
    eventually("a second idle shrink", || {
        store.writer_stats().idle_shrinks >= 2
    })
    .await;
    assert_eq!(store.stats(2_000).await.unwrap().queued, 50);
}

/// `forget` scans the queue on a reader, then the writer deletes. Between the
/// two, a row may be enqueued with the key, and a held row may gain the key
/// by a merge: the writer's re-check must find both.
#[test]
fn forget_finds_rows_added_or_merged_after_its_scan() {
    use crate::conformance::event;
    use crate::{EventSource, MergeFn, MergeOutcome, MergeRequest, NewEvent};

    const NOW: i64 = 1_700_000_000_000;
    const WINDOW: i64 = 48 * 3600 * 1000;
    let key = "a".repeat(64);
    let other = "b".repeat(64);
    let event = |id: &str, source: EventSource, key: &str, hold: Option<i64>| NewEvent {
        user_keys: vec![key.to_owned()],
        hold_until_ms: hold,
        ..event("p1", "Purchase", id, source)
    };
    let (_dir, mut conn) = migrated();
    let before = [
        event("scanned", EventSource::Backend, &key, None),
        event("held", EventSource::Browser, &other, Some(NOW + 60_000)),
        event("unrelated", EventSource::Backend, &other, None),
    ];
    ops::enqueue(&conn, &before, NOW, WINDOW).unwrap();

    let scan = read::queue_key_scan(&mut conn, std::slice::from_ref(&key)).unwrap();
    assert_eq!(scan.matching.len(), 1, "only `scanned` carries the key yet");

    let after = [event("later", EventSource::Backend, &key, None)];
    ops::enqueue(&conn, &after, NOW, WINDOW).unwrap();
    let merge: MergeFn = Box::new(|held: &[u8]| Some(held.to_vec()));
    let request = MergeRequest {
        pixel_id: "p1".to_owned(),
        event_name: "Purchase".to_owned(),
        event_id: "held".to_owned(),
        source: EventSource::Backend,
        user_keys: vec![key.clone()],
        order_id: None,
    };
    let merged = ops::merge_held(&conn, &request, &merge, NOW + 1).unwrap();
    assert!(matches!(merged, MergeOutcome::Merged { .. }), "{merged:?}");

    let report = ops::forget(&conn, std::slice::from_ref(&key), &scan).unwrap();
    assert_eq!(report.queued, 3, "scanned, later and held: {report:?}");
    let left: Vec<String> = conn
        .prepare("SELECT event_id FROM queue ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(left, ["unrelated"]);
}
