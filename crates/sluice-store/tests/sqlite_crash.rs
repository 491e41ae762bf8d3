//! `kill -9` loses nothing acknowledged, and its leases do not outlive it.
//!
//! The test re-runs its own test binary as a child process (selected by the
//! `SLUICE_STORE_CRASH_CHILD_DB` environment variable), which enqueues
//! batches as fast as it can and prints the ids of every batch whose
//! `enqueue` returned `Ok`. The parent reads those lines, SIGKILLs the child
//! in the middle of its work, reopens the file and checks that every
//! acknowledged event is there. The child may have committed more than it
//! printed (killed between commit and print); it must never have printed
//! more than it committed. The child writes each event's consent-audit row
//! in the same `enqueue_with_audit`: after the kill, exactly the stored
//! events have audit rows.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use sluice_store::conformance::{T0, event};
use sluice_store::{
    AuditFilter, AuditRow, EventSource, MAX_DLQ_LIMIT, NewEvent, SqliteOptions, SqliteStore, Store,
};

const CHILD_ENV: &str = "SLUICE_STORE_CRASH_CHILD_DB";
const CHILD_TEST: &str = "crash_child_enqueues_until_killed";
/// Acknowledged batches to see before pulling the plug.
const ACKED_BATCHES_BEFORE_KILL: usize = 40;
const EVENTS_PER_BATCH: usize = 10;

