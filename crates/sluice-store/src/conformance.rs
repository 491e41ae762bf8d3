//! The contract every [`Store`] backend must pass, as reusable async tests.
//!
//! Each `pub async fn` here takes a factory (`AsyncFn() -> Arc<dyn Store>`;
//! a closure returning a future qualifies) whose every call yields a
//! fresh, empty store, and panics on any breach of the contract documented
//! on [`Store`] and in the crate header. All times are explicit `now_ms`
//! values around [`T0`], so nothing sleeps and nothing depends on the wall
//! clock; the concurrency tests depend only on the final state, never on
//! an interleaving.
//!
//! A backend runs the whole suite, each function as its own `#[tokio::test]`,
//! with one line in its test file:
//!
//! ```ignore
//! sluice_store::store_conformance_tests!(my_backend_factory());
//! ```
//!
//! where `my_backend_factory()` is evaluated once per test and returns the
//! factory (typically a closure owning a temporary directory or database
//! schema). The test crate needs `tokio` with the `macros` and
//! `rt-multi-thread` features.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::{
    DeadLetterId, DeadLetterReason, DedupReportQuery, DlqFilter, EnqueueOutcome, EventIdOrigin,
    EventRowId, EventSource, LeasedEvent, MergeFn, MergeOutcome, MergeRequest, NewEvent, SourceSet,
    Store, StoreError,
};

/// The base instant of every test: 2023-11-14T22:13:20Z, in Unix ms.
pub const T0: i64 = 1_700_000_000_000;

/// A lease long enough never to expire by accident within a test.
const LONG_LEASE_MS: i64 = 10 * 60 * 1000;

/// Generates one `#[tokio::test]` per conformance test.
///
/// `$factory` is an expression evaluated at the start of each test; it must
/// yield something implementing `AsyncFn() -> Arc<dyn Store>` whose calls
/// each return a fresh, empty store.
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::store_conformance_tests!(@tests $factory;
            enqueue_returns_one_outcome_per_event_in_order,
            enqueue_of_nothing_is_a_no_op,
            enqueue_rejects_events_without_pixel_or_event_name,
            duplicate_in_a_later_batch_reports_the_first_source,
            duplicate_within_one_batch_is_detected,
            dedup_key_is_pixel_event_name_and_event_id,
            dedup_window_expires,
            empty_event_id_is_never_deduplicated,
            ledger_records_every_source_and_duplicate_count,
            lease_returns_due_events_in_arrival_order_with_all_fields,
            lease_respects_max_events_and_pixel,
            leased_events_come_back_only_after_the_lease_expires,
            concurrent_leases_never_share_an_event,
            lease_rejects_a_non_positive_lease,
            retry_delays_the_event_and_counts_the_attempt,
            release_gives_events_back_without_counting_an_attempt,
            hold_until_delays_the_first_delivery,
            due_pixels_lists_only_pixels_with_due_events,
            ack_removes_events_and_counts_deliveries,
            ids_are_never_reused,
            dead_letter_moves_events_with_their_reason,
            dlq_list_filters_and_pages,
            dlq_replay_requeues_even_when_the_ledger_would_call_it_a_duplicate,
            dlq_delete_removes_entries,
            purge_dead_letters_deletes_only_old_entries,
            stats_track_every_transition,
            purge_deletes_only_expired_ledger_entries,
            forget_deletes_every_event_carrying_a_user_key,
            audit_rows_are_kept_listed_filtered_and_purged,
            enqueue_with_audit_commits_events_and_audit_rows_together,
            enqueue_with_audit_fails_as_a_whole,
            concurrent_enqueue_with_audit_never_stores_an_event_without_its_audit,
            concurrent_enqueuers_get_consistent_outcomes,
            check_writable_succeeds_on_a_fresh_store,
            writes_after_close_fail_with_closed,
            ledger_keeps_order_id_and_event_id_origin,
            merge_held_folds_a_later_copy_into_the_held_one,
            merge_held_needs_a_copy_that_is_still_held,
            merge_held_never_touches_a_leased_copy,
            merge_held_refused_or_panicking_changes_nothing,
            dedup_report_counts_sources_merges_and_duplicates,
            dedup_report_lists_suspicious_ids,
        );
    };
    (@tests $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::conformance::$name($factory).await;
            }
        )*
    };
}

// ---------------------------------------------------------------------------
// helpers

/// An event with a recognizable payload and one user key derived from `event_id`.
pub fn event(pixel_id: &str, event_name: &str, event_id: &str, source: EventSource) -> NewEvent {
    NewEvent {
        pixel_id: pixel_id.to_owned(),
        event_name: event_name.to_owned(),
        event_id: event_id.to_owned(),
        event_time: T0 / 1000,
        source,
        payload: payload_for(pixel_id, event_name, event_id),
        user_keys: vec![format!("key-{event_id}")],
        test_event_code: None,
        hold_until_ms: None,
        order_id: None,
        event_id_origin: EventIdOrigin::Sent,
    }
}

fn payload_for(pixel_id: &str, event_name: &str, event_id: &str) -> Vec<u8> {
    format!(
        r#"{{"pixel":"{pixel_id}","event_name":"{event_name}","event_id":"{event_id}","h":"{}"}}"#,
        "a".repeat(64)
    )
    .into_bytes()
}

fn reason(code: &str) -> DeadLetterReason {
    DeadLetterReason {
        code: code.to_owned(),
        message: format!("rejected: {code}"),
        detail_json: Some(format!(r#"{{"code":"{code}"}}"#)),
    }
}

async fn enqueue_ok(store: &dyn Store, events: Vec<NewEvent>, now_ms: i64) -> Vec<EventRowId> {
    let n = events.len();
    let outcomes = store.enqueue(events, now_ms).await.expect("enqueue");
    assert_eq!(outcomes.len(), n, "one outcome per event");
    outcomes
        .iter()
        .map(|o| {
            o.queued_id()
                .unwrap_or_else(|| panic!("expected Queued, got {o:?}"))
        })
        .collect()
}

async fn lease_ids(store: &dyn Store, pixel: &str, max: usize, now_ms: i64) -> Vec<EventRowId> {
    store
        .lease(pixel, max, LONG_LEASE_MS, now_ms)
        .await
        .expect("lease")
        .into_iter()
        .map(|e| e.id)
        .collect()
}

fn event_ids(leased: &[LeasedEvent]) -> Vec<&str> {
    leased.iter().map(|e| e.event_id.as_str()).collect()
}

fn pixel_stat(stats: &crate::StoreStats, pixel: &str) -> crate::PixelStats {
    stats
        .per_pixel
        .iter()
        .find(|p| p.pixel_id == pixel)
        .cloned()
        .unwrap_or_else(|| panic!("no stats for pixel {pixel}: {stats:?}"))
}

// ---------------------------------------------------------------------------
// enqueue and deduplication

/// Outcomes come back one per input, in input order; ids increase with arrival.
pub async fn enqueue_returns_one_outcome_per_event_in_order(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    let ids = enqueue_ok(
        &*store,
        vec![
            event("p1", "Purchase", "a", EventSource::Backend),
            event("p1", "Purchase", "b", EventSource::Browser),
            event("p2", "Lead", "c", EventSource::Graph),
        ],
        T0,
    )
    .await;
    assert!(
        ids[0] < ids[1] && ids[1] < ids[2],
        "ids grow with arrival: {ids:?}"
    );
    let more = enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "d", EventSource::Import)],
        T0,
    )
    .await;
    assert!(more[0] > ids[2]);
    let stats = store.stats(T0).await.unwrap();
    assert_eq!(stats.queued, 4);
    assert_eq!(pixel_stat(&stats, "p1").queued, 3);
    assert_eq!(pixel_stat(&stats, "p2").queued, 1);
}

/// An empty batch succeeds with no outcomes and changes nothing.
pub async fn enqueue_of_nothing_is_a_no_op(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    assert_eq!(store.enqueue(Vec::new(), T0).await.unwrap(), Vec::new());
    assert_eq!(store.stats(T0).await.unwrap().queued, 0);
    assert_eq!(
        store.lease("p1", 0, LONG_LEASE_MS, T0).await.unwrap(),
        Vec::new()
    );
    assert_eq!(store.ack(&[], T0).await.unwrap(), 0);
    assert_eq!(store.retry(&[], T0, "x").await.unwrap(), 0);
    assert_eq!(store.release(&[], T0).await.unwrap(), 0);
    assert!(
        store
            .dead_letter(&[], reason("x"), T0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.dlq_replay(&[], None, T0).await.unwrap(), 0);
    assert_eq!(store.dlq_delete(&[]).await.unwrap(), 0);
    assert_eq!(store.forget(&[]).await.unwrap(), Default::default());
}

/// A batch with an event lacking pixel_id or event_name is refused whole,
/// with `store_invalid_input`, and nothing of it is queued.
pub async fn enqueue_rejects_events_without_pixel_or_event_name(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    for bad in [
        event("", "Purchase", "a", EventSource::Backend),
        event("p1", "", "a", EventSource::Backend),
    ] {
        let err = store
            .enqueue(
                vec![event("p1", "Purchase", "ok", EventSource::Backend), bad],
                T0,
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "store_invalid_input", "{err}");
    }
    assert_eq!(store.stats(T0).await.unwrap().queued, 0);
    // The good event was not recorded in the ledger either.
    enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "ok", EventSource::Backend)],
        T0,
    )
    .await;
}

/// A key seen in an earlier batch is a duplicate, reported with the first
/// copy's source and time, and is not queued.
pub async fn duplicate_in_a_later_batch_reports_the_first_source(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "o-1", EventSource::Browser)],
        T0,
    )
    .await;
    let outcomes = store
        .enqueue(
            vec![event("p1", "Purchase", "o-1", EventSource::Backend)],
            T0 + 5_000,
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![EnqueueOutcome::Duplicate {
            first_source: EventSource::Browser,
            first_seen_ms: T0
        }]
    );
    let stats = store.stats(T0 + 5_000).await.unwrap();
    assert_eq!(stats.queued, 1);
    assert_eq!(stats.duplicates_total, 1);
}

