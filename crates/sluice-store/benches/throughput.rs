//! A plain throughput measurement of the SQLite backend (not a test: it
//! asserts nothing). Run with
//!
//! ```text
//! cargo bench -p sluice-store --bench throughput -- [EVENTS]
//! ```
//!
//! It measures, on a fresh file in a temporary directory, with 1.5 KB
//! payloads and `synchronous=FULL`:
//!
//! 1. many concurrent single-event enqueues (the HTTP shape; group commit),
//! 2. a few concurrent 100-event enqueues (the batch API shape),
//! 3. the cost of `stats` and `due_pixels` on the resulting backlog,
//! 4. draining the backlog with lease(1000) + ack.
//!
//! Results recorded on the team's machine are in `benches/README.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_store::{EventSource, NewEvent, SqliteOptions, SqliteStore, Store};

const T0: i64 = 1_700_000_000_000;
const PAYLOAD_BYTES: usize = 1536;

fn event(i: u64) -> NewEvent {
    NewEvent {
        pixel_id: format!("pixel-{}", i % 4),
        event_name: "Purchase".to_owned(),
        event_id: fake_sha256_hex(u64::MAX - i)[..32].to_owned(),
        event_time: T0 / 1000,
        source: EventSource::Backend,
        payload: vec![b'x'; PAYLOAD_BYTES],
        user_keys: vec![fake_sha256_hex(2 * i), fake_sha256_hex(2 * i + 1)],
        test_event_code: None,
        hold_until_ms: None,
        order_id: None,
        event_id_origin: sluice_store::EventIdOrigin::Sent,
    }
}

/// 64 hex chars that look random, like a real SHA-256 key or UUID-ish
/// event id. Random keys are what make the dedup ledger and the user-key
/// index expensive (each insert lands on its own B-tree page), so the bench
/// must not use sequential ones: those measure 3-4x faster.
fn fake_sha256_hex(seed: u64) -> String {
    let mut x = seed;
    (0..4)
        .map(|_| {
            // splitmix64
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            format!("{:016x}", z ^ (z >> 31))
        })
        .collect()
}

fn rate(n: u64, elapsed: Duration) -> String {
    format!("{:>9.0}/s", n as f64 / elapsed.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let total: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir_in(".").expect("tempdir");
    let store = Arc::new(
        SqliteStore::open(dir.path().join("bench.db"), SqliteOptions::default())
            .await
            .expect("open"),
    );
    println!("events per phase: {total}, payload {PAYLOAD_BYTES} B, synchronous=FULL");

    // 1. single-event enqueues from 256 concurrent tasks.
    let half = total / 2;
    let concurrency = 256;
    let before = store.writer_stats();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while i < half {
                store.enqueue(vec![event(i)], T0).await.expect("enqueue");
                i += concurrency;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let after = store.writer_stats();
    println!(
        "enqueue 1/req, {concurrency} tasks: {} ({} commands in {} transactions)",
        rate(half, elapsed),
        after.commands - before.commands,
        after.transactions - before.transactions
    );

    // 2. 100-event enqueues from 4 tasks.
    let before = store.writer_stats();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..4u64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut start = half + t * 100;
            while start < total {
                let end = (start + 100).min(total);
                store
                    .enqueue((start..end).map(event).collect(), T0)
                    .await
                    .expect("enqueue");
                start += 400;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let after = store.writer_stats();
    println!(
        "enqueue 100/req, 4 tasks:      {} ({} transactions)",
        rate(total - half, elapsed),
        after.transactions - before.transactions
    );

    // 3. read costs on the full backlog.
    let started = Instant::now();
    for _ in 0..100 {
        store.stats(T0).await.unwrap();
    }
    println!(
        "stats on {total} queued:   {:?} per call",
        started.elapsed() / 100
    );
    let started = Instant::now();
    for _ in 0..100 {
        store.due_pixels(T0).await.unwrap();
    }
    println!(
        "due_pixels:              {:?} per call",
        started.elapsed() / 100
    );

    // 4. drain with lease(1000) + ack, pixel by pixel.
    let started = Instant::now();
    let mut drained = 0u64;
    loop {
        let pixels = store.due_pixels(T0).await.unwrap();
        if pixels.is_empty() {
            break;
        }
        for pixel in pixels {
            let leased = store.lease(&pixel, 1000, 60_000, T0).await.unwrap();
            let ids: Vec<_> = leased.iter().map(|e| e.id).collect();
            drained += store.ack(&ids, T0).await.unwrap();
        }
    }
    println!(
        "drain lease(1000)+ack:   {}",
        rate(drained, started.elapsed())
    );
    let size = std::fs::metadata(dir.path().join("bench.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "file size after drain: {} MiB (free pages are reused)",
        size >> 20
    );
    store.close().await.unwrap();
}