/// Child half: does nothing unless started by the parent test.
#[test]
fn crash_child_enqueues_until_killed() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = child_runtime();
    runtime.block_on(async move {
        let store = Arc::new(
            SqliteStore::open(&path, SqliteOptions::default())
                .await
                .expect("child open"),
        );
        // Several concurrent enqueuers, so kills also land mid group commit.
        let mut tasks = Vec::new();
        for worker in 0..4 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                for batch in 0u64.. {
                    let events: Vec<NewEvent> = (0..EVENTS_PER_BATCH)
                        .map(|i| {
                            event(
                                "p1",
                                "Purchase",
                                &format!("w{worker}-b{batch}-e{i}"),
                                EventSource::Backend,
                            )
                        })
                        .collect();
                    // One consent-audit row per event, in the same write.
                    let audit: Vec<AuditRow> = events.iter().map(audit_row).collect();
                    let outcomes = store
                        .enqueue_with_audit(events, audit, T0)
                        .await
                        .expect("child enqueue");
                    let ids: Vec<String> = outcomes
                        .iter()
                        .map(|o| o.queued_id().expect("no duplicates here").to_string())
                        .collect();
                    // The parent only trusts lines with the end marker.
                    println!("acked {} end", ids.join(" "));
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("crash.db");

    let (mut child, lines_rx, reader) = spawn_child(CHILD_TEST, CHILD_ENV, &path);

    let mut acked = BTreeSet::new();
    let mut batches = 0;
    while batches < ACKED_BATCHES_BEFORE_KILL {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("child stopped acknowledging");
        if let Some(ids) = acked_ids(&line) {
            acked.extend(ids);
            batches += 1;
        }
    }
    child.kill().expect("SIGKILL"); // SIGKILL on Unix: no destructor runs.
    child.wait().unwrap();
    // Lines already written before the kill were acknowledged too.
    reader.join().unwrap();
    for line in lines_rx.try_iter() {
        if let Some(ids) = acked_ids(&line) {
            acked.extend(ids);
        }
    }
    assert!(acked.len() >= ACKED_BATCHES_BEFORE_KILL * EVENTS_PER_BATCH);

    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .expect("reopen after kill");
    let stats = store.stats(T0).await.unwrap();
    assert!(stats.queued >= acked.len() as u64);
    let mut found = BTreeSet::new();
    let mut found_event_ids = BTreeSet::new();
    loop {
        let batch = store.lease("p1", 5_000, 60_000, T0).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for e in batch {
            found.insert(e.id.to_string());
            found_event_ids.insert(e.event_id);
        }
    }
    assert_eq!(found.len() as u64, stats.queued, "counters match the rows");
    let missing: Vec<_> = acked.difference(&found).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");

    // Events and their audit rows were committed together: exactly the
    // stored events have audit rows, whatever the kill cut.
    let mut audited = BTreeSet::new();
    let mut after_id = None;
    loop {
        let page = store
            .audit_list(&AuditFilter {
                after_id,
                limit: Some(MAX_DLQ_LIMIT),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after_id = Some(last.id);
        audited.extend(page.into_iter().filter_map(|e| e.row.event_id));
    }
    let unaudited: Vec<_> = found_event_ids.difference(&audited).collect();
    assert!(unaudited.is_empty(), "stored without audit: {unaudited:?}");
    let orphans: Vec<_> = audited.difference(&found_event_ids).collect();
    assert!(orphans.is_empty(), "audit rows without event: {orphans:?}");
}

/// The consent-audit row the child writes with `event`.
fn audit_row(event: &NewEvent) -> AuditRow {
    AuditRow {
        time_ms: T0,
        pixel_id: event.pixel_id.clone(),
        event_name: event.event_name.clone(),
        event_id: Some(event.event_id.clone()),
        source: event.source.as_str().to_owned(),
        outcome: "deliver".to_owned(),
        rule_id: "rest-of-world".to_owned(),
        record_json: "{}".to_owned(),
    }
}

const LEASE_CHILD_ENV: &str = "SLUICE_STORE_LEASE_CHILD_DB";
const LEASE_CHILD_TEST: &str = "lease_child_leases_then_waits_to_be_killed";
const LEASED_EVENTS: usize = 20;

/// Child half of the lease test: claims the store (as `sluice serve` does),
/// queues and leases events for ten minutes, says so, and waits for SIGKILL.
#[test]
fn lease_child_leases_then_waits_to_be_killed() {
    let Ok(path) = std::env::var(LEASE_CHILD_ENV) else {
        return;
    };
    let runtime = child_runtime();
    let _store = runtime.block_on(async move {
        let store = SqliteStore::open(&path, SqliteOptions::default())
            .await
            .expect("child open");
        assert_eq!(store.claim_ownership(T0).await.unwrap(), Some(0));
        let events: Vec<NewEvent> = (0..LEASED_EVENTS)
            .map(|i| event("p1", "Purchase", &format!("l{i:02}"), EventSource::Backend))
            .collect();
        store.enqueue(events, T0).await.expect("child enqueue");
        let leased = store.lease("p1", 1_000, 600_000, T0).await.unwrap();
        println!("leased {} end", leased.len());
        store
    });
    loop {
        std::thread::park();
    }
}

/// `kill -9` of the owner with events under a ten-minute lease: the next
/// owner gives the leases back at once instead of waiting them out, and a
/// store that cannot claim ownership (another owner is alive) leaves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_owner_gives_back_the_leases_of_a_killed_one() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("leases.db");
    let (mut child, lines_rx, _reader) = spawn_child(LEASE_CHILD_TEST, LEASE_CHILD_ENV, &path);
    loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("child never leased");
        // libtest's "test ... " may precede it on the same line.
        if line.ends_with(&format!("leased {LEASED_EVENTS} end")) {
            break;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    // One second later the dead child's leases still run for ~10 minutes.
    let now = T0 + 1_000;
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .expect("reopen after kill");
    assert!(
        store
            .lease("p1", 1_000, 60_000, now)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.stats(now).await.unwrap().leased, LEASED_EVENTS as u64);

    assert_eq!(
        store.claim_ownership(now).await.unwrap(),
        Some(LEASED_EVENTS as u64),
        "the killed owner's lock is gone and its leases come back"
    );
    let stats = store.stats(now).await.unwrap();
    assert_eq!((stats.queued, stats.leased), (LEASED_EVENTS as u64, 0));

    // A second store on the file while this one owns it claims nothing.
    let other = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    let leased = store.lease("p1", 1_000, 60_000, now).await.unwrap();
    let ids: Vec<&str> = leased.iter().map(|e| e.event_id.as_str()).collect();
    let expected: Vec<String> = (0..LEASED_EVENTS).map(|i| format!("l{i:02}")).collect();
    assert_eq!(ids, expected, "all of them, in arrival order");
    assert!(leased.iter().all(|e| e.attempts == 0), "no attempt counted");
    assert_eq!(other.claim_ownership(now).await.unwrap(), None);
    assert_eq!(other.claim_ownership(now).await.unwrap(), None);
    assert_eq!(
        other.stats(now).await.unwrap().leased,
        LEASED_EVENTS as u64,
        "the owner's running leases were left alone"
    );
    other.close().await.unwrap();
    store.close().await.unwrap();
}

/// The runtime of a child half.
fn child_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Re-runs this test binary as the child half `test` on the store at
/// `path`; its stdout lines arrive on the channel, read on a thread so that
/// every wait for them has a deadline.
fn spawn_child(
    test: &str,
    env: &str,
    path: &std::path::Path,
) -> (
    std::process::Child,
    mpsc::Receiver<String>,
    std::thread::JoinHandle<()>,
) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(env, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, lines_rx, reader)
}

/// The ids of a complete `acked ... end` line; `None` for anything else
/// (libtest's own output, or a line cut by the kill).
fn acked_ids(line: &str) -> Option<Vec<String>> {
    let ids = line.strip_prefix("acked ")?.strip_suffix(" end")?;
    Some(ids.split(' ').map(str::to_owned).collect())
}