/// Two copies of one key inside the same batch: the first is queued, the
/// second is a duplicate of it.
pub async fn duplicate_within_one_batch_is_detected(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let outcomes = store
        .enqueue(
            vec![
                event("p1", "Purchase", "o-1", EventSource::Graph),
                event("p1", "Purchase", "o-2", EventSource::Graph),
                event("p1", "Purchase", "o-1", EventSource::Browser),
                event("p1", "Purchase", "o-1", EventSource::Graph),
            ],
            T0,
        )
        .await
        .unwrap();
    assert!(outcomes[0].queued_id().is_some());
    assert!(outcomes[1].queued_id().is_some());
    for dup in &outcomes[2..] {
        assert_eq!(
            *dup,
            EnqueueOutcome::Duplicate {
                first_source: EventSource::Graph,
                first_seen_ms: T0
            }
        );
    }
    assert_eq!(store.stats(T0).await.unwrap().queued, 2);
    let leased = store.lease("p1", 10, LONG_LEASE_MS, T0).await.unwrap();
    assert_eq!(event_ids(&leased), ["o-1", "o-2"]);
}

/// The key is exactly (pixel_id, event_name, event_id): changing any part
/// makes a different event. Source and payload are not part of it.
pub async fn dedup_key_is_pixel_event_name_and_event_id(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let outcomes = store
        .enqueue(
            vec![
                event("p1", "Purchase", "x", EventSource::Backend),
                event("p2", "Purchase", "x", EventSource::Backend),
                event("p1", "AddToCart", "x", EventSource::Backend),
                event("p1", "Purchase", "y", EventSource::Backend),
                event("p1", "Purchase", "X", EventSource::Backend),
            ],
            T0,
        )
        .await
        .unwrap();
    assert!(
        outcomes.iter().all(|o| o.queued_id().is_some()),
        "{outcomes:?}"
    );
    let mut other_payload = event("p1", "Purchase", "x", EventSource::Import);
    other_payload.payload = b"{}".to_vec();
    let outcomes = store.enqueue(vec![other_payload], T0 + 1).await.unwrap();
    assert!(outcomes[0].is_duplicate());
}

/// Within `dedup_window_ms` of the first sighting a key is a duplicate; from
/// `first_seen + window` on it is new again, and the ledger restarts there.
pub async fn dedup_window_expires(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let window = store.dedup_window_ms();
    assert!(window > 0);
    enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "o-1", EventSource::Browser)],
        T0,
    )
    .await;

    let last_moment = T0 + window - 1;
    let outcomes = store
        .enqueue(
            vec![event("p1", "Purchase", "o-1", EventSource::Backend)],
            last_moment,
        )
        .await
        .unwrap();
    assert!(outcomes[0].is_duplicate(), "still inside the window");

    let expired = T0 + window;
    let again = enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "o-1", EventSource::Backend)],
        expired,
    )
    .await;
    assert_eq!(again.len(), 1, "a new event once the window has passed");

    let outcomes = store
        .enqueue(
            vec![event("p1", "Purchase", "o-1", EventSource::Browser)],
            expired + 10,
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![EnqueueOutcome::Duplicate {
            first_source: EventSource::Backend,
            first_seen_ms: expired
        }],
        "the ledger entry restarted with the new copy"
    );
    let entry = store
        .dedup_lookup("p1", "Purchase", "o-1", expired + 10)
        .await
        .unwrap()
        .expect("live entry");
    assert_eq!(entry.duplicates, 1, "duplicates counted since the restart");
    assert_eq!(
        entry.sources,
        SourceSet::EMPTY
            .with(EventSource::Backend)
            .with(EventSource::Browser)
    );
}

/// An empty event_id opts out of deduplication: every copy is queued and
/// nothing goes into the ledger.
pub async fn empty_event_id_is_never_deduplicated(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let ids = enqueue_ok(
        &*store,
        vec![
            event("p1", "PageView", "", EventSource::Browser),
            event("p1", "PageView", "", EventSource::Browser),
        ],
        T0,
    )
    .await;
    assert_eq!(ids.len(), 2);
    enqueue_ok(
        &*store,
        vec![event("p1", "PageView", "", EventSource::Backend)],
        T0 + 1,
    )
    .await;
    assert_eq!(
        store
            .dedup_lookup("p1", "PageView", "", T0 + 1)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .dedup_report(&DedupReportQuery::default(), T0 + 1)
            .await
            .unwrap()
            .rows
            .is_empty()
    );
    assert_eq!(store.stats(T0 + 1).await.unwrap().queued, 3);
}

/// The ledger keeps the first source, every source that sent the key, the
/// duplicate count and the last sighting; the report counts live keys by
/// where they came from, per pixel and event name.
pub async fn ledger_records_every_source_and_duplicate_count(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    enqueue_ok(
        &*store,
        vec![
            event("p1", "Purchase", "both", EventSource::Browser),
            event("p1", "Purchase", "browser-only", EventSource::Browser),
            event("p1", "Purchase", "server-only", EventSource::Backend),
            event("p2", "Lead", "l-1", EventSource::Graph),
        ],
        T0,
    )
    .await;
    for (source, at) in [
        (EventSource::Backend, T0 + 100),
        (EventSource::Backend, T0 + 200),
        (EventSource::Browser, T0 + 300),
    ] {
        let outcome = store
            .enqueue(vec![event("p1", "Purchase", "both", source)], at)
            .await
            .unwrap();
        assert!(outcome[0].is_duplicate());
    }

    let entry = store
        .dedup_lookup("p1", "Purchase", "both", T0 + 400)
        .await
        .unwrap()
        .expect("entry");
    assert_eq!(entry.pixel_id, "p1");
    assert_eq!(entry.event_name, "Purchase");
    assert_eq!(entry.event_id, "both");
    assert_eq!(entry.first_source, EventSource::Browser);
    assert_eq!(
        entry.sources,
        [EventSource::Browser, EventSource::Backend]
            .into_iter()
            .collect()
    );
    assert_eq!(entry.first_seen_ms, T0);
    assert_eq!(entry.last_seen_ms, T0 + 300);
    assert_eq!(entry.duplicates, 3);
    assert_eq!(
        store
            .dedup_lookup("p1", "Purchase", "nope", T0)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .dedup_lookup("p1", "Purchase", "both", T0 + store.dedup_window_ms())
            .await
            .unwrap(),
        None,
        "an expired entry is not reported even before purge"
    );

    let p1 = DedupReportQuery {
        pixel_id: Some("p1".to_owned()),
        ..DedupReportQuery::default()
    };
    let report = store.dedup_report(&p1, T0 + 400).await.unwrap();
    assert_eq!(report.rows.len(), 1, "{report:?}");
    let row = &report.rows[0];
    assert_eq!(
        (row.pixel_id.as_str(), row.event_name.as_str()),
        ("p1", "Purchase")
    );
    assert_eq!(
        (
            row.events,
            row.browser_only,
            row.server_only,
            row.both,
            row.merged,
            row.duplicates
        ),
        (3, 1, 1, 1, 0, 3)
    );
    let all = store
        .dedup_report(&DedupReportQuery::default(), T0 + 400)
        .await
        .unwrap();
    assert_eq!(all.rows.len(), 2);
    assert_eq!(all.rows[1].pixel_id, "p2");
    assert_eq!(all.rows[1].event_name, "Lead");
    assert_eq!((all.rows[1].events, all.rows[1].server_only), (1, 1));
    let stats = store.stats(T0 + 400).await.unwrap();
    assert_eq!(pixel_stat(&stats, "p1").duplicates_total, 3);
    assert_eq!(pixel_stat(&stats, "p2").duplicates_total, 0);
}

// ---------------------------------------------------------------------------
// leasing

/// Due events come back in arrival order, with every field as enqueued.
pub async fn lease_returns_due_events_in_arrival_order_with_all_fields(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    let mut first = event("p1", "Purchase", "e-1", EventSource::Graph);
    first.test_event_code = Some("TEST123".to_owned());
    first.event_time = 1_699_999_000;
    let mut big = event("p1", "Purchase", "e-3", EventSource::Import);
    big.payload = (0..1536u32).map(|i| (i % 251) as u8).collect();
    let ids = enqueue_ok(&*store, vec![first.clone()], T0).await;
    let more = enqueue_ok(
        &*store,
        vec![
            event("p1", "Lead", "e-2", EventSource::Browser),
            big.clone(),
        ],
        T0 + 10,
    )
    .await;

    let leased = store.lease("p1", 10, LONG_LEASE_MS, T0 + 20).await.unwrap();
    assert_eq!(event_ids(&leased), ["e-1", "e-2", "e-3"]);
    let e1 = &leased[0];
    assert_eq!(e1.id, ids[0]);
    assert_eq!(e1.pixel_id, "p1");
    assert_eq!(e1.event_name, "Purchase");
    assert_eq!(e1.event_time, 1_699_999_000);
    assert_eq!(e1.source, EventSource::Graph);
    assert_eq!(e1.payload, first.payload);
    assert_eq!(e1.attempts, 0);
    assert_eq!(e1.last_error, None);
    assert_eq!(e1.test_event_code.as_deref(), Some("TEST123"));
    assert_eq!(e1.first_enqueued_ms, T0);
    assert_eq!(leased[1].id, more[0]);
    assert_eq!(leased[1].event_name, "Lead");
    assert_eq!(leased[1].test_event_code, None);
    assert_eq!(leased[1].first_enqueued_ms, T0 + 10);
    assert_eq!(leased[2].payload, big.payload, "binary payload round-trips");
}

/// `max_events` caps a lease, the next lease continues where it stopped,
/// and a lease only ever returns the requested pixel's events.
pub async fn lease_respects_max_events_and_pixel(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let events: Vec<_> = (0..10)
        .map(|i| {
            event(
                if i % 2 == 0 { "even" } else { "odd" },
                "Purchase",
                &format!("e{i}"),
                EventSource::Backend,
            )
        })
        .collect();
    enqueue_ok(&*store, events, T0).await;
    let first = store.lease("even", 3, LONG_LEASE_MS, T0).await.unwrap();
    assert_eq!(event_ids(&first), ["e0", "e2", "e4"]);
    let second = store.lease("even", 3, LONG_LEASE_MS, T0).await.unwrap();
    assert_eq!(event_ids(&second), ["e6", "e8"]);
    assert!(
        store
            .lease("even", 3, LONG_LEASE_MS, T0)
            .await
            .unwrap()
            .is_empty()
    );
    let odd = store.lease("odd", 100, LONG_LEASE_MS, T0).await.unwrap();
    assert_eq!(event_ids(&odd), ["e1", "e3", "e5", "e7", "e9"]);
    assert!(odd.iter().all(|e| e.pixel_id == "odd"));
    assert!(
        store
            .lease("unknown", 100, LONG_LEASE_MS, T0)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A leased event is invisible to other leases until `now + lease_ms`;
/// then (a crashed worker) it is due again, attempts unchanged.
pub async fn leased_events_come_back_only_after_the_lease_expires(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    let ids = enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "e", EventSource::Backend)],
        T0,
    )
    .await;
    let lease_ms = 30_000;
    let leased = store.lease("p1", 10, lease_ms, T0).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert!(
        store
            .lease("p1", 10, lease_ms, T0 + lease_ms - 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .due_pixels(T0 + lease_ms - 1)
            .await
            .unwrap()
            .is_empty()
    );
    let stats = store.stats(T0 + lease_ms - 1).await.unwrap();
    assert_eq!((stats.queued, stats.leased), (1, 1));

    assert_eq!(store.due_pixels(T0 + lease_ms).await.unwrap(), ["p1"]);
    assert_eq!(
        store.stats(T0 + lease_ms).await.unwrap().leased,
        0,
        "expired lease is not counted"
    );
    let again = store
        .lease("p1", 10, lease_ms, T0 + lease_ms)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, ids[0]);
    assert_eq!(
        again[0].attempts, 0,
        "an expired lease is not a failed attempt"
    );
}

