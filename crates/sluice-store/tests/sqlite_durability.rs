//! SQLite-specific guarantees that the conformance suite cannot see: data
//! survives a reopen and a `kill -9`, group commit really batches, one
//! failing command does not sink its batch (but an aborted transaction
//! fails every command in it), and foreign or newer files are refused.
//!
//! Deterministic batching: a second connection holds the write lock while
//! commands pile up in the writer's channel (`WriterStats::submitted` tells
//! when they are all there); releasing the lock lets the writer take them
//! in one transaction.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use sluice_store::conformance::{T0, event};
use sluice_store::{
    DeadLetterReason, DlqFilter, EnqueueOutcome, EventSource, NewEvent, SqliteOptions, SqliteStore,
    Store,
};

const LEASE_MS: i64 = 60_000;

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data").join("sluice.db")
}

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default())
        .await
        .expect("open store")
}

/// Waits (bounded) until `cond` holds, polling on tokio's timer.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A side connection holding SQLite's write lock until dropped or committed.
fn hold_write_lock(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("side connection");
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE")
        .expect("take write lock");
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let (queued_ids, dead_id) = {
        let store = open(&path).await;
        let ids: Vec<_> = store
            .enqueue(
                (0..5)
                    .map(|i| event("p1", "Purchase", &format!("e{i}"), EventSource::Backend))
                    .collect(),
                T0,
            )
            .await
            .unwrap()
            .iter()
            .map(|o| o.queued_id().unwrap())
            .collect();
        let leased = store.lease("p1", 2, LEASE_MS, T0).await.unwrap();
        assert_eq!(leased.len(), 2);
        let dead = store
            .dead_letter(
                &ids[4..],
                DeadLetterReason {
                    code: "bad".into(),
                    message: "bad".into(),
                    detail_json: None,
                },
                T0,
            )
            .await
            .unwrap();
        store.ack(&ids[2..3], T0).await.unwrap();
        store.close().await.unwrap();
        (ids, dead[0])
    };

    let store = open(&path).await;
    let stats = store.stats(T0).await.unwrap();
    assert_eq!(
        (
            stats.queued,
            stats.leased,
            stats.dead_letters,
            stats.delivered_total
        ),
        (3, 2, 1, 1)
    );
    // The two leased events stay leased across the restart until the lease
    // runs out, then come back.
    let due_now = store.lease("p1", 10, LEASE_MS, T0 + 1).await.unwrap();
    assert_eq!(
        due_now.iter().map(|e| e.id).collect::<Vec<_>>(),
        [queued_ids[3]]
    );
    let after_expiry = store
        .lease("p1", 10, LEASE_MS, T0 + LEASE_MS)
        .await
        .unwrap();
    assert_eq!(
        after_expiry.iter().map(|e| e.id).collect::<Vec<_>>(),
        [queued_ids[0], queued_ids[1]]
    );
    assert_eq!(
        store.dlq_get(dead_id).await.unwrap().unwrap().event_id,
        "e4"
    );
    // The dedup ledger survived too.
    let again = store
        .enqueue(
            vec![event("p1", "Purchase", "e0", EventSource::Browser)],
            T0 + 2,
        )
        .await
        .unwrap();
    assert!(again[0].is_duplicate());
    // And ids keep growing past everything ever handed out.
    let fresh = store
        .enqueue(
            vec![event("p1", "Purchase", "new", EventSource::Backend)],
            T0 + 2,
        )
        .await
        .unwrap();
    assert!(fresh[0].queued_id().unwrap() > queued_ids[4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_without_close_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path).await;
    store
        .enqueue(vec![event("p1", "Purchase", "a", EventSource::Backend)], T0)
        .await
        .unwrap();
    drop(store);
    // The old writer may still be shutting down: a second connection to the
    // same file is fine in WAL mode.
    let store = open(&path).await;
    assert_eq!(store.stats(T0).await.unwrap().queued, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_takes_many_concurrent_enqueues_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let options = SqliteOptions {
        busy_timeout: Duration::from_secs(60),
        ..SqliteOptions::default()
    };
    let store = Arc::new(SqliteStore::open(&path, options).await.unwrap());
    let before = store.writer_stats();

    let lock = hold_write_lock(&path);
    let requests = 1000u64;
    let mut tasks = Vec::new();
    for i in 0..requests {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .enqueue(
                    vec![event(
                        "p1",
                        "Purchase",
                        &format!("e{i}"),
                        EventSource::Browser,
                    )],
                    T0,
                )
                .await
        }));
    }
    wait_until("all enqueues to reach the writer", || {
        store.writer_stats().submitted - before.submitted == requests
    })
    .await;
    lock.execute_batch("COMMIT").unwrap();

    for task in tasks {
        let outcomes = task.await.unwrap().expect("enqueue");
        assert!(matches!(outcomes[..], [EnqueueOutcome::Queued { .. }]));
    }
    let after = store.writer_stats();
    let transactions = after.transactions - before.transactions;
    assert_eq!(after.commands - before.commands, requests);
    assert!(
        transactions <= 2,
        "{requests} single-event enqueues took {transactions} transactions"
    );
    assert_eq!(store.stats(T0).await.unwrap().queued, requests);
}

