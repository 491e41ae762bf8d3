//! Queue rotation (see the crate's `rotation` module): drained partitions
//! are truncated and reused, partitions holding events never are,
//! stragglers move with their ids, nodes that disagree on the current
//! partition lose nothing, and a version-3 queue migrates with its events.
//! Background rotation is off in these tests (`queue_rotate_interval` zero)
//! so that each rotation happens exactly where the test calls it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_store::conformance::{T0, event};
use sluice_store::{EventRowId, EventSource, Store};
use sluice_store_postgres::{PostgresOptions, PostgresStore, RotationReport};
use support::{SchemaGuard, unique_schema, url};

fn manual_rotation(schema: &str) -> PostgresOptions {
    PostgresOptions {
        queue_rotate_interval: Duration::ZERO,
        ..support::options(schema)
    }
}

async fn store_on(guard: &SchemaGuard) -> (PostgresStore, String) {
    let schema = unique_schema();
    guard.register(&schema);
    let store = PostgresStore::connect(&url(), manual_rotation(&schema))
        .await
        .expect("connect");
    (store, schema)
}

/// Two nodes (stores with their own pools) on one fresh schema.
async fn two_nodes(guard: &SchemaGuard) -> (PostgresStore, PostgresStore) {
    let schema = unique_schema();
    guard.register(&schema);
    let a = PostgresStore::connect(&url(), manual_rotation(&schema))
        .await
        .expect("node a");
    let b = PostgresStore::connect(&url(), manual_rotation(&schema))
        .await
        .expect("node b");
    (a, b)
}