/// Many concurrent lease calls never hand out one event twice, and
/// together they hand out every due event.
pub async fn concurrent_leases_never_share_an_event(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let total = 300;
    for chunk in (0..total).collect::<Vec<_>>().chunks(50) {
        let events = chunk
            .iter()
            .map(|i| event("p1", "Purchase", &format!("e{i}"), EventSource::Backend))
            .collect();
        enqueue_ok(&*store, events, T0).await;
    }
    let mut workers = Vec::new();
    for _ in 0..6 {
        let store = Arc::clone(&store);
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = lease_ids(&*store, "p1", 7, T0).await;
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch);
            }
        }));
    }
    let mut seen = BTreeSet::new();
    for worker in workers {
        for id in worker.await.expect("worker") {
            assert!(seen.insert(id), "event {id} leased twice");
        }
    }
    assert_eq!(seen.len(), total);
    assert_eq!(store.stats(T0).await.unwrap().leased, total as u64);
}

/// A lease of zero or negative length is a caller bug.
pub async fn lease_rejects_a_non_positive_lease(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "e", EventSource::Backend)],
        T0,
    )
    .await;
    for lease_ms in [0, -1] {
        let err = store.lease("p1", 10, lease_ms, T0).await.unwrap_err();
        assert_eq!(err.code(), "store_invalid_input");
    }
    assert_eq!(store.lease("p1", 10, 1, T0).await.unwrap().len(), 1);
}

// ---------------------------------------------------------------------------
// retry, release, hold

/// `retry` releases the lease, is not due before `next_attempt_at_ms`, and
/// counts the attempt and its error.
pub async fn retry_delays_the_event_and_counts_the_attempt(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "e", EventSource::Backend)],
        T0,
    )
    .await;
    let ids = lease_ids(&*store, "p1", 10, T0).await;
    let next = T0 + 5_000;
    assert_eq!(
        store
            .retry(&ids, next, "graph 500: temporary")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.stats(T0 + 1).await.unwrap().leased,
        0,
        "lease released"
    );
    assert!(
        store
            .lease("p1", 10, LONG_LEASE_MS, next - 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.due_pixels(next - 1).await.unwrap().is_empty());

    let leased = store.lease("p1", 10, LONG_LEASE_MS, next).await.unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].attempts, 1);
    assert_eq!(
        leased[0].last_error.as_deref(),
        Some("graph 500: temporary")
    );

    assert_eq!(
        store.retry(&ids, next + 10_000, "timeout").await.unwrap(),
        1
    );
    let leased = store
        .lease("p1", 10, LONG_LEASE_MS, next + 10_000)
        .await
        .unwrap();
    assert_eq!(leased[0].attempts, 2);
    assert_eq!(leased[0].last_error.as_deref(), Some("timeout"));

    let gone = EventRowId::from_raw(ids[0].raw() + 1_000_000);
    assert_eq!(
        store.retry(&[gone], T0, "x").await.unwrap(),
        0,
        "unknown ids are ignored"
    );
}

/// `release` returns leased events, due at the given instant, without
/// touching `attempts` or `last_error`.
pub async fn release_gives_events_back_without_counting_an_attempt(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "e", EventSource::Backend)],
        T0,
    )
    .await;
    let ids = lease_ids(&*store, "p1", 10, T0).await;
    assert_eq!(store.release(&ids, T0 + 100).await.unwrap(), 1);
    assert!(
        store
            .lease("p1", 10, LONG_LEASE_MS, T0 + 99)
            .await
            .unwrap()
            .is_empty()
    );
    let leased = store
        .lease("p1", 10, LONG_LEASE_MS, T0 + 100)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].attempts, 0);
    assert_eq!(leased[0].last_error, None);
    assert_eq!(store.release(&ids, T0 + 100).await.unwrap(), 1);
    let leased = store
        .lease("p1", 10, LONG_LEASE_MS, T0 + 100)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1, "release right now makes it due right now");
}

/// An event with `hold_until_ms` is not due before it, and counts as held
/// until then; a hold in the past is no hold.
pub async fn hold_until_delays_the_first_delivery(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let mut held = event("p1", "Purchase", "held", EventSource::Browser);
    held.hold_until_ms = Some(T0 + 60_000);
    let mut stale_hold = event("p1", "Purchase", "past", EventSource::Browser);
    stale_hold.hold_until_ms = Some(T0 - 1);
    enqueue_ok(&*store, vec![held, stale_hold], T0).await;

    let stats = store.stats(T0).await.unwrap();
    assert_eq!((stats.queued, stats.held), (2, 1));
    assert_eq!(pixel_stat(&stats, "p1").held, 1);
    let leased = store
        .lease("p1", 10, LONG_LEASE_MS, T0 + 59_999)
        .await
        .unwrap();
    assert_eq!(event_ids(&leased), ["past"]);
    assert!(store.due_pixels(T0 + 59_999).await.unwrap().is_empty());

    assert_eq!(store.due_pixels(T0 + 60_000).await.unwrap(), ["p1"]);
    assert_eq!(store.stats(T0 + 60_000).await.unwrap().held, 0);
    let leased = store
        .lease("p1", 10, LONG_LEASE_MS, T0 + 60_000)
        .await
        .unwrap();
    assert_eq!(event_ids(&leased), ["held"]);
}

/// `due_pixels` names exactly the pixels with something leasable now, sorted.
pub async fn due_pixels_lists_only_pixels_with_due_events(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    assert!(store.due_pixels(T0).await.unwrap().is_empty());
    let mut later = event("p-held", "Purchase", "h", EventSource::Backend);
    later.hold_until_ms = Some(T0 + 1_000);
    enqueue_ok(
        &*store,
        vec![
            event("p-b", "Purchase", "1", EventSource::Backend),
            event("p-a", "Purchase", "2", EventSource::Backend),
            event("p-leased", "Purchase", "3", EventSource::Backend),
            later,
        ],
        T0,
    )
    .await;
    lease_ids(&*store, "p-leased", 10, T0).await;
    assert_eq!(store.due_pixels(T0).await.unwrap(), ["p-a", "p-b"]);
    let ids = lease_ids(&*store, "p-a", 10, T0).await;
    store.ack(&ids, T0).await.unwrap();
    assert_eq!(store.due_pixels(T0).await.unwrap(), ["p-b"]);
    assert_eq!(
        store.due_pixels(T0 + 1_000).await.unwrap(),
        ["p-b", "p-held"]
    );
}

// ---------------------------------------------------------------------------
// ack and ids

/// `ack` deletes delivered events (once; unknown ids are ignored) and
/// counts them per pixel with the time of the latest delivery.
pub async fn ack_removes_events_and_counts_deliveries(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    enqueue_ok(
        &*store,
        (0..5)
            .map(|i| event("p1", "Purchase", &format!("e{i}"), EventSource::Backend))
            .collect(),
        T0,
    )
    .await;
    let ids = lease_ids(&*store, "p1", 3, T0).await;
    assert_eq!(store.ack(&ids, T0 + 50).await.unwrap(), 3);
    assert_eq!(
        store.ack(&ids, T0 + 60).await.unwrap(),
        0,
        "acking twice deletes nothing more"
    );
    let rest = store
        .lease("p1", 10, LONG_LEASE_MS, T0 + 100)
        .await
        .unwrap();
    assert_eq!(event_ids(&rest), ["e3", "e4"]);

    let stats = store.stats(T0 + 100).await.unwrap();
    assert_eq!((stats.queued, stats.delivered_total), (2, 3));
    let p1 = pixel_stat(&stats, "p1");
    assert_eq!(p1.delivered_total, 3);
    assert_eq!(p1.last_delivered_ms, Some(T0 + 50));

    let rest_ids: Vec<_> = rest.iter().map(|e| e.id).collect();
    assert_eq!(
        store
            .ack(&[rest_ids[0], rest_ids[0]], T0 + 200)
            .await
            .unwrap(),
        1,
        "a repeated id counts once"
    );
    let stats = store.stats(T0 + 200).await.unwrap();
    assert_eq!((stats.queued, stats.delivered_total), (1, 4));
    assert_eq!(pixel_stat(&stats, "p1").last_delivered_ms, Some(T0 + 200));
}

/// Ids are never reused, even after the newest row is deleted, so that a
/// stale `ack` can never hit a newer event.
pub async fn ids_are_never_reused(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let first = enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "a", EventSource::Backend)],
        T0,
    )
    .await;
    store.ack(&first, T0).await.unwrap();
    let second = enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "b", EventSource::Backend)],
        T0,
    )
    .await;
    assert!(second[0] > first[0], "{second:?} after {first:?}");
    assert_eq!(
        store.ack(&first, T0).await.unwrap(),
        0,
        "the stale id matches nothing"
    );
    assert_eq!(store.stats(T0).await.unwrap().queued, 1);

    let dl = store.dead_letter(&second, reason("bad"), T0).await.unwrap();
    store.dlq_delete(&dl).await.unwrap();
    let third = enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "c", EventSource::Backend)],
        T0,
    )
    .await;
    let dl2 = store.dead_letter(&third, reason("bad"), T0).await.unwrap();
    assert!(dl2[0] > dl[0]);
}

// ---------------------------------------------------------------------------
// dead letters