type EnqueueTask = tokio::task::JoinHandle<Result<Vec<EnqueueOutcome>, sluice_store::StoreError>>;

/// Spawns one enqueue per batch, each only after the previous one reached
/// the writer's channel, so their order in the channel is known.
async fn submit_in_order(store: &Arc<SqliteStore>, batches: &[&[&str]]) -> Vec<EnqueueTask> {
    let mut tasks = Vec::new();
    for ids in batches {
        let events: Vec<NewEvent> = ids
            .iter()
            .map(|id| event("p1", "Purchase", id, EventSource::Backend))
            .collect();
        let target = store.writer_stats().submitted + 1;
        let task_store = Arc::clone(store);
        tasks.push(tokio::spawn(
            async move { task_store.enqueue(events, T0).await },
        ));
        wait_until("the command to be queued", || {
            store.writer_stats().submitted >= target
        })
        .await;
    }
    tasks
}

async fn join_all(
    tasks: Vec<EnqueueTask>,
) -> Vec<Result<Vec<EnqueueOutcome>, sluice_store::StoreError>> {
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("task"));
    }
    out
}

/// Opens a store with a long busy timeout and installs `trigger_sql`
/// (a stand-in for a statement failure) through a side connection.
async fn open_with_trigger(path: &Path, trigger_sql: &str) -> Arc<SqliteStore> {
    let options = SqliteOptions {
        busy_timeout: Duration::from_secs(60),
        ..SqliteOptions::default()
    };
    let store = Arc::new(SqliteStore::open(path, options).await.unwrap());
    Connection::open(path)
        .unwrap()
        .execute_batch(trigger_sql)
        .unwrap();
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_does_not_sink_the_rest_of_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open_with_trigger(
        &path,
        "CREATE TRIGGER poison BEFORE INSERT ON queue WHEN NEW.event_id = 'poison'
         BEGIN SELECT RAISE(ABORT, 'poisoned event'); END;",
    )
    .await;

    let lock = hold_write_lock(&path);
    let before = store.writer_stats();
    let tasks = submit_in_order(&store, &[&["good-1"], &["ok-2", "poison"], &["good-3"]]).await;
    lock.execute_batch("COMMIT").unwrap();
    let results = join_all(tasks).await;

    assert!(results[0].is_ok());
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(err.code(), "store_backend", "{err}");
    assert!(results[2].is_ok());
    let after = store.writer_stats();
    assert_eq!(
        after.transactions - before.transactions,
        1,
        "all three were in one transaction"
    );
    assert_eq!(
        after.replays - before.replays,
        1,
        "the batch was applied again under savepoints"
    );

    let leased = store.lease("p1", 10, LEASE_MS, T0).await.unwrap();
    let names: Vec<_> = leased.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(
        names,
        ["good-1", "good-3"],
        "the failed command left no row"
    );
    assert_eq!(
        store
            .dedup_lookup("p1", "Purchase", "ok-2", T0)
            .await
            .unwrap(),
        None,
        "nor a ledger entry: the client may send it again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_transaction_fails_every_command_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    // RAISE(ROLLBACK) aborts the whole transaction, as SQLITE_FULL or an
    // I/O error would.
    let store = open_with_trigger(
        &path,
        "CREATE TRIGGER doom BEFORE INSERT ON queue WHEN NEW.event_id = 'doom'
         BEGIN SELECT RAISE(ROLLBACK, 'transaction aborted'); END;",
    )
    .await;

    let lock = hold_write_lock(&path);
    let tasks = submit_in_order(&store, &[&["early"], &["doom"], &["late"]]).await;
    lock.execute_batch("COMMIT").unwrap();
    let results = join_all(tasks).await;

    assert!(
        results[0].is_err(),
        "applied before the abort but never committed: must not be acknowledged"
    );
    assert!(results[1].is_err());
    assert!(results[2].is_ok(), "the next transaction is unaffected");
    let leased = store.lease("p1", 10, LEASE_MS, T0).await.unwrap();
    let names: Vec<_> = leased.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(names, ["late"]);
    store.check_writable().await.expect("the writer carries on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_write_lock_fails_writes_as_busy_then_clears() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let options = SqliteOptions {
        busy_timeout: Duration::from_millis(20),
        ..SqliteOptions::default()
    };
    let store = Arc::new(SqliteStore::open(&path, options).await.unwrap());
    let lock = hold_write_lock(&path);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .enqueue(
                    vec![event(
                        "p1",
                        "Purchase",
                        &format!("e{i}"),
                        EventSource::Backend,
                    )],
                    T0,
                )
                .await
        }));
    }
    for task in tasks {
        let err = task.await.unwrap().expect_err("the lock is held");
        assert_eq!(err.code(), "store_busy", "{err}");
        assert!(err.is_transient());
    }
    assert_eq!(
        store.check_writable().await.unwrap_err().code(),
        "store_busy"
    );
    lock.execute_batch("ROLLBACK").unwrap();
    let mut log = Vec::new();
    for _ in 0..5 {
        log.push(format!(
            "{:?} {:?}",
            store.check_writable().await,
            store.writer_stats()
        ));
    }
    eprintln!("{log:#?}");

    store.check_writable().await.expect("writable again");
    let ids = store
        .enqueue(
            vec![event("p1", "Purchase", "e0", EventSource::Backend)],
            T0,
        )
        .await
        .unwrap();
    assert!(
        ids[0].queued_id().is_some(),
        "the failed attempt left no ledger entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_files_that_are_not_sluice_stores() {
    let dir = tempfile::tempdir().unwrap();

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x42u8; 8192]).unwrap();
    let err = SqliteStore::open(&garbage, SqliteOptions::default())
        .await
        .err()
        .expect("garbage refused");
    assert_eq!(err.code(), "store_corrupt", "{err}");

    let foreign = dir.path().join("foreign.db");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE customers (email TEXT)")
        .unwrap();
    let err = SqliteStore::open(&foreign, SqliteOptions::default())
        .await
        .err()
        .expect("foreign schema refused");
    assert_eq!(err.code(), "store_corrupt", "{err}");

    let newer = dir.path().join("newer.db");
    drop(open(&newer).await);
    Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = SqliteStore::open(&newer, SqliteOptions::default())
        .await
        .err()
        .expect("newer schema refused");
    assert_eq!(err.code(), "store_schema_too_new", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_every_acknowledged_write() {
    // Reads run on other connections: once a write returned, they see it.
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db_path(&dir)).await;
    for i in 0..50u64 {
        store
            .enqueue(
                vec![event(
                    "p1",
                    "Purchase",
                    &format!("e{i}"),
                    EventSource::Backend,
                )],
                T0,
            )
            .await
            .unwrap();
        assert_eq!(store.stats(T0).await.unwrap().queued, i + 1);
    }
    let ids: Vec<_> = store
        .lease("p1", 50, LEASE_MS, T0)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    store
        .dead_letter(
            &ids,
            DeadLetterReason {
                code: "c".into(),
                message: "m".into(),
                detail_json: None,
            },
            T0,
        )
        .await
        .unwrap();
    assert_eq!(
        store.dlq_list(&DlqFilter::default()).await.unwrap().len(),
        50
    );
}