async fn sql() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// Events per partition, from the rows themselves.
async fn events_per_part(client: &tokio_postgres::Client, schema: &str) -> BTreeMap<i16, i64> {
    client
        .query(
            &format!("SELECT part, count(*) FROM {schema}.queue GROUP BY part"),
            &[],
        )
        .await
        .expect("count")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

async fn part_size(client: &tokio_postgres::Client, schema: &str, part: i16) -> i64 {
    client
        .query_one(
            &format!("SELECT pg_relation_size('{schema}.queue_p{part}')"),
            &[],
        )
        .await
        .expect("size")
        .get(0)
}

async fn enqueue_n(store: &PostgresStore, prefix: &str, n: usize) -> Vec<EventRowId> {
    let events = (0..n)
        .map(|i| {
            event(
                "p1",
                "Purchase",
                &format!("{prefix}-{i}"),
                EventSource::Backend,
            )
        })
        .collect();
    store
        .enqueue(events, T0)
        .await
        .expect("enqueue")
        .iter()
        .map(|o| o.queued_id().expect("queued"))
        .collect()
}

/// Rotates on `store` and checks that `to` became the current partition.
async fn rotate_to(store: &PostgresStore, to: i16) -> RotationReport {
    let report = store.rotate_queue(T0).await.expect("rotate");
    assert_eq!(
        (report.current, report.rotated_to),
        (to, Some(to)),
        "{report:?}"
    );
    report
}

#[tokio::test]
async fn a_drained_partition_is_truncated_and_reused() {
    if !support::server_available().await {
        return;
    }
    let guard = SchemaGuard::default();
    let (store, schema) = store_on(&guard).await;
    let client = sql().await;

    enqueue_n(&store, "a", 500).await;
    assert_eq!(
        events_per_part(&client, &schema).await,
        BTreeMap::from([(0, 500)])
    );
    let leased = store.lease("p1", 1000, 60_000, T0).await.expect("lease");
    let ids: Vec<_> = leased.iter().map(|e| e.id).collect();
    assert_eq!(store.ack(&ids, T0).await.expect("ack"), 500);
    assert!(
        part_size(&client, &schema, 0).await > 0,
        "dead rows take space"
    );

    assert_eq!(rotate_to(&store, 1).await.truncated, 1);
    assert!(part_size(&client, &schema, 0).await > 0, "p0 was current");
    enqueue_n(&store, "b", 10).await;
    assert_eq!(
        events_per_part(&client, &schema).await,
        BTreeMap::from([(1, 10)])
    );
    // Partition 0 drained while it was current: once it is not, it is
    // truncated without waiting for its turn.
    assert_eq!(rotate_to(&store, 2).await.truncated, 2);
    assert_eq!(part_size(&client, &schema, 0).await, 0, "p0 truncated");
    rotate_to(&store, 3).await;
    assert_eq!(rotate_to(&store, 0).await.moved, 0, "p0 is the oldest");
    enqueue_n(&store, "c", 5).await;
    assert_eq!(
        events_per_part(&client, &schema).await,
        BTreeMap::from([(0, 5), (1, 10)])
    );
    // Now partition 1 is the oldest, down to 10 events: they move to the
    // current partition, and 1 is truncated and becomes current.
    assert_eq!(rotate_to(&store, 1).await.moved, 10);
    assert_eq!(
        events_per_part(&client, &schema).await,
        BTreeMap::from([(0, 15)])
    );
    assert_eq!(store.stats(T0).await.expect("stats").queued, 15);
    store.close().await.expect("close");
}

#[tokio::test]
async fn leased_events_keep_their_partition_and_are_acked_by_id() {
    if !support::server_available().await {
        return;
    }
    let guard = SchemaGuard::default();
    let (store, schema) = store_on(&guard).await;
    let client = sql().await;

    enqueue_n(&store, "a", 100).await;
    let leased = store.lease("p1", 1000, 600_000, T0).await.expect("lease");
    assert_eq!(leased.len(), 100);
    for _ in 0..8 {
        let report = store.rotate_queue(T0).await.expect("rotate");
        assert_eq!(report.moved, 0, "leased events are never moved");
        assert_ne!(
            report.current, 0,
            "a partition holding events is never reused"
        );
    }
    assert_eq!(
        events_per_part(&client, &schema).await,
        BTreeMap::from([(0, 100)])
    );
    let ids: Vec<_> = leased.iter().map(|e| e.id).collect();
    assert_eq!(store.ack(&ids, T0).await.expect("ack"), 100);
    assert!(events_per_part(&client, &schema).await.is_empty());
    store.close().await.expect("close");
}

#[tokio::test]
async fn stragglers_move_with_their_ids_due_times_and_attempts() {
    if !support::server_available().await {
        return;
    }
    let guard = SchemaGuard::default();
    let (store, schema) = store_on(&guard).await;
    let client = sql().await;

    let ids = enqueue_n(&store, "a", 50).await;
    let leased = store.lease("p1", 1000, 60_000, T0).await.expect("lease");
    assert_eq!(leased.len(), 50);
    let due = T0 + 3_600_000;
    assert_eq!(store.retry(&ids, due, "HTTP 503").await.expect("retry"), 50);
    for to in 1..=3 {
        assert_eq!(rotate_to(&store, to).await.moved, 0);
    }
    assert_eq!(rotate_to(&store, 0).await.moved, 50);
    assert_eq!(
        events_per_part(&client, &schema).await,
        BTreeMap::from([(3, 50)])
    );
    assert!(
        store
            .lease("p1", 1000, 60_000, due - 1)
            .await
            .expect("lease")
            .is_empty(),
        "the retry time moved with the events"
    );
    let again = store.lease("p1", 1000, 60_000, due).await.expect("lease");
    let again_ids: BTreeSet<_> = again.iter().map(|e| e.id).collect();
    assert_eq!(again_ids, ids.iter().copied().collect::<BTreeSet<_>>());
    assert!(again.iter().all(|e| e.attempts == 1));
    assert!(
        again
            .iter()
            .all(|e| e.last_error.as_deref() == Some("HTTP 503"))
    );
    assert_eq!(store.ack(&ids, due).await.expect("ack"), 50);
    store.close().await.expect("close");
}

/// Node B never learns of A's rotations and keeps inserting into
/// partition 0; A never truncates it while it holds events, and every
/// event is delivered once.
#[tokio::test]
async fn a_node_with_a_stale_partition_loses_nothing() {
    if !support::server_available().await {
        return;
    }
    let guard = SchemaGuard::default();
    let (a, b) = two_nodes(&guard).await;
    let mut expected = BTreeSet::new();
    for round in 0..12 {
        expected.extend(enqueue_n(&b, &format!("b{round}"), 20).await);
        expected.extend(enqueue_n(&a, &format!("a{round}"), 20).await);
        a.rotate_queue(T0).await.expect("rotate");
    }
    let mut delivered = BTreeSet::new();
    loop {
        let batch = a.lease("p1", 100, 60_000, T0).await.expect("lease");
        if batch.is_empty() {
            break;
        }
        let ids: Vec<_> = batch.iter().map(|e| e.id).collect();
        assert_eq!(b.ack(&ids, T0).await.expect("ack"), ids.len() as u64);
        for id in ids {
            assert!(delivered.insert(id), "{id:?} leased twice");
        }
    }
    assert_eq!(delivered, expected);
    a.close().await.expect("close a");
    b.close().await.expect("close b");
}

/// Two nodes ingest and deliver while rotations run back to back: every
/// acknowledged event is delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_loses_and_duplicates_nothing() {
    if !support::server_available().await {
        return;
    }
    let guard = SchemaGuard::default();
    let (a, b) = two_nodes(&guard).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let ingest_done = Arc::new(AtomicBool::new(false));

    let mut producers = Vec::new();
    for (n, node) in [&a, &b].into_iter().enumerate() {
        let node = Arc::clone(node);
        producers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for round in 0..150 {
                ids.extend(enqueue_n(&node, &format!("n{n}r{round}"), 10).await);
            }
            ids
        }));
    }
    let rotator = {
        let (a, b, done) = (Arc::clone(&a), Arc::clone(&b), Arc::clone(&ingest_done));
        tokio::spawn(async move {
            let mut rotations = 0;
            while !done.load(Ordering::Relaxed) {
                let node = if rotations % 2 == 0 { &a } else { &b };
                if node
                    .rotate_queue(T0)
                    .await
                    .expect("rotate")
                    .rotated_to
                    .is_some()
                {
                    rotations += 1;
                }
                tokio::task::yield_now().await;
            }
            rotations
        })
    };
    let mut consumers = Vec::new();
    for node in [&a, &b] {
        let (node, done) = (Arc::clone(node), Arc::clone(&ingest_done));
        consumers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let finished = done.load(Ordering::Acquire);
                let batch = node.lease("p1", 50, 600_000, T0).await.expect("lease");
                if batch.is_empty() {
                    if finished {
                        return got;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                let ids: Vec<_> = batch.iter().map(|e| e.id).collect();
                assert_eq!(node.ack(&ids, T0).await.expect("ack"), ids.len() as u64);
                got.extend(ids);
            }
        }));
    }
    let mut expected = BTreeSet::new();
    for producer in producers {
        expected.extend(producer.await.expect("producer"));
    }
    ingest_done.store(true, Ordering::Release);
    let rotations = rotator.await.expect("rotator");
    let mut delivered = BTreeSet::new();
    for consumer in consumers {
        for id in consumer.await.expect("consumer") {
            assert!(delivered.insert(id), "{id:?} delivered twice");
        }
    }
    assert_eq!(expected.len(), 3000);
    assert_eq!(delivered, expected);
    assert!(rotations > 0, "the test must rotate while it runs");
    assert_eq!(a.stats(T0).await.expect("stats").queued, 0);
    a.close().await.expect("close a");
    b.close().await.expect("close b");
}