/// `dead_letter` moves events out of the queue with their reason; the
/// entry keeps every field of the event and counts the final attempt.
pub async fn dead_letter_moves_events_with_their_reason(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let mut e = event("p1", "Purchase", "bad", EventSource::Graph);
    e.test_event_code = Some("TEST9".to_owned());
    enqueue_ok(
        &*store,
        vec![
            e.clone(),
            event("p1", "Purchase", "good", EventSource::Graph),
        ],
        T0,
    )
    .await;
    let leased = store.lease("p1", 10, LONG_LEASE_MS, T0).await.unwrap();
    store
        .retry(&[leased[0].id], T0 + 1_000, "first failure")
        .await
        .unwrap();
    let again = lease_ids(&*store, "p1", 1, T0 + 1_000).await;
    assert_eq!(again, [leased[0].id]);

    let dl_ids = store
        .dead_letter(
            &[leased[0].id, EventRowId::from_raw(999_999)],
            reason("100/2804003"),
            T0 + 2_000,
        )
        .await
        .unwrap();
    assert_eq!(dl_ids.len(), 1, "unknown ids are skipped");
    let dl = store
        .dlq_get(dl_ids[0])
        .await
        .unwrap()
        .expect("dead letter");
    assert_eq!(dl.id, dl_ids[0]);
    assert_eq!(dl.pixel_id, "p1");
    assert_eq!(dl.event_name, "Purchase");
    assert_eq!(dl.event_id, "bad");
    assert_eq!(dl.event_time, e.event_time);
    assert_eq!(dl.source, EventSource::Graph);
    assert_eq!(dl.payload, e.payload);
    assert_eq!(dl.attempts, 2, "one retried attempt plus the final one");
    assert_eq!(dl.test_event_code.as_deref(), Some("TEST9"));
    assert_eq!(dl.first_enqueued_ms, T0);
    assert_eq!(dl.code, "100/2804003");
    assert_eq!(dl.message, "rejected: 100/2804003");
    assert_eq!(dl.detail_json.as_deref(), Some(r#"{"code":"100/2804003"}"#));
    assert_eq!(dl.dead_lettered_ms, T0 + 2_000);

    assert_eq!(
        store.ack(&[leased[0].id], T0).await.unwrap(),
        0,
        "no longer queued"
    );
    assert!(
        store
            .lease("p1", 10, LONG_LEASE_MS, T0 + LONG_LEASE_MS * 2)
            .await
            .unwrap()
            .iter()
            .all(|l| l.event_id == "good")
    );
    let stats = store.stats(T0 + 2_000).await.unwrap();
    assert_eq!((stats.queued, stats.dead_letters), (1, 1));
    assert_eq!(pixel_stat(&stats, "p1").dead_letters, 1);
    assert_eq!(
        store
            .dlq_get(DeadLetterId::from_raw(dl_ids[0].raw() + 1_000))
            .await
            .unwrap(),
        None
    );
}

/// `dlq_list` applies every filter field (AND), returns ascending ids, and
/// pages with `limit` + `after_id`.
pub async fn dlq_list_filters_and_pages(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let mut dead = BTreeMap::new();
    for (i, (pixel, name, code, at)) in [
        ("p1", "Purchase", "a", T0),
        ("p1", "Lead", "a", T0 + 10),
        ("p2", "Purchase", "b", T0 + 20),
        ("p1", "Purchase", "b", T0 + 30),
        ("p1", "Purchase", "a", T0 + 40),
    ]
    .into_iter()
    .enumerate()
    {
        let ids = enqueue_ok(
            &*store,
            vec![event(pixel, name, &format!("e{i}"), EventSource::Backend)],
            T0,
        )
        .await;
        let dl = store.dead_letter(&ids, reason(code), at).await.unwrap();
        dead.insert(i, dl[0]);
    }
    let ids_of = |list: &[crate::DeadLetter]| list.iter().map(|d| d.id).collect::<Vec<_>>();

    let all = store.dlq_list(&DlqFilter::default()).await.unwrap();
    assert_eq!(ids_of(&all), dead.values().copied().collect::<Vec<_>>());

    let by_pixel = DlqFilter {
        pixel_id: Some("p1".into()),
        ..Default::default()
    };
    assert_eq!(
        ids_of(&store.dlq_list(&by_pixel).await.unwrap()),
        [dead[&0], dead[&1], dead[&3], dead[&4]]
    );
    let by_name = DlqFilter {
        event_name: Some("Lead".into()),
        ..Default::default()
    };
    assert_eq!(ids_of(&store.dlq_list(&by_name).await.unwrap()), [dead[&1]]);
    let by_code = DlqFilter {
        code: Some("b".into()),
        ..Default::default()
    };
    assert_eq!(
        ids_of(&store.dlq_list(&by_code).await.unwrap()),
        [dead[&2], dead[&3]]
    );
    let since = DlqFilter {
        since_ms: Some(T0 + 30),
        ..Default::default()
    };
    assert_eq!(
        ids_of(&store.dlq_list(&since).await.unwrap()),
        [dead[&3], dead[&4]]
    );
    let combined = DlqFilter {
        pixel_id: Some("p1".into()),
        event_name: Some("Purchase".into()),
        code: Some("a".into()),
        since_ms: Some(T0 + 1),
        ..Default::default()
    };
    assert_eq!(
        ids_of(&store.dlq_list(&combined).await.unwrap()),
        [dead[&4]]
    );
    let none = DlqFilter {
        pixel_id: Some("nope".into()),
        ..Default::default()
    };
    assert!(store.dlq_list(&none).await.unwrap().is_empty());

    let mut page = DlqFilter {
        pixel_id: Some("p1".into()),
        limit: Some(3),
        ..Default::default()
    };
    let first = store.dlq_list(&page).await.unwrap();
    assert_eq!(ids_of(&first), [dead[&0], dead[&1], dead[&3]]);
    page.after_id = first.last().map(|d| d.id);
    assert_eq!(ids_of(&store.dlq_list(&page).await.unwrap()), [dead[&4]]);
    page.after_id = Some(dead[&4]);
    assert!(store.dlq_list(&page).await.unwrap().is_empty());
    let zero = DlqFilter {
        limit: Some(0),
        ..Default::default()
    };
    assert!(store.dlq_list(&zero).await.unwrap().is_empty());
}

/// `dlq_replay` puts dead letters back in the queue, due now, attempts
/// reset, with new ids, bypassing the ledger that would call them
/// duplicates; the optional test code replaces the event's own.
pub async fn dlq_replay_requeues_even_when_the_ledger_would_call_it_a_duplicate(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    let mut coded = event("p1", "Purchase", "coded", EventSource::Backend);
    coded.test_event_code = Some("OWN".to_owned());
    let ids = enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "o-1", EventSource::Backend), coded],
        T0,
    )
    .await;
    lease_ids(&*store, "p1", 10, T0).await;
    store.retry(&ids, T0 + 10, "5xx").await.unwrap();
    let dl = store
        .dead_letter(&ids, reason("max_attempts"), T0 + 20)
        .await
        .unwrap();
    assert_eq!(dl.len(), 2);
    // The key is still in the ledger: a fresh copy is a duplicate...
    let dup = store
        .enqueue(
            vec![event("p1", "Purchase", "o-1", EventSource::Backend)],
            T0 + 30,
        )
        .await
        .unwrap();
    assert!(dup[0].is_duplicate());

    // ...but a replay is not.
    let replay_at = T0 + 40;
    assert_eq!(
        store.dlq_replay(&[dl[0]], None, replay_at).await.unwrap(),
        1
    );
    assert_eq!(
        store.dlq_get(dl[0]).await.unwrap(),
        None,
        "moved out of the DLQ"
    );
    assert_eq!(
        store.dlq_replay(&[dl[0]], None, replay_at).await.unwrap(),
        0,
        "replaying twice moves nothing"
    );
    let leased = store
        .lease("p1", 10, LONG_LEASE_MS, replay_at)
        .await
        .unwrap();
    assert_eq!(event_ids(&leased), ["o-1"]);
    assert_ne!(leased[0].id, ids[0], "a replay gets a new queue id");
    assert_eq!(leased[0].attempts, 0);
    assert_eq!(leased[0].last_error, None);
    assert_eq!(leased[0].first_enqueued_ms, T0);
    assert_eq!(leased[0].payload, payload_for("p1", "Purchase", "o-1"));
    assert_eq!(leased[0].test_event_code, None);

    assert_eq!(
        store
            .dlq_replay(&[dl[1]], Some("TEST77".to_owned()), replay_at)
            .await
            .unwrap(),
        1
    );
    let leased = store
        .lease("p1", 10, LONG_LEASE_MS, replay_at)
        .await
        .unwrap();
    assert_eq!(event_ids(&leased), ["coded"]);
    assert_eq!(leased[0].test_event_code.as_deref(), Some("TEST77"));

    let stats = store.stats(replay_at).await.unwrap();
    assert_eq!((stats.queued, stats.dead_letters), (2, 0));
    // The user keys came back with the events.
    let forgotten = store.forget(&["key-o-1".to_owned()]).await.unwrap();
    assert_eq!(forgotten.queued, 1);
}

/// `dlq_delete` removes entries (once) and nothing else.
pub async fn dlq_delete_removes_entries(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let ids = enqueue_ok(
        &*store,
        (0..3)
            .map(|i| event("p1", "Purchase", &format!("e{i}"), EventSource::Backend))
            .collect(),
        T0,
    )
    .await;
    let dl = store.dead_letter(&ids, reason("x"), T0).await.unwrap();
    assert_eq!(store.dlq_delete(&dl[..2]).await.unwrap(), 2);
    assert_eq!(store.dlq_delete(&dl[..2]).await.unwrap(), 0);
    let left = store.dlq_list(&DlqFilter::default()).await.unwrap();
    assert_eq!(left.iter().map(|d| d.id).collect::<Vec<_>>(), [dl[2]]);
    assert_eq!(store.dlq_replay(&dl[..1], None, T0).await.unwrap(), 0);
    let stats = store.stats(T0).await.unwrap();
    assert_eq!((stats.queued, stats.dead_letters), (0, 1));
    assert_eq!(
        store
            .forget(&["key-e0".to_owned()])
            .await
            .unwrap()
            .dead_letters,
        0,
        "keys went with the entry"
    );
}