/// The user keys (hashes of personal identifiers) follow their event
/// through merge, dead letter, replay and ack, and go with it: nothing is
/// left behind at rest once every event is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_key_rows_live_exactly_as_long_as_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = open(&path).await;
    let key_rows = |path: &Path| -> (i64, i64, Vec<Option<String>>) {
        let conn = Connection::open(path).unwrap();
        let count = |table: &str| -> i64 {
            conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        let columns: Vec<Option<String>> = conn
            .prepare("SELECT user_keys FROM queue ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        // The queue keeps an event's keys in its own row (schema 5).
        let queued_keys = columns
            .iter()
            .flatten()
            .map(|joined| joined.split(sluice_store::USER_KEY_SEPARATOR).count() as i64)
            .sum();
        (queued_keys, count("dead_letter_user_keys"), columns)
    };

    let mut a = event("p1", "Purchase", "a", EventSource::Browser);
    a.user_keys = vec!["kb".into(), "ka".into(), "kb".into()];
    a.hold_until_ms = Some(T0 + 60_000);
    let mut b = event("p1", "Purchase", "b", EventSource::Backend);
    b.user_keys = Vec::new();
    let c = event("p1", "Purchase", "c", EventSource::Backend);
    store.enqueue(vec![a, b, c], T0).await.unwrap();
    assert_eq!(
        key_rows(&path),
        (
            3,
            0,
            vec![Some("ka\u{1f}kb".into()), None, Some("key-c".into())]
        )
    );

    // A merge adds the later copy's keys to the held one.
    let merged = store
        .merge_held(
            sluice_store::MergeRequest {
                pixel_id: "p1".into(),
                event_name: "Purchase".into(),
                event_id: "a".into(),
                source: EventSource::Backend,
                user_keys: vec!["kc".into(), "ka".into()],
                order_id: None,
            },
            Box::new(|held: &[u8]| Some(held.to_vec())),
            T0 + 1,
        )
        .await
        .unwrap();
    assert!(matches!(merged, sluice_store::MergeOutcome::Merged { .. }));
    assert_eq!(key_rows(&path).0, 4);
    assert_eq!(key_rows(&path).2[0].as_deref(), Some("ka\u{1f}kb\u{1f}kc"));

    // Dead-letter "a": its keys move to the DLQ; replay brings them back.
    let leased = store.lease("p1", 10, LEASE_MS, T0 + 1).await.unwrap();
    assert_eq!(leased.len(), 3);
    let reason = DeadLetterReason {
        code: "bad".into(),
        message: "bad".into(),
        detail_json: None,
    };
    let a_id = leased.iter().find(|e| e.event_id == "a").unwrap().id;
    let dead = store.dead_letter(&[a_id], reason, T0 + 2).await.unwrap();
    assert_eq!(key_rows(&path).0, 1, "only c's key left in the queue");
    assert_eq!(key_rows(&path).1, 3);
    assert_eq!(store.dlq_replay(&dead, None, T0 + 3).await.unwrap(), 1);
    let (queue_keys, dead_keys, columns) = key_rows(&path);
    assert_eq!((queue_keys, dead_keys), (4, 0));
    assert_eq!(columns[2].as_deref(), Some("ka\u{1f}kb\u{1f}kc"));
    assert_eq!(store.forget(&["kc".into()]).await.unwrap().queued, 1);
    assert_eq!(key_rows(&path).0, 1);

    // Delivered: nothing of the keys stays.
    let ids: Vec<_> = leased.iter().map(|e| e.id).collect();
    assert_eq!(store.ack(&ids, T0 + 4).await.unwrap(), 2);
    assert_eq!(key_rows(&path), (0, 0, vec![]));

    // A key may not contain the separator of `queue.user_keys`.
    let mut bad = event("p1", "Purchase", "d", EventSource::Backend);
    bad.user_keys = vec!["x\u{1f}y".into()];
    assert_eq!(
        store.enqueue(vec![bad], T0).await.unwrap_err().code(),
        "store_invalid_input"
    );
    store.close().await.unwrap();
}

/// A new store gets 8 KiB pages; a store created with 4 KiB pages keeps
/// them (SQLite cannot change a WAL file's page size) and its events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_stores_get_8_kib_pages_and_old_ones_keep_theirs() {
    let page_size = |path: &Path| -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.sqlite");
    open(&new).await.close().await.unwrap();
    assert_eq!(page_size(&new), 8192);

    let old = dir.path().join("old.sqlite");
    let options = SqliteOptions {
        page_size: 4096,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&old, options).await.unwrap();
    store
        .enqueue(
            vec![event("p1", "Purchase", "kept", EventSource::Backend)],
            T0,
        )
        .await
        .unwrap();
    store.close().await.unwrap();
    let store = open(&old).await;
    let leased = store.lease("p1", 10, LEASE_MS, T0).await.unwrap();
    assert_eq!(leased.len(), 1);
    store.close().await.unwrap();
    assert_eq!(page_size(&old), 4096);
}