/// A version-3 queue (one plain table) migrates into partition 0 with its
/// events and ids, and new ids continue past the old ones.
#[tokio::test]
async fn a_version_3_queue_migrates_with_its_events() {
    if !support::server_available().await {
        return;
    }
    let guard = SchemaGuard::default();
    let schema = unique_schema();
    guard.register(&schema);
    let report = sluice_store_postgres::migrate_to_version(&url(), &schema, 3)
        .await
        .expect("migrate to 3");
    assert_eq!(report.to, 3);
    let client = sql().await;
    let old_ids: Vec<i64> = client
        .query(
            &format!(
                "INSERT INTO {schema}.queue
                    (pixel_id, due_ms, enqueued_ms, event_time, source, event_name, event_id,
                     payload)
                 SELECT 'p1', {T0}, {T0}, {}, 'backend', 'Purchase', 'old-' || n, '{{}}'::bytea
                 FROM generate_series(1, 3) AS n
                 RETURNING id",
                T0 / 1000
            ),
            &[],
        )
        .await
        .expect("v3 rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    client
        .batch_execute(&format!(
            "INSERT INTO {schema}.pixel_counters (pixel_id, shard, queued) VALUES ('p1', 0, 3)"
        ))
        .await
        .expect("counters");

    let store = PostgresStore::connect(&url(), manual_rotation(&schema))
        .await
        .expect("connect migrates to 4");
    assert_eq!(
        events_per_part(&client, &schema).await,
        BTreeMap::from([(0, 3)])
    );
    let new_ids = enqueue_n(&store, "new", 2).await;
    let max_old = old_ids.iter().copied().max().expect("ids");
    assert!(
        new_ids.iter().all(|id| id.raw() > max_old),
        "{new_ids:?} vs {old_ids:?}"
    );
    let leased = store.lease("p1", 100, 60_000, T0).await.expect("lease");
    let leased_ids: BTreeSet<i64> = leased.iter().map(|e| e.id.raw()).collect();
    let mut all: BTreeSet<i64> = old_ids.into_iter().collect();
    all.extend(new_ids.iter().map(|id| id.raw()));
    assert_eq!(leased_ids, all);
    store.close().await.expect("close");
}