/// The DLQ retention purge deletes entries dead-lettered before the cutoff,
/// with their user keys and counts, and nothing else.
pub async fn purge_dead_letters_deletes_only_old_entries(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    let ids = enqueue_ok(
        &*store,
        (0..5)
            .map(|i| event("p1", "Purchase", &format!("e{i}"), EventSource::Backend))
            .chain([event("p2", "Lead", "e5", EventSource::Backend)])
            .collect(),
        T0,
    )
    .await;
    // e0, e1 and p2's e5 at T0; e2 at T0 + 10; e3 stays queued.
    let old = store
        .dead_letter(&[ids[0], ids[1], ids[5]], reason("x"), T0)
        .await
        .unwrap();
    let recent = store
        .dead_letter(&ids[2..3], reason("y"), T0 + 10)
        .await
        .unwrap();
    assert_eq!(
        store.purge_dead_letters(T0).await.unwrap(),
        0,
        "strictly before"
    );
    assert_eq!(store.purge_dead_letters(T0 + 10).await.unwrap(), 3);
    let left = store.dlq_list(&DlqFilter::default()).await.unwrap();
    assert_eq!(left.iter().map(|d| d.id).collect::<Vec<_>>(), recent);
    assert_eq!(store.purge_dead_letters(T0 + 10).await.unwrap(), 0);
    assert_eq!(store.dlq_replay(&old, None, T0 + 20).await.unwrap(), 0);

    let stats = store.stats(T0 + 20).await.unwrap();
    assert_eq!((stats.queued, stats.dead_letters), (2, 1));
    assert_eq!(pixel_stat(&stats, "p1").dead_letters, 1);
    assert_eq!(pixel_stat(&stats, "p2").dead_letters, 0);
    let forgotten = store.forget(&["key-e0".to_owned()]).await.unwrap();
    assert_eq!(forgotten.dead_letters, 0, "keys went with the entry");
    let forgotten = store.forget(&["key-e2".to_owned()]).await.unwrap();
    assert_eq!(forgotten.dead_letters, 1, "the recent entry is intact");
}

// ---------------------------------------------------------------------------
// stats, purge, forget

/// Every counter follows the events through enqueue, lease, hold, retry,
/// ack, dead-letter and replay; pixels stay listed once seen.
pub async fn stats_track_every_transition(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let empty = store.stats(T0).await.unwrap();
    assert_eq!(empty, crate::StoreStats::default());

    let mut held = event("p2", "Lead", "h", EventSource::Browser);
    held.hold_until_ms = Some(T0 + 1_000);
    enqueue_ok(
        &*store,
        vec![
            event("p1", "Purchase", "a", EventSource::Backend),
            event("p1", "Purchase", "b", EventSource::Backend),
            event("p1", "Purchase", "c", EventSource::Backend),
            held,
        ],
        T0,
    )
    .await;
    enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "d", EventSource::Backend)],
        T0 + 5,
    )
    .await;
    store
        .enqueue(
            vec![event("p1", "Purchase", "a", EventSource::Browser)],
            T0 + 6,
        )
        .await
        .unwrap();

    let s = store.stats(T0 + 10).await.unwrap();
    assert_eq!(
        (
            s.queued,
            s.leased,
            s.held,
            s.dead_letters,
            s.delivered_total,
            s.duplicates_total
        ),
        (5, 0, 1, 0, 0, 1)
    );
    assert_eq!(
        s.per_pixel
            .iter()
            .map(|p| p.pixel_id.as_str())
            .collect::<Vec<_>>(),
        ["p1", "p2"]
    );
    let p1 = pixel_stat(&s, "p1");
    assert_eq!(
        (p1.queued, p1.oldest_due_ms, p1.last_delivered_ms),
        (4, Some(T0), None)
    );
    let p2 = pixel_stat(&s, "p2");
    assert_eq!(
        (p2.queued, p2.held, p2.oldest_due_ms),
        (1, 1, Some(T0 + 1_000))
    );

    let leased = lease_ids(&*store, "p1", 3, T0 + 10).await; // a, b, c
    let s = store.stats(T0 + 10).await.unwrap();
    assert_eq!((s.queued, s.leased), (5, 3));
    assert_eq!(pixel_stat(&s, "p1").leased, 3);

    store.ack(&leased[..1], T0 + 20).await.unwrap();
    store
        .retry(&leased[1..2], T0 + 30_000, "err")
        .await
        .unwrap();
    store
        .dead_letter(&leased[2..3], reason("bad"), T0 + 20)
        .await
        .unwrap();
    let s = store.stats(T0 + 20).await.unwrap();
    assert_eq!(
        (s.queued, s.leased, s.dead_letters, s.delivered_total),
        (3, 0, 1, 1)
    );
    let p1 = pixel_stat(&s, "p1");
    assert_eq!(
        (
            p1.queued,
            p1.dead_letters,
            p1.delivered_total,
            p1.last_delivered_ms
        ),
        (2, 1, 1, Some(T0 + 20))
    );
    assert_eq!(
        p1.oldest_due_ms,
        Some(T0 + 5),
        "d is the oldest due; b waits for its retry"
    );

    let dl = store.dlq_list(&DlqFilter::default()).await.unwrap();
    store.dlq_replay(&[dl[0].id], None, T0 + 40).await.unwrap();
    let rest = lease_ids(&*store, "p1", 10, T0 + 30_000).await;
    store.ack(&rest, T0 + 30_001).await.unwrap();
    let s = store.stats(T0 + 30_001).await.unwrap();
    let p1 = pixel_stat(&s, "p1");
    assert_eq!(
        (p1.queued, p1.leased, p1.dead_letters, p1.delivered_total),
        (0, 0, 0, 4)
    );
    assert_eq!(p1.oldest_due_ms, None);
    assert_eq!(s.held, 0, "the hold of p2 has passed");
    assert_eq!((s.queued, s.delivered_total, s.duplicates_total), (1, 4, 1));
}

/// `purge` deletes ledger entries whose window has passed (in bounded
/// batches), keeps live ones (still duplicates), and reports the count.
pub async fn purge_deletes_only_expired_ledger_entries(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let window = store.dedup_window_ms();
    let old: Vec<_> = (0..25)
        .map(|i| event("p1", "Purchase", &format!("old{i}"), EventSource::Backend))
        .collect();
    enqueue_ok(&*store, old, T0).await;
    enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "young", EventSource::Backend)],
        T0 + 1_000,
    )
    .await;

    let nothing = store.purge(T0 + window - 1).await.unwrap();
    assert_eq!(nothing.ledger, 0);
    let report = store.purge(T0 + window).await.unwrap();
    assert_eq!(report.ledger, 25);
    assert!(report.batches >= 1);
    assert_eq!(
        store.purge(T0 + window).await.unwrap().ledger,
        0,
        "purge is idempotent"
    );

    assert_eq!(
        store
            .dedup_report(&DedupReportQuery::default(), T0 + 1_000)
            .await
            .unwrap()
            .rows
            .iter()
            .map(|r| r.events)
            .sum::<u64>(),
        1
    );
    let outcome = store
        .enqueue(
            vec![event("p1", "Purchase", "young", EventSource::Browser)],
            T0 + window,
        )
        .await
        .unwrap();
    assert!(outcome[0].is_duplicate(), "a live entry survives the purge");
    assert_eq!(
        store.stats(T0 + window).await.unwrap().queued,
        26,
        "purge never touches the queue"
    );
}

/// `forget` deletes every queued (even leased) and dead-lettered event
/// carrying any of the keys, plus those events' ledger entries, and nothing else.
pub async fn forget_deletes_every_event_carrying_a_user_key(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    let person = "5f4dcc3b5aa765d61d8327deb882cf99aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_owned();
    let phone = "0b14d501a594442a01c6859541bcb3e8164d183d32937b851835442f69d5c94e".to_owned();
    let mut a = event("p1", "Purchase", "a", EventSource::Backend);
    a.user_keys = vec![person.clone(), phone.clone(), person.clone()];
    let mut b = event("p1", "Purchase", "b", EventSource::Backend);
    b.user_keys = vec![phone.clone()];
    let mut c = event("p2", "Lead", "c", EventSource::Browser);
    c.user_keys = vec![person.clone()];
    let mut d = event("p2", "Lead", "d", EventSource::Browser);
    d.user_keys = vec![person.clone()];
    let other = event("p1", "Purchase", "other", EventSource::Backend);
    let ids = enqueue_ok(&*store, vec![a, b, c, d, other], T0).await;
    lease_ids(&*store, "p1", 1, T0).await; // "a" is in flight
    store
        .dead_letter(&ids[2..3], reason("bad"), T0)
        .await
        .unwrap(); // "c" is a dead letter

    let report = store
        .forget(&[person.clone(), "unknown".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        (report.queued, report.dead_letters, report.ledger),
        (2, 1, 3),
        "a, d queued; c dead; 3 ledger keys"
    );
    assert_eq!(report.events(), 3);

    let stats = store.stats(T0).await.unwrap();
    assert_eq!((stats.queued, stats.dead_letters, stats.leased), (2, 0, 0));
    assert!(
        store
            .dlq_list(&DlqFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    let left = store.lease("p1", 10, LONG_LEASE_MS, T0).await.unwrap();
    assert_eq!(event_ids(&left), ["b", "other"]);
    assert_eq!(
        store.dedup_lookup("p1", "Purchase", "a", T0).await.unwrap(),
        None
    );
    assert!(
        store
            .dedup_lookup("p1", "Purchase", "b", T0)
            .await
            .unwrap()
            .is_some()
    );

    let report = store.forget(&[phone]).await.unwrap();
    assert_eq!(
        (report.queued, report.dead_letters, report.ledger),
        (1, 0, 1),
        "b, even though leased"
    );
    assert_eq!(
        store.forget(&[person]).await.unwrap(),
        Default::default(),
        "forget is idempotent"
    );
}

// ---------------------------------------------------------------------------
// concurrency and lifecycle

/// Many tasks enqueue overlapping keys at once: every key is queued exactly
/// once, every other copy is a duplicate, and the counts add up.
pub async fn concurrent_enqueuers_get_consistent_outcomes(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    let tasks: u32 = 8;
    let batches: u32 = 20;
    let per_batch: u32 = 5;
    // Task t sends keys k = (t / 2) * 1000 + b * per_batch + i: tasks come in
    // pairs that race on identical keys.
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for b in 0..batches {
                let events: Vec<_> = (0..per_batch)
                    .map(|i| {
                        let key = (t / 2) * 1000 + b * per_batch + i;
                        let source = if t % 2 == 0 {
                            EventSource::Browser
                        } else {
                            EventSource::Backend
                        };
                        event(
                            &format!("p{}", key % 3),
                            "Purchase",
                            &format!("k{key}"),
                            source,
                        )
                    })
                    .collect();
                let keys: Vec<_> = events.iter().map(|e| e.event_id.clone()).collect();
                let outcomes = store.enqueue(events, T0).await.expect("enqueue");
                assert_eq!(outcomes.len(), keys.len());
                results.extend(keys.into_iter().zip(outcomes));
            }
            results
        }));
    }
    let mut queued_per_key: BTreeMap<String, u32> = BTreeMap::new();
    let mut duplicates = 0u64;
    let mut ids = BTreeSet::new();
    for handle in handles {
        for (key, outcome) in handle.await.expect("task") {
            match outcome {
                EnqueueOutcome::Queued { id } => {
                    *queued_per_key.entry(key).or_default() += 1;
                    assert!(ids.insert(id), "id {id} handed out twice");
                }
                EnqueueOutcome::Duplicate { .. } => duplicates += 1,
            }
        }
    }
    let distinct = (tasks / 2) * batches * per_batch;
    assert_eq!(queued_per_key.len(), distinct as usize);
    assert!(
        queued_per_key.values().all(|n| *n == 1),
        "each key queued exactly once"
    );
    assert_eq!(duplicates, u64::from(distinct));

    let stats = store.stats(T0).await.unwrap();
    assert_eq!(stats.queued, u64::from(distinct));
    assert_eq!(stats.duplicates_total, duplicates);
    let mut leased = 0;
    for pixel in store.due_pixels(T0).await.unwrap() {
        leased += store
            .lease(&pixel, 10_000, LONG_LEASE_MS, T0)
            .await
            .unwrap()
            .len();
    }
    assert_eq!(leased, distinct as usize);
}

