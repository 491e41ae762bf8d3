//! Several nodes on one schema: two `PostgresStore`s with their own pools
//! stand for two `sluice serve` processes. What must hold is what the
//! issue promises for a shared PostgreSQL: one queue, exactly-once
//! admission per dedup key, exclusive leases, and takeover of a dead
//! node's work once its leases expire. Assertions depend only on final
//! states, never on timing or interleaving.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sluice_store::conformance::{T0, event};
use sluice_store::{EnqueueOutcome, EventSource, Store, StoreError};
use sluice_store_postgres::{PostgresOptions, PostgresStore, SCHEMA_VERSION};
use support::{SchemaGuard, options, unique_schema, url};

/// Two nodes on one fresh schema.
async fn two_nodes(guard: &SchemaGuard) -> (Arc<PostgresStore>, Arc<PostgresStore>) {
    let schema = unique_schema();
    guard.register(&schema);
    let url = url();
    let (a, b) = tokio::join!(
        PostgresStore::connect(&url, options(&schema)),
        PostgresStore::connect(&url, options(&schema)),
    );
    (Arc::new(a.expect("node a")), Arc::new(b.expect("node b")))
}

/// Both nodes receive the same 1000 keys at the same instant, in batches
/// from several concurrent tasks each: every key is queued exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_keys_on_two_nodes_are_queued_once() {
    if !support::server_available().await {
        return;
    }
    let guard = SchemaGuard::default();
    let (a, b) = two_nodes(&guard).await;
    let keys = 1000;
    let mut tasks = Vec::new();
    for (node, source) in [
        (a.clone(), EventSource::Browser),
        (b.clone(), EventSource::Backend),
    ] {
        for part in 0..4 {
            let node = Arc::clone(&node);
            tasks.push(tokio::spawn(async move {
                let mut results = Vec::new();
                // Task `part` walks the keys from a different offset, so the
                // two nodes race on every key in varying orders.
                for chunk in 0..(keys / 25) {
                    let start = ((chunk + part * 10) % (keys / 25)) * 25;
                    let events: Vec<_> = (start..start + 25)
                        .map(|k| {
                            event(&format!("p{}", k % 4), "Purchase", &format!("k{k}"), source)
                        })
                        .collect();
                    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
                    let outcomes = node.enqueue(events, T0).await.expect("enqueue");
                    results.extend(ids.into_iter().zip(outcomes));
                }
                results
            }));
        }
    }
    let mut queued: BTreeMap<String, u32> = BTreeMap::new();
    let mut duplicates = 0u64;
    for task in tasks {
        for (key, outcome) in task.await.expect("task") {
            match outcome {
                EnqueueOutcome::Queued { .. } => *queued.entry(key).or_default() += 1,
                EnqueueOutcome::Duplicate { first_seen_ms, .. } => {
                    assert_eq!(first_seen_ms, T0);
                    duplicates += 1;
                }
            }
        }
    }
    assert_eq!(queued.len(), keys, "every key queued");
    assert!(queued.values().all(|n| *n == 1), "no key queued twice");
    assert_eq!(duplicates, (8 * keys - keys) as u64);
    for node in [&a, &b] {
        let stats = node.stats(T0).await.unwrap();
        assert_eq!(stats.queued, keys as u64, "both nodes see one queue");
        assert_eq!(stats.duplicates_total, duplicates);
    }
}

/// A key whose window has just expired arrives on both nodes at once: the
/// restart is atomic, so exactly one of them queues it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_restart_races_have_one_winner() {
    if !support::server_available().await {
        return;
    }
    let guard = SchemaGuard::default();
    let (a, b) = two_nodes(&guard).await;
    let window = a.dedup_window_ms();
    let first: Vec<_> = (0..200)
        .map(|k| event("p1", "Purchase", &format!("k{k}"), EventSource::Browser))
        .collect();
    a.enqueue(first, T0).await.unwrap();
    let again = |node: Arc<PostgresStore>| {
        tokio::spawn(async move {
            let events: Vec<_> = (0..200)
                .map(|k| event("p1", "Purchase", &format!("k{k}"), EventSource::Backend))
                .collect();
            node.enqueue(events, T0 + window).await.unwrap()
        })
    };
    let (ra, rb) = tokio::join!(again(a.clone()), again(b.clone()));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    for (x, y) in ra.iter().zip(&rb) {
        assert_ne!(
            x.queued_id().is_some(),
            y.queued_id().is_some(),
            "exactly one node requeues each expired key: {x:?} / {y:?}"
        );
        let loser = if x.is_duplicate() { x } else { y };
        assert_eq!(
            *loser,
            EnqueueOutcome::Duplicate {
                first_source: EventSource::Backend,
                first_seen_ms: T0 + window
            }
        );
    }
    assert_eq!(a.stats(T0 + window).await.unwrap().queued, 400);
}

