//! The group-commit writer with several callers in one group, including
//! the case that splits a group into rounds: one dedup key arriving with
//! two different `now_ms` values. A long collection window and a single
//! writer make grouping likely, but every assertion holds whatever the
//! grouping turned out to be: outcomes must match *some* serial order of
//! the requests.

mod support;

use std::sync::Arc;
use std::time::Duration;

use sluice_store::conformance::{T0, event};
use sluice_store::{EnqueueOutcome, EventSource, Store};
use sluice_store_postgres::{PostgresOptions, PostgresStore};
use support::{SchemaGuard, options, unique_schema, url};

async fn grouping_store(guard: &SchemaGuard) -> Arc<PostgresStore> {
    let schema = unique_schema();
    guard.register(&schema);
    Arc::new(
        PostgresStore::connect(
            &url(),
            PostgresOptions {
                writers: 1,
                group_commit_max_wait: Duration::from_millis(300),
                ..options(&schema)
            },
        )
        .await
        .expect("connect"),
    )
}

/// A key first seen at T0 and again exactly one window later, sent at the
/// same moment: in either serial order exactly the outcomes of that order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_at_two_instants_in_one_group() {
    if !support::server_available().await {
        return;
    }
    let guard = SchemaGuard::default();
    let store = grouping_store(&guard).await;
    let window = store.dedup_window_ms();
    let early = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .enqueue(vec![event("p1", "Purchase", "k", EventSource::Browser)], T0)
                .await
        })
    };
    let late = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .enqueue(
                    vec![
                        event("p1", "Purchase", "k", EventSource::Backend),
                        event("p1", "Purchase", "k", EventSource::Graph),
                    ],
                    T0 + window,
                )
                .await
        })
    };
    let early = early.await.unwrap().expect("early enqueue");
    let late = late.await.unwrap().expect("late enqueue");
    let queued_late = late[0].queued_id().is_some();
    assert!(
        queued_late,
        "the late copy is new in either order: {late:?}"
    );
    assert_eq!(
        late[1],
        EnqueueOutcome::Duplicate {
            first_source: EventSource::Backend,
            first_seen_ms: T0 + window
        }
    );
    match early[0] {
        // Early first: queued at T0; the late copy came after its window.
        EnqueueOutcome::Queued { .. } => {
            assert_eq!(store.stats(T0 + window).await.unwrap().queued, 2);
        }
        // Late first: the entry starts at T0 + window, and T0 lies within it.
        EnqueueOutcome::Duplicate {
            first_source,
            first_seen_ms,
        } => {
            assert_eq!(
                (first_source, first_seen_ms),
                (EventSource::Backend, T0 + window)
            );
            assert_eq!(store.stats(T0 + window).await.unwrap().queued, 1);
        }
    }
}

/// Many single-event callers with overlapping keys and mixed sources: each
/// key is queued once, and every caller gets an answer for its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_callers_in_few_groups() {
    if !support::server_available().await {
        return;
    }
    let guard = SchemaGuard::default();
    let store = grouping_store(&guard).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let source = if i % 2 == 0 {
                    EventSource::Browser
                } else {
                    EventSource::Backend
                };
                let e = event("p1", "Purchase", &format!("k{}", i / 2), source);
                store.enqueue(vec![e], T0).await.expect("enqueue")
            })
        })
        .collect();
    let mut queued = 0;
    for task in tasks {
        let outcome = task.await.unwrap();
        assert_eq!(outcome.len(), 1);
        queued += usize::from(outcome[0].queued_id().is_some());
    }
    assert_eq!(queued, 100);
    let stats = store.stats(T0).await.unwrap();
    assert_eq!((stats.queued, stats.duplicates_total), (100, 100));
    let w = store.writer_stats();
    assert_eq!(w.requests, 200);
    assert!(w.groups >= 1 && w.groups <= w.requests);
}