/// A fresh store is writable.
pub async fn check_writable_succeeds_on_a_fresh_store(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    store.check_writable().await.expect("writable");
    store.check_writable().await.expect("still writable");
    assert!(!store.backend_name().is_empty());
    assert_eq!(
        store.stats(T0).await.unwrap().queued,
        0,
        "the probe is not an event"
    );
}

/// `close` is idempotent; writes after it fail with `store_closed`, and
/// nothing written before it is lost.
pub async fn writes_after_close_fail_with_closed(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "a", EventSource::Backend)],
        T0,
    )
    .await;
    store.close().await.expect("close");
    store.close().await.expect("close again");
    let err = store
        .enqueue(vec![event("p1", "Purchase", "b", EventSource::Backend)], T0)
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::Closed);
    assert_eq!(
        store.check_writable().await.unwrap_err().code(),
        "store_closed"
    );
}

fn audit_row(time_ms: i64, pixel_id: &str, outcome: &str, rule_id: &str) -> crate::AuditRow {
    crate::AuditRow {
        time_ms,
        pixel_id: pixel_id.to_owned(),
        event_name: "Purchase".to_owned(),
        event_id: Some(format!("e-{time_ms}")),
        source: "backend".to_owned(),
        outcome: outcome.to_owned(),
        rule_id: rule_id.to_owned(),
        record_json: format!("{{\"time_ms\":{time_ms},\"outcome\":\"{outcome}\"}}"),
    }
}

/// The consent audit: appended rows come back in order with every column,
/// filters narrow them, pages continue, and the retention purge deletes only
/// rows older than the cut-off.
pub async fn audit_rows_are_kept_listed_filtered_and_purged(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    let rows = vec![
        audit_row(T0, "p1", "deliver", "rest-of-world"),
        audit_row(T0 + 1, "p1", "drop", "eea-uk-ch-opt-in"),
        audit_row(T0 + 2, "p2", "deliver_ldu", "us-ldu-states"),
    ];
    store.append_audit(rows.clone(), T0).await.unwrap();
    store
        .append_audit(
            vec![audit_row(T0 + 10_000, "p2", "drop", "default_deny")],
            T0,
        )
        .await
        .unwrap();
    store.append_audit(Vec::new(), T0).await.unwrap();

    let all = store
        .audit_list(&crate::AuditFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "ascending ids");
    assert_eq!(all[0].row, rows[0]);
    assert_eq!(all[2].row, rows[2]);

    let drops = store
        .audit_list(&crate::AuditFilter {
            outcome: Some("drop".into()),
            ..crate::AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        drops.iter().map(|e| e.row.time_ms).collect::<Vec<_>>(),
        vec![T0 + 1, T0 + 10_000]
    );
    let p2_since = store
        .audit_list(&crate::AuditFilter {
            pixel_id: Some("p2".into()),
            since_ms: Some(T0 + 5),
            ..crate::AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(p2_since.len(), 1);
    assert_eq!(p2_since[0].row.rule_id, "default_deny");
    let page = store
        .audit_list(&crate::AuditFilter {
            limit: Some(2),
            ..crate::AuditFilter::default()
        })
        .await
        .unwrap();
    let next = store
        .audit_list(&crate::AuditFilter {
            after_id: Some(page[1].id),
            ..crate::AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len() + next.len(), 4);
    assert_eq!(next[0].id, all[2].id);

    assert_eq!(store.purge_audit(T0 + 2).await.unwrap(), 2);
    let left = store
        .audit_list(&crate::AuditFilter::default())
        .await
        .unwrap();
    assert_eq!(
        left.iter().map(|e| e.row.time_ms).collect::<Vec<_>>(),
        vec![T0 + 2, T0 + 10_000]
    );
    assert_eq!(store.purge_audit(T0).await.unwrap(), 0);
}

/// The audit row of a decision about `event`, as the gateway writes it.
fn audit_for(event: &NewEvent, outcome: &str) -> crate::AuditRow {
    crate::AuditRow {
        time_ms: T0,
        pixel_id: event.pixel_id.clone(),
        event_name: event.event_name.clone(),
        event_id: Some(event.event_id.clone()),
        source: event.source.as_str().to_owned(),
        outcome: outcome.to_owned(),
        rule_id: "rest-of-world".to_owned(),
        record_json: format!(r#"{{"event_id":"{}"}}"#, event.event_id),
    }
}

/// Every audit row of the store, oldest first (all pages).
async fn all_audit_rows(store: &dyn Store) -> Vec<crate::AuditRow> {
    let mut rows = Vec::new();
    let mut after_id = None;
    loop {
        let page = store
            .audit_list(&crate::AuditFilter {
                after_id,
                limit: Some(crate::MAX_DLQ_LIMIT),
                ..crate::AuditFilter::default()
            })
            .await
            .expect("audit_list");
        let Some(last) = page.last() else {
            return rows;
        };
        after_id = Some(last.id);
        rows.extend(page.into_iter().map(|e| e.row));
    }
}

/// `enqueue_with_audit` is `append_audit` and `enqueue` in one write: the
/// outcomes are `enqueue`'s (duplicates included), the rows are appended
/// whatever the outcomes, either list may be empty, and both empty is a
/// no-op.
pub async fn enqueue_with_audit_commits_events_and_audit_rows_together(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    let a = event("p1", "Purchase", "a", EventSource::Backend);
    let b = event("p1", "Lead", "b", EventSource::Browser);
    let dropped = event("p2", "Purchase", "dropped", EventSource::Backend);
    let rows = vec![
        audit_for(&a, "deliver"),
        audit_for(&dropped, "drop"),
        audit_for(&b, "deliver_ldu"),
    ];
    let outcomes = store
        .enqueue_with_audit(vec![a.clone(), b.clone()], rows.clone(), T0)
        .await
        .expect("enqueue_with_audit");
    assert_eq!(
        outcomes.len(),
        2,
        "one outcome per event, none per audit row"
    );
    assert!(outcomes.iter().all(|o| o.queued_id().is_some()));
    assert_eq!(
        all_audit_rows(&*store).await,
        rows,
        "rows in order, every column"
    );

    // A later copy is a duplicate, and its decision is audited all the same.
    let again = audit_for(&a, "deliver");
    let outcomes = store
        .enqueue_with_audit(vec![a.clone()], vec![again.clone()], T0 + 1)
        .await
        .unwrap();
    assert!(matches!(
        outcomes.as_slice(),
        [EnqueueOutcome::Duplicate {
            first_source: EventSource::Backend,
            first_seen_ms: T0
        }]
    ));

    // Audit rows only (every event of a request dropped), then nothing at all.
    let only = audit_for(&event("p2", "Lead", "x", EventSource::Browser), "drop");
    assert!(
        store
            .enqueue_with_audit(Vec::new(), vec![only.clone()], T0 + 2)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .enqueue_with_audit(Vec::new(), Vec::new(), T0 + 3)
            .await
            .unwrap()
            .is_empty()
    );
    let mut expected = rows;
    expected.extend([again, only]);
    assert_eq!(all_audit_rows(&*store).await, expected);

    // Events only: as `enqueue`.
    let c = event("p1", "Purchase", "c", EventSource::Backend);
    let outcomes = store
        .enqueue_with_audit(vec![c], Vec::new(), T0 + 4)
        .await
        .unwrap();
    assert!(outcomes[0].queued_id().is_some());
    assert_eq!(all_audit_rows(&*store).await.len(), expected.len());

    let stats = store.stats(T0 + 4).await.unwrap();
    assert_eq!((stats.queued, stats.duplicates_total), (3, 1));
    let leased = store.lease("p1", 10, LONG_LEASE_MS, T0 + 4).await.unwrap();
    assert_eq!(event_ids(&leased), ["a", "b", "c"]);
}

/// A call that fails stores nothing: neither its events nor its audit rows.
pub async fn enqueue_with_audit_fails_as_a_whole(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let good = event("p1", "Purchase", "good", EventSource::Backend);
    let mut bad = event("p1", "Purchase", "bad", EventSource::Backend);
    bad.pixel_id.clear();
    let err = store
        .enqueue_with_audit(
            vec![good.clone(), bad.clone()],
            vec![audit_for(&good, "deliver"), audit_for(&bad, "deliver")],
            T0,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "store_invalid_input");
    assert!(
        all_audit_rows(&*store).await.is_empty(),
        "no audit row kept"
    );
    let stats = store.stats(T0).await.unwrap();
    assert_eq!(stats.queued, 0, "no event kept");
    assert_eq!(
        store
            .dedup_lookup("p1", "Purchase", "good", T0)
            .await
            .unwrap(),
        None,
        "no ledger entry kept"
    );

    // After close, the write fails with `store_closed` and leaves nothing.
    store.close().await.unwrap();
    let err = store
        .enqueue_with_audit(vec![good.clone()], vec![audit_for(&good, "deliver")], T0)
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::Closed);
}

/// Many concurrent callers (whose writes a backend may group into shared
/// transactions): every call's events and rows are all there, and every
/// queued or duplicate event has its audit row.
pub async fn concurrent_enqueue_with_audit_never_stores_an_event_without_its_audit(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    let tasks: u32 = 8;
    let calls: u32 = 15;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            let mut queued = Vec::new();
            for c in 0..calls {
                // Pairs of tasks send the same keys (duplicates across
                // calls); every third call also audits a dropped event.
                let events: Vec<NewEvent> = (0..3)
                    .map(|i| {
                        let id = format!("t{}-c{c}-e{i}", t / 2);
                        event("p1", "Purchase", &id, EventSource::Backend)
                    })
                    .collect();
                let mut rows: Vec<_> = events.iter().map(|e| audit_for(e, "deliver")).collect();
                if c % 3 == 0 {
                    let id = format!("t{t}-c{c}-dropped");
                    rows.push(audit_for(
                        &event("p1", "Purchase", &id, EventSource::Backend),
                        "drop",
                    ));
                }
                let outcomes = store
                    .enqueue_with_audit(events.clone(), rows, T0)
                    .await
                    .expect("enqueue_with_audit");
                assert_eq!(outcomes.len(), events.len());
                for (e, o) in events.into_iter().zip(outcomes) {
                    if o.queued_id().is_some() {
                        queued.push(e.event_id);
                    }
                }
            }
            queued
        }));
    }
    let mut queued = BTreeSet::new();
    for handle in handles {
        for id in handle.await.expect("task") {
            assert!(queued.insert(id), "a key queued twice");
        }
    }
    let distinct = (tasks / 2) * calls * 3;
    assert_eq!(queued.len(), distinct as usize);

    let rows = all_audit_rows(&*store).await;
    let dropped_rows = tasks * calls.div_ceil(3);
    assert_eq!(rows.len(), (tasks * calls * 3 + dropped_rows) as usize);
    let mut audited: BTreeMap<String, u32> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.outcome == "deliver") {
        *audited.entry(row.event_id.clone().unwrap()).or_default() += 1;
    }
    assert_eq!(audited.len(), distinct as usize);
    assert!(
        audited.values().all(|n| *n == 2),
        "both copies of every key audited"
    );
    let leased = store.lease("p1", 10_000, LONG_LEASE_MS, T0).await.unwrap();
    assert_eq!(leased.len(), distinct as usize);
    assert!(
        leased.iter().all(|e| audited.contains_key(&e.event_id)),
        "no event without its audit row"
    );
}