/// Workers on both nodes lease concurrently until the queue is empty: no
/// event is handed out twice, and all of them are handed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_leases_on_two_nodes_never_share_an_event() {
    if !support::server_available().await {
        return;
    }
    let guard = SchemaGuard::default();
    let (a, b) = two_nodes(&guard).await;
    let total = 2000;
    for chunk in 0..(total / 500) {
        let events: Vec<_> = (chunk * 500..(chunk + 1) * 500)
            .map(|k| event("p1", "Purchase", &format!("k{k}"), EventSource::Backend))
            .collect();
        a.enqueue(events, T0).await.unwrap();
    }
    let mut workers = Vec::new();
    for node in [&a, &b] {
        for _ in 0..3 {
            let node = Arc::clone(node);
            workers.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = node.lease("p1", 37, 60_000, T0).await.expect("lease");
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|e| e.id));
                }
            }));
        }
    }
    let mut seen = BTreeSet::new();
    let mut per_node = [0usize; 2];
    for (i, worker) in workers.into_iter().enumerate() {
        for id in worker.await.expect("worker") {
            assert!(seen.insert(id), "event {id} leased twice");
            per_node[i / 3] += 1;
        }
    }
    assert_eq!(seen.len(), total);
    assert_eq!(b.stats(T0).await.unwrap().leased, total as u64);
}

/// A node leases events and vanishes without acking. Until the lease
/// expires the other node cannot touch them; from then on it leases all
/// of them (attempts unchanged) and acks them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_leases_are_taken_over_after_expiry() {
    if !support::server_available().await {
        return;
    }
    let guard = SchemaGuard::default();
    let (a, b) = two_nodes(&guard).await;
    let events: Vec<_> = (0..500)
        .map(|k| event("p1", "Purchase", &format!("k{k}"), EventSource::Backend))
        .collect();
    b.enqueue(events, T0).await.unwrap();
    let lease_ms = 30_000;
    let taken = a.lease("p1", 1000, lease_ms, T0).await.unwrap();
    assert_eq!(taken.len(), 500);
    // Node a dies: its pool and writers go away, its leases stay behind.
    a.close().await.unwrap();
    drop(a);

    assert!(
        b.lease("p1", 1000, lease_ms, T0 + lease_ms - 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(b.stats(T0 + lease_ms - 1).await.unwrap().leased, 500);
    assert!(b.due_pixels(T0 + lease_ms - 1).await.unwrap().is_empty());

    let now = T0 + lease_ms;
    assert_eq!(b.due_pixels(now).await.unwrap(), ["p1"]);
    let mut recovered = Vec::new();
    loop {
        let batch = b.lease("p1", 128, lease_ms, now).await.unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.iter().all(|e| e.attempts == 0));
        recovered.extend(batch.into_iter().map(|e| e.id));
    }
    let before: BTreeSet<_> = taken.iter().map(|e| e.id).collect();
    let after: BTreeSet<_> = recovered.iter().copied().collect();
    assert_eq!(before, after, "exactly the dead node's events come back");
    assert_eq!(b.ack(&recovered, now + 1).await.unwrap(), 500);
    let stats = b.stats(now + 1).await.unwrap();
    assert_eq!(
        (stats.queued, stats.leased, stats.delivered_total),
        (0, 0, 500)
    );
}

/// Nodes starting at the same time on a new schema migrate it once; a
/// later `migrate` finds nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_starts_migrate_once() {
    if !support::server_available().await {
        return;
    }
    let guard = SchemaGuard::default();
    let schema = unique_schema();
    guard.register(&schema);
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let schema = schema.clone();
            tokio::spawn(async move { PostgresStore::connect(&url(), options(&schema)).await })
        })
        .collect();
    for start in starts {
        start.await.unwrap().expect("every node starts");
    }
    let report = sluice_store_postgres::migrate(&url(), &schema)
        .await
        .unwrap();
    assert_eq!((report.from, report.to), (SCHEMA_VERSION, SCHEMA_VERSION));
}

/// `sluice migrate` brings a new schema to the current version; a node
/// told not to migrate refuses an unmigrated schema and one from a newer
/// build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_and_version_checks() {
    if !support::server_available().await {
        return;
    }
    let guard = SchemaGuard::default();
    let schema = unique_schema();
    guard.register(&schema);
    let no_migrate = PostgresOptions {
        run_migrations: false,
        ..options(&schema)
    };
    let err = PostgresStore::connect(&url(), no_migrate.clone())
        .await
        .err()
        .expect("unmigrated schema refused");
    assert!(err.to_string().contains("sluice migrate"), "{err}");

    let report = sluice_store_postgres::migrate(&url(), &schema)
        .await
        .unwrap();
    assert_eq!((report.from, report.to), (0, SCHEMA_VERSION));
    let store = PostgresStore::connect(&url(), no_migrate.clone())
        .await
        .unwrap();
    store.check_writable().await.unwrap();
    store.close().await.unwrap();

    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "INSERT INTO {schema}.schema_migrations (version, description) VALUES (999, 'future')"
        ))
        .await
        .unwrap();
    for opts in [no_migrate, options(&schema)] {
        let err = PostgresStore::connect(&url(), opts)
            .await
            .err()
            .expect("refused");
        assert_eq!(
            err,
            StoreError::SchemaTooNew {
                found: 999,
                supported: SCHEMA_VERSION
            }
        );
    }
}

/// A schema that holds foreign tables is not taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_schema_is_refused() {
    if !support::server_available().await {
        return;
    }
    let guard = SchemaGuard::default();
    let schema = unique_schema();
    guard.register(&schema);
    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.orders (id int)"
        ))
        .await
        .unwrap();
    let err = PostgresStore::connect(&url(), options(&schema))
        .await
        .err()
        .expect("refused");
    assert_eq!(err.code(), "store_corrupt", "{err}");
}