// ---------------------------------------------------------------------------
// dual tracking: identity merge and the dedup report

/// An event that waits `hold_ms` for a merge, as the gateway enqueues a
/// browser copy when the merge window is on.
fn held(pixel: &str, name: &str, id: &str, at: i64, hold_ms: i64) -> NewEvent {
    let mut e = event(pixel, name, id, EventSource::Browser);
    e.hold_until_ms = Some(at + hold_ms);
    e
}

fn merge_request(pixel: &str, name: &str, id: &str, source: EventSource) -> MergeRequest {
    MergeRequest {
        pixel_id: pixel.to_owned(),
        event_name: name.to_owned(),
        event_id: id.to_owned(),
        source,
        user_keys: vec![format!("merged-key-{id}")],
        order_id: Some(format!("order-of-{id}")),
    }
}

/// A merge function that checks it got `expected` and answers `merged`.
fn merging_into(expected: Vec<u8>, merged: &[u8]) -> MergeFn {
    let merged = merged.to_vec();
    Box::new(move |held: &[u8]| {
        assert_eq!(held, expected.as_slice(), "merge gets the held payload");
        Some(merged.clone())
    })
}

/// A merge function that must never be called.
fn never_called() -> MergeFn {
    Box::new(|_: &[u8]| panic!("merge function called although nothing is held"))
}

/// The ledger records the order id (first one seen, capped) and whether the
/// sender gave the event id.
pub async fn ledger_keeps_order_id_and_event_id_origin(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let mut a = event("p1", "Purchase", "order-7731", EventSource::Browser);
    a.event_id_origin = EventIdOrigin::OrderId;
    let mut b = event("p1", "Purchase", "random-id", EventSource::Backend);
    b.event_id_origin = EventIdOrigin::Generated;
    b.order_id = Some("x".repeat(crate::MAX_ORDER_ID_BYTES + 50));
    let c = event("p1", "Lead", "sent-id", EventSource::Graph);
    enqueue_ok(&*store, vec![a, b, c], T0).await;
    // A duplicate fills in an order id the first copy did not carry...
    let mut dup = event("p1", "Purchase", "order-7731", EventSource::Backend);
    dup.order_id = Some("7731".to_owned());
    assert!(store.enqueue(vec![dup], T0 + 1).await.unwrap()[0].is_duplicate());
    // ...but never replaces one.
    let mut dup = event("p1", "Purchase", "order-7731", EventSource::Import);
    dup.order_id = Some("other".to_owned());
    assert!(store.enqueue(vec![dup], T0 + 2).await.unwrap()[0].is_duplicate());

    let lookup = async |name: &str, id: &str| {
        store
            .dedup_lookup("p1", name, id, T0 + 3)
            .await
            .unwrap()
            .expect("entry")
    };
    let a = lookup("Purchase", "order-7731").await;
    assert_eq!(a.order_id.as_deref(), Some("7731"));
    assert_eq!(a.event_id_origin, EventIdOrigin::OrderId);
    assert_eq!((a.duplicates, a.merged), (2, 0));
    let b = lookup("Purchase", "random-id").await;
    assert_eq!(b.event_id_origin, EventIdOrigin::Generated);
    assert_eq!(b.order_id.map(|o| o.len()), Some(crate::MAX_ORDER_ID_BYTES));
    let c = lookup("Lead", "sent-id").await;
    assert_eq!((c.order_id, c.event_id_origin), (None, EventIdOrigin::Sent));
}

/// A later copy from another source merges into the held copy: the copy
/// gets the merged payload and the later copy's user keys, is released at
/// once, and the ledger records the source and the merge (not a duplicate).
pub async fn merge_held_folds_a_later_copy_into_the_held_one(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    let original = held("p1", "Purchase", "order-1", T0, 30_000);
    let original_payload = original.payload.clone();
    let id = enqueue_ok(&*store, vec![original], T0).await[0];
    assert!(
        lease_ids(&*store, "p1", 10, T0 + 1_000).await.is_empty(),
        "held"
    );
    assert_eq!(store.stats(T0 + 1_000).await.unwrap().held, 1);

    let outcome = store
        .merge_held(
            merge_request("p1", "Purchase", "order-1", EventSource::Backend),
            merging_into(original_payload, b"{\"merged\":true}"),
            T0 + 1_000,
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        MergeOutcome::Merged {
            id,
            into_source: EventSource::Browser
        }
    );
    let stats = store.stats(T0 + 1_000).await.unwrap();
    assert_eq!(
        (stats.queued, stats.held, stats.duplicates_total),
        (1, 0, 0)
    );
    let entry = store
        .dedup_lookup("p1", "Purchase", "order-1", T0 + 1_000)
        .await
        .unwrap()
        .expect("entry");
    assert_eq!(entry.first_source, EventSource::Browser);
    assert_eq!(
        entry.sources,
        SourceSet::EMPTY
            .with(EventSource::Browser)
            .with(EventSource::Backend)
    );
    assert_eq!((entry.merged, entry.duplicates), (1, 0));
    assert_eq!(entry.last_seen_ms, T0 + 1_000);
    assert_eq!(entry.order_id.as_deref(), Some("order-of-order-1"));

    // Released: due now, with the merged payload, once.
    let leased = store
        .lease("p1", 10, LONG_LEASE_MS, T0 + 1_000)
        .await
        .unwrap();
    assert_eq!(event_ids(&leased), vec!["order-1"]);
    assert_eq!(leased[0].id, id);
    assert_eq!(leased[0].payload, b"{\"merged\":true}".to_vec());
    assert_eq!(leased[0].source, EventSource::Browser);

    // A third copy is a plain duplicate: the hold is over.
    let again = store
        .merge_held(
            merge_request("p1", "Purchase", "order-1", EventSource::Graph),
            never_called(),
            T0 + 1_500,
        )
        .await
        .unwrap();
    assert_eq!(again, MergeOutcome::NotMerged);
    let dup = store
        .enqueue(
            vec![event("p1", "Purchase", "order-1", EventSource::Graph)],
            T0 + 1_500,
        )
        .await
        .unwrap();
    assert!(dup[0].is_duplicate());

    // The merged-in user keys are the event's: `forget` finds it by them.
    let forgotten = store
        .forget(&["merged-key-order-1".to_owned()])
        .await
        .unwrap();
    assert_eq!(forgotten.queued, 1);
}

/// Nothing to merge into: no entry, no hold, a hold that has passed, a copy
/// from the same source, another key. The merge function is not called and
/// nothing changes.
pub async fn merge_held_needs_a_copy_that_is_still_held(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let not_held = event("p1", "Purchase", "plain", EventSource::Browser);
    enqueue_ok(
        &*store,
        vec![
            held("p1", "Purchase", "held", T0, 30_000),
            not_held,
            held("p1", "Lead", "held", T0, 30_000),
        ],
        T0,
    )
    .await;
    let cases: [(&str, &str, &str, EventSource, i64, &str); 6] = [
        (
            "p1",
            "Purchase",
            "unknown",
            EventSource::Backend,
            T0 + 1,
            "no such key",
        ),
        (
            "p1",
            "Purchase",
            "plain",
            EventSource::Backend,
            T0 + 1,
            "never held",
        ),
        (
            "p1",
            "Purchase",
            "held",
            EventSource::Browser,
            T0 + 1,
            "same source",
        ),
        (
            "p2",
            "Purchase",
            "held",
            EventSource::Backend,
            T0 + 1,
            "other pixel",
        ),
        (
            "p1",
            "AddToCart",
            "held",
            EventSource::Backend,
            T0 + 1,
            "other name",
        ),
        (
            "p1",
            "Purchase",
            "held",
            EventSource::Backend,
            T0 + 30_000,
            "hold over",
        ),
    ];
    for (pixel, name, id, source, at, why) in cases {
        let outcome = store
            .merge_held(merge_request(pixel, name, id, source), never_called(), at)
            .await
            .unwrap();
        assert_eq!(outcome, MergeOutcome::NotMerged, "{why}");
    }
    let entry = store
        .dedup_lookup("p1", "Purchase", "held", T0 + 2)
        .await
        .unwrap()
        .expect("entry");
    assert_eq!(entry.sources, SourceSet::EMPTY.with(EventSource::Browser));
    assert_eq!(entry.merged, 0);
    let stats = store.stats(T0 + 2).await.unwrap();
    assert_eq!((stats.queued, stats.held), (3, 2));
    // After the hold the copy is delivered as enqueued.
    let leased = store
        .lease("p1", 10, LONG_LEASE_MS, T0 + 30_000)
        .await
        .unwrap();
    assert_eq!(leased.len(), 3);
    let held_copy = leased
        .iter()
        .find(|e| e.event_name == "Purchase" && e.event_id == "held");
    assert_eq!(
        held_copy.map(|e| e.payload.clone()),
        Some(payload_for("p1", "Purchase", "held"))
    );
}

/// A copy leased by a node whose clock passed the hold is never merged into,
/// even by a caller whose `now_ms` is still inside the hold (clock skew
/// between nodes, or a `now_ms` taken before waiting for the store).
pub async fn merge_held_never_touches_a_leased_copy(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    enqueue_ok(
        &*store,
        vec![held("p1", "Purchase", "raced", T0, 30_000)],
        T0,
    )
    .await;
    let leased = lease_ids(&*store, "p1", 10, T0 + 30_000).await;
    assert_eq!(leased.len(), 1);
    let outcome = store
        .merge_held(
            merge_request("p1", "Purchase", "raced", EventSource::Backend),
            never_called(),
            T0 + 1_000,
        )
        .await
        .unwrap();
    assert_eq!(outcome, MergeOutcome::NotMerged);
    let entry = store
        .dedup_lookup("p1", "Purchase", "raced", T0 + 1_000)
        .await
        .unwrap()
        .expect("entry");
    assert_eq!(entry.merged, 0);
    assert_eq!(store.ack(&leased, T0 + 31_000).await.unwrap(), 1);
}

/// A merge function that refuses (returns `None`) or panics leaves the held
/// copy as it was; the store keeps working.
pub async fn merge_held_refused_or_panicking_changes_nothing(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    enqueue_ok(&*store, vec![held("p1", "Purchase", "h", T0, 30_000)], T0).await;
    let refuse: MergeFn = Box::new(|_: &[u8]| None);
    let explode: MergeFn = Box::new(|_: &[u8]| panic!("merge exploded"));
    for merge in [refuse, explode] {
        let outcome = store
            .merge_held(
                merge_request("p1", "Purchase", "h", EventSource::Backend),
                merge,
                T0 + 1,
            )
            .await
            .unwrap();
        assert_eq!(outcome, MergeOutcome::NotMerged);
    }
    let entry = store
        .dedup_lookup("p1", "Purchase", "h", T0 + 1)
        .await
        .unwrap()
        .expect("entry");
    assert_eq!(
        (entry.merged, entry.sources.bits()),
        (0, EventSource::Browser.bit())
    );
    assert_eq!(store.stats(T0 + 1).await.unwrap().held, 1);
    // The store still writes, and a good merge still works.
    store.check_writable().await.unwrap();
    let outcome = store
        .merge_held(
            merge_request("p1", "Purchase", "h", EventSource::Backend),
            merging_into(payload_for("p1", "Purchase", "h"), b"{}"),
            T0 + 2,
        )
        .await
        .unwrap();
    assert!(matches!(outcome, MergeOutcome::Merged { .. }));
}

/// Per pixel and event name: browser only, server only, both (deduplicated),
/// merged, duplicates, events without an id; `since` and `pixel` filters.
pub async fn dedup_report_counts_sources_merges_and_duplicates(
    factory: impl AsyncFn() -> Arc<dyn Store>,
) {
    let store = factory().await;
    let mut random = event("p1", "Purchase", "gen-1", EventSource::Backend);
    random.event_id_origin = EventIdOrigin::Generated;
    let mut from_order = event("p1", "Purchase", "order-9", EventSource::Backend);
    from_order.event_id_origin = EventIdOrigin::OrderId;
    from_order.order_id = Some("9".to_owned());
    enqueue_ok(
        &*store,
        vec![
            event("p1", "Purchase", "b-only", EventSource::Browser),
            random,
            from_order,
            event("p1", "Purchase", "pair", EventSource::Browser),
            held("p1", "Purchase", "merged", T0, 30_000),
            event("p1", "Lead", "g", EventSource::Graph),
            event("p1", "Lead", "i", EventSource::Import),
            event("p2", "Purchase", "other-pixel", EventSource::Browser),
        ],
        T0,
    )
    .await;
    for (id, source) in [
        ("pair", EventSource::Backend),
        ("pair", EventSource::Browser),
        ("b-only", EventSource::Browser),
    ] {
        let out = store
            .enqueue(vec![event("p1", "Purchase", id, source)], T0 + 10)
            .await
            .unwrap();
        assert!(out[0].is_duplicate());
    }
    let merged = store
        .merge_held(
            merge_request("p1", "Purchase", "merged", EventSource::Backend),
            merging_into(payload_for("p1", "Purchase", "merged"), b"{}"),
            T0 + 20,
        )
        .await
        .unwrap();
    assert!(matches!(merged, MergeOutcome::Merged { .. }));
    // Later in the period: one more server-only event.
    enqueue_ok(
        &*store,
        vec![event("p1", "Purchase", "late", EventSource::Backend)],
        T0 + 5_000,
    )
    .await;

    let report = store
        .dedup_report(&DedupReportQuery::default(), T0 + 6_000)
        .await
        .unwrap();
    assert_eq!(report.until_ms, T0 + 6_000);
    assert!(report.since_ms <= T0);
    let rows: Vec<(&str, &str, [u64; 9])> = report
        .rows
        .iter()
        .map(|r| {
            (
                r.pixel_id.as_str(),
                r.event_name.as_str(),
                [
                    r.events,
                    r.browser_only,
                    r.server_only,
                    r.both,
                    r.merged,
                    r.duplicates,
                    r.without_event_id,
                    r.random_event_id,
                    r.browser_only + r.server_only + r.both + r.merged,
                ],
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("p1", "Lead", [2, 0, 2, 0, 0, 0, 0, 0, 2]),
            ("p1", "Purchase", [6, 1, 3, 1, 1, 3, 2, 1, 6]),
            ("p2", "Purchase", [1, 1, 0, 0, 0, 0, 0, 0, 1]),
        ]
    );
    assert!(!report.truncated);

    let since = store
        .dedup_report(
            &DedupReportQuery {
                pixel_id: Some("p1".to_owned()),
                since_ms: Some(T0 + 1_000),
                ..DedupReportQuery::default()
            },
            T0 + 6_000,
        )
        .await
        .unwrap();
    assert_eq!(since.since_ms, T0 + 1_000);
    assert_eq!(since.rows.len(), 1);
    assert_eq!(
        (
            since.rows[0].event_name.as_str(),
            since.rows[0].events,
            since.rows[0].server_only
        ),
        ("Purchase", 1, 1)
    );
    // Expired keys are not reported, even before purge.
    let later = store
        .dedup_report(
            &DedupReportQuery::default(),
            T0 + 4_000 + store.dedup_window_ms(),
        )
        .await
        .unwrap();
    assert_eq!(later.rows.len(), 1, "{later:?}");
    assert_eq!(later.rows[0].events, 1);
}

/// The suspicious cases: one order id under several event ids (per pixel and
/// event name) and one event id under several event names (per pixel);
/// capped at `max_examples` with `truncated` set.
pub async fn dedup_report_lists_suspicious_ids(factory: impl AsyncFn() -> Arc<dyn Store>) {
    let store = factory().await;
    let with_order = |id: &str, source: EventSource, order: &str| {
        let mut e = event("p1", "Purchase", id, source);
        e.order_id = Some(order.to_owned());
        e
    };
    enqueue_ok(
        &*store,
        vec![
            // Order 77: the page used order-77, the backend its own id.
            with_order("order-77", EventSource::Browser, "77"),
            with_order("7f3c-uuid", EventSource::Backend, "77"),
            // Order 78: consistent ids (a duplicate, not suspicious).
            with_order("order-78", EventSource::Browser, "78"),
            // Order 79 on another event name: not mixed with Purchase.
            {
                let mut e = event("p1", "InitiateCheckout", "ic-79", EventSource::Browser);
                e.order_id = Some("79".to_owned());
                e
            },
            with_order("order-79", EventSource::Browser, "79"),
            // One id, two names (the backend's casing differs).
            event("p1", "Purchase", "evt-5", EventSource::Browser),
            event("p1", "purchase", "evt-5", EventSource::Backend),
            event("p2", "Lead", "evt-5", EventSource::Backend),
            // More conflicts, for the cap.
            with_order("a-80", EventSource::Browser, "80"),
            with_order("b-80", EventSource::Backend, "80"),
            with_order("a-81", EventSource::Browser, "81"),
            with_order("b-81", EventSource::Backend, "81"),
            with_order("c-81", EventSource::Graph, "81"),
        ],
        T0,
    )
    .await;
    assert!(
        store
            .enqueue(
                vec![with_order("order-78", EventSource::Backend, "78")],
                T0 + 1
            )
            .await
            .unwrap()[0]
            .is_duplicate()
    );

    let report = store
        .dedup_report(&DedupReportQuery::default(), T0 + 2)
        .await
        .unwrap();
    let orders: Vec<(&str, &str, &str, u64, Vec<&str>)> = report
        .order_ids_with_several_event_ids
        .iter()
        .map(|o| {
            (
                o.pixel_id.as_str(),
                o.event_name.as_str(),
                o.order_id.as_str(),
                o.event_id_count,
                o.event_ids.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        orders,
        vec![
            ("p1", "Purchase", "77", 2, vec!["7f3c-uuid", "order-77"]),
            ("p1", "Purchase", "80", 2, vec!["a-80", "b-80"]),
            ("p1", "Purchase", "81", 3, vec!["a-81", "b-81", "c-81"]),
        ]
    );
    let names: Vec<(&str, &str, Vec<&str>)> = report
        .event_ids_with_several_event_names
        .iter()
        .map(|c| {
            (
                c.pixel_id.as_str(),
                c.event_id.as_str(),
                c.event_names.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(names, vec![("p1", "evt-5", vec!["Purchase", "purchase"])]);
    assert!(!report.truncated);

    let capped = store
        .dedup_report(
            &DedupReportQuery {
                max_examples: Some(2),
                ..DedupReportQuery::default()
            },
            T0 + 2,
        )
        .await
        .unwrap();
    assert_eq!(capped.order_ids_with_several_event_ids.len(), 2);
    assert_eq!(capped.order_ids_with_several_event_ids[1].order_id, "80");
    assert!(capped.truncated);
    let other_pixel = store
        .dedup_report(
            &DedupReportQuery {
                pixel_id: Some("p2".to_owned()),
                ..DedupReportQuery::default()
            },
            T0 + 2,
        )
        .await
        .unwrap();
    assert!(other_pixel.order_ids_with_several_event_ids.is_empty());
    assert!(other_pixel.event_ids_with_several_event_names.is_empty());
}
