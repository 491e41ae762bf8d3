//! Durable ingest and delivery throughput of the PostgreSQL store against
//! the SQLite store, in one run on one machine, plus the raw PostgreSQL
//! ceilings measured the same way as `research/baselines.md` (1000-row
//! `INSERT … SELECT unnest($1::bytea[])`, and `DELETE … SKIP LOCKED
//! RETURNING` dequeues of 1000), so every ratio is from the same sitting.
//!
//! ```text
//! cargo run --release -p sluice-store-postgres --example pg_throughput -- \
//!     [--events 50000] [--rounds 3] [--clients 128] [--soak-secs 60 (max 3600)] [--report-secs 5]
//! ```
//!
//! Workloads (700 B payloads, two user keys, unique event ids; every
//! enqueue answered only after its commit):
//!
//! - `enqueue x1`: `--clients` tasks each enqueue single events, the way
//!   concurrent HTTP requests do; the store's group commit batches them.
//! - `enqueue x1000`: one caller enqueues batches of 1000 events.
//! - `lease+ack`: one delivery lane leases 1000 due events and acks them,
//!   until the queue (filled by the batch run) is empty.
//! - `pg raw insert` / `pg raw dequeue`: the bare-table ceilings.
//!
//! Backends alternate within each round (A B A B), and each run gets a
//! fresh schema or file. With `--soak-secs` > 0 a bounded soak follows:
//! ingest, delivery and purge run together against PostgreSQL with a 5 s
//! dedup window, printing throughput and dead tuples every --report-secs, to show
//! whether throughput collapses as dead rows accumulate.
//!
//! The server URL comes from `SLUICE_BENCH_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test?sslmode=disable`). Payloads
//! are synthetic and never printed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sluice_store::{EventSource, NewEvent, SqliteOptions, SqliteStore, Store};
use sluice_store_postgres::{PostgresOptions, PostgresStore};

const T0: i64 = 1_700_000_000_000;
/// The ceilings of `research/baselines.md`, for reference only (another
/// sitting); the ratios printed use this run's raw measurements.
const BASELINE_INSERT_ROWS_S: f64 = 43_400.0;
const BASELINE_DEQUEUE_ROWS_S: f64 = 73_400.0;

struct Args {
    events: usize,
    rounds: usize,
    clients: usize,
    soak_secs: u64,
    /// Seconds between soak table rows.
    report_secs: u64,
    writers: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        events: 50_000,
        rounds: 3,
        clients: 128,
        soak_secs: 0,
        report_secs: 5,
        writers: PostgresOptions::default().writers,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--events", Some(v)) => args.events = v as usize,
            ("--rounds", Some(v)) => args.rounds = v as usize,
            ("--clients", Some(v)) => args.clients = v as usize,
            ("--soak-secs", Some(v)) => args.soak_secs = v.min(3600),
            ("--report-secs", Some(v)) => args.report_secs = v.clamp(1, 600),
            ("--writers", Some(v)) => args.writers = (v as usize).clamp(1, 16),
            _ => {
                eprintln!(
                    "usage: pg_throughput [--events N] [--rounds N] [--clients N] [--soak-secs S (max 3600)] [--report-secs S] [--writers N]"
                );
                std::process::exit(2);
            }
        }
    }
    args
}

/// Plain TCP by default, as in the baseline measurement (TLS would add
/// encryption to every run); set the URL to measure with `sslmode=require`.
fn url() -> String {
    std::env::var("SLUICE_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".to_owned())
}

/// A synthetic hashed event of about 700 bytes.
fn make_event(pixel: &str, i: u64) -> NewEvent {
    let hex = |salt: u64| {
        let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt;
        (0..4)
            .map(|_| {
                x = x.rotate_left(17).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                format!("{x:016x}")
            })
            .collect::<String>()
    };
    let (em, ph, ext) = (hex(1), hex(2), hex(3));
    let payload = format!(
        r#"{{"event_name":"Purchase","event_time":1700000000,"event_id":"ev-{i}","action_source":"website","event_source_url":"https://shop.example/checkout/thank-you?order={i}","user_data":{{"em":["{em}"],"ph":["{ph}"],"external_id":["{ext}"],"client_ip_address":"203.0.113.7","client_user_agent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36","fbp":"fb.1.1700000000000.1234567890"}},"custom_data":{{"currency":"EUR","value":129.9,"content_ids":["sku-1","sku-2"],"order_id":"o-{i}"}}}}"#
    );
    NewEvent {
        pixel_id: pixel.to_owned(),
        event_name: "Purchase".to_owned(),
        event_id: format!("ev-{i}"),
        event_time: 1_700_000_000,
        source: EventSource::Backend,
        payload: payload.into_bytes(),
        user_keys: vec![em, ph],
        test_event_code: None,
        hold_until_ms: None,
        order_id: None,
        event_id_origin: sluice_store::EventIdOrigin::Sent,
    }
}

/// A store under test, with what it takes to throw it away afterwards.
struct Subject {
    store: Arc<dyn Store>,
    postgres: Option<Arc<PostgresStore>>,
    cleanup: Cleanup,
}

enum Cleanup {
    Schema(String),
    Dir(#[allow(dead_code)] tempfile::TempDir),
}

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

static NEXT_SCHEMA: AtomicU64 = AtomicU64::new(0);
static WRITERS: AtomicU64 = AtomicU64::new(2);

async fn open(backend: Backend) -> Subject {
    match backend {
        Backend::Postgres => {
            let schema = format!(
                "sluice_bench_{}_{}",
                std::process::id(),
                NEXT_SCHEMA.fetch_add(1, Ordering::Relaxed)
            );
            let store = PostgresStore::connect(
                &url(),
                PostgresOptions {
                    schema: schema.clone(),
                    writers: WRITERS.load(Ordering::Relaxed) as usize,
                    ..PostgresOptions::default()
                },
            )
            .await
            .expect("connect postgres");
            let store = Arc::new(store);
            Subject {
                store: store.clone(),
                postgres: Some(store),
                cleanup: Cleanup::Schema(schema),
            }
        }
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = SqliteStore::open(dir.path().join("bench.db"), SqliteOptions::default())
                .await
                .expect("open sqlite");
            Subject {
                store: Arc::new(store),
                postgres: None,
                cleanup: Cleanup::Dir(dir),
            }
        }
    }
}

async fn discard(subject: Subject) {
    let _ = subject.store.close().await;
    drop(subject.store);
    drop(subject.postgres);
    if let Cleanup::Schema(schema) = subject.cleanup {
        let _ = sluice_store_postgres::drop_schema(&url(), &schema).await;
    }
}

/// `clients` tasks enqueue `events` single events; returns rows/s.
async fn enqueue_single(store: &Arc<dyn Store>, events: usize, clients: usize) -> f64 {
    let mut per_client: Vec<Vec<NewEvent>> = (0..clients).map(|_| Vec::new()).collect();
    for i in 0..events {
        per_client[i % clients].push(make_event("p0", i as u64));
    }
    let started = Instant::now();
    let tasks: Vec<_> = per_client
        .into_iter()
        .map(|mine| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                for event in mine {
                    let outcome = store.enqueue(vec![event], T0).await.expect("enqueue");
                    assert!(outcome[0].queued_id().is_some());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client");
    }
    events as f64 / started.elapsed().as_secs_f64()
}

/// One caller enqueues `events` in batches of 1000; returns rows/s.
async fn enqueue_batches(store: &Arc<dyn Store>, events: usize, offset: u64) -> f64 {
    let batches: Vec<Vec<NewEvent>> = (0..events)
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(|chunk| {
            chunk
                .iter()
                .map(|i| make_event("p0", offset + *i as u64))
                .collect()
        })
        .collect();
    let started = Instant::now();
    for batch in batches {
        store.enqueue(batch, T0).await.expect("enqueue batch");
    }
    events as f64 / started.elapsed().as_secs_f64()
}

/// One lane leases 1000 and acks until the queue is empty; returns rows/s.
async fn lease_ack(store: &Arc<dyn Store>, expected: usize) -> f64 {
    let started = Instant::now();
    let mut done = 0;
    loop {
        let batch = store.lease("p0", 1000, 60_000, T0).await.expect("lease");
        if batch.is_empty() {
            break;
        }
        let ids: Vec<_> = batch.iter().map(|e| e.id).collect();
        done += store.ack(&ids, T0 + 1).await.expect("ack") as usize;
    }
    assert_eq!(done, expected, "every event delivered once");
    done as f64 / started.elapsed().as_secs_f64()
}

/// The bare-table ceilings of the baseline: (insert rows/s, dequeue rows/s).
async fn raw_ceilings(events: usize) -> (f64, f64) {
    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let table = format!(
        "sluice_bench_raw_{}_{}",
        std::process::id(),
        NEXT_SCHEMA.fetch_add(1, Ordering::Relaxed)
    );
    client
        .batch_execute(&format!(
            "SET synchronous_commit = on;
             CREATE TABLE {table} (id bigserial PRIMARY KEY, body bytea NOT NULL)"
        ))
        .await
        .expect("create raw table");
    let insert = client
        .prepare(&format!(
            "INSERT INTO {table} (body) SELECT unnest($1::bytea[])"
        ))
        .await
        .expect("prepare");
    let bodies: Vec<Vec<Vec<u8>>> = (0..events)
        .collect::<Vec<_>>()
        .chunks(1000)
        .map(|c| {
            c.iter()
                .map(|i| make_event("p0", *i as u64).payload)
                .collect()
        })
        .collect();
    let started = Instant::now();
    for chunk in &bodies {
        client.execute(&insert, &[chunk]).await.expect("insert");
    }
    let insert_rate = events as f64 / started.elapsed().as_secs_f64();
    client
        .batch_execute(&format!("VACUUM ANALYZE {table}"))
        .await
        .expect("vacuum");
    let dequeue = client
        .prepare(&format!(
            "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY id LIMIT 1000 \
             FOR UPDATE SKIP LOCKED) RETURNING id, body"
        ))
        .await
        .expect("prepare");
    let started = Instant::now();
    let mut done = 0;
    loop {
        let rows = client.query(&dequeue, &[]).await.expect("dequeue");
        if rows.is_empty() {
            break;
        }
        done += rows.len();
    }
    assert_eq!(done, events);
    let dequeue_rate = events as f64 / started.elapsed().as_secs_f64();
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .expect("drop");
    (insert_rate, dequeue_rate)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn spread(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    format!("{:.0}-{:.0}", min, max)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    WRITERS.store(args.writers as u64, Ordering::Relaxed);
    println!(
        "pg_throughput: {} events per run, {} rounds, {} single-event clients, {} pg writers, 700 B payloads",
        args.events, args.rounds, args.clients, args.writers
    );
    let mut single = [Vec::new(), Vec::new()];
    let mut batch = [Vec::new(), Vec::new()];
    let mut delivery = [Vec::new(), Vec::new()];
    let mut raw_insert = Vec::new();
    let mut raw_dequeue = Vec::new();
    let mut groups = Vec::new();

    for round in 0..args.rounds {
        let order = if round % 2 == 0 {
            [Backend::Postgres, Backend::Sqlite]
        } else {
            [Backend::Sqlite, Backend::Postgres]
        };
        for backend in order {
            let b = backend as usize;
            let subject = open(backend).await;
            let s = enqueue_single(&subject.store, args.events, args.clients).await;
            if let Some(pg) = &subject.postgres {
                let stats = pg.writer_stats();
                groups.push(stats.requests as f64 / stats.groups.max(1) as f64);
                println!(
                    "    pg writers: {} groups, {:.1} requests/group, {:.2} ms/group",
                    stats.groups,
                    stats.requests as f64 / stats.groups.max(1) as f64,
                    stats.commit_us as f64 / 1000.0 / stats.groups.max(1) as f64
                );
            }
            discard(subject).await;

            let subject = open(backend).await;
            let n = enqueue_batches(&subject.store, args.events, 0).await;
            let d = lease_ack(&subject.store, args.events).await;
            discard(subject).await;
            println!(
                "round {round} {:<8}  enqueue x1 {s:>9.0}/s  enqueue x1000 {n:>9.0}/s  lease+ack {d:>9.0}/s",
                backend.name()
            );
            single[b].push(s);
            batch[b].push(n);
            delivery[b].push(d);
            if backend == Backend::Postgres {
                let (i, q) = raw_ceilings(args.events).await;
                println!(
                    "round {round} pg raw    insert x1000 {i:>9.0}/s  dequeue x1000 {q:>9.0}/s"
                );
                raw_insert.push(i);
                raw_dequeue.push(q);
            }
        }
    }
    if args.rounds > 0 {
        print_rounds(
            &single,
            &batch,
            &delivery,
            &raw_insert,
            &raw_dequeue,
            &mut groups,
        );
    }
    if args.soak_secs > 0 {
        soak(args.soak_secs, args.report_secs, args.clients).await;
    }
}

/// The table of the paired rounds (medians, spreads, ratios).
fn print_rounds(
    single: &[Vec<f64>; 2],
    batch: &[Vec<f64>; 2],
    delivery: &[Vec<f64>; 2],
    raw_insert: &[f64],
    raw_dequeue: &[f64],
    groups: &mut [f64],
) {
    let pg = Backend::Postgres as usize;
    let sq = Backend::Sqlite as usize;
    let ri = median(&mut raw_insert.to_vec());
    let rq = median(&mut raw_dequeue.to_vec());
    println!();
    println!(
        "| workload | postgres rows/s (median, min-max) | sqlite rows/s | pg / sqlite | pg / pg raw ceiling (same run) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for (name, values, ceiling) in [
        ("enqueue x1 (group commit)", &single, ri),
        ("enqueue x1000", &batch, ri),
        ("lease 1000 + ack", &delivery, rq),
    ] {
        let p = median(&mut values[pg].clone());
        let s = median(&mut values[sq].clone());
        println!(
            "| {name} | {p:.0} ({}) | {s:.0} ({}) | {:.2} | {:.2} |",
            spread(&values[pg]),
            spread(&values[sq]),
            p / s,
            p / ceiling
        );
    }
    println!(
        "| pg raw insert x1000 (ceiling) | {ri:.0} ({}) | - | - | baseline doc: {BASELINE_INSERT_ROWS_S:.0} |",
        spread(raw_insert)
    );
    println!(
        "| pg raw dequeue x1000 (ceiling) | {rq:.0} ({}) | - | - | baseline doc: {BASELINE_DEQUEUE_ROWS_S:.0} |",
        spread(raw_dequeue)
    );
    println!(
        "\npostgres group commit, enqueue x1 runs: {:.1} requests per transaction (median)",
        median(groups)
    );
}

/// Ingest, delivery and purge together for `secs` seconds, reporting
/// every `every` seconds. Bounded: every loop checks the stop flag.
async fn soak(secs: u64, every: u64, clients: usize) {
    let schema = format!("sluice_bench_soak_{}", std::process::id());
    let store = Arc::new(
        PostgresStore::connect(
            &url(),
            PostgresOptions {
                schema: schema.clone(),
                dedup_window_ms: 5_000,
                ..PostgresOptions::default()
            },
        )
        .await
        .expect("connect"),
    );
    let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let epoch = Instant::now();
    let now = move || T0 + epoch.elapsed().as_millis() as i64;
    let stop = Arc::new(AtomicBool::new(false));
    let enqueued = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let purged = Arc::new(AtomicU64::new(0));
    let next_id = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    // Ingest: clients/4 tasks of 10-event requests over 4 pixels.
    for t in 0..(clients / 4).max(1) {
        let (store, stop, enqueued, next_id) = (
            Arc::clone(&store),
            Arc::clone(&stop),
            Arc::clone(&enqueued),
            Arc::clone(&next_id),
        );
        tasks.push(tokio::spawn(async move {
            let pixel = format!("p{}", t % 4);
            while !stop.load(Ordering::Relaxed) {
                let base = next_id.fetch_add(10, Ordering::Relaxed);
                let events = (base..base + 10).map(|i| make_event(&pixel, i)).collect();
                store.enqueue(events, now()).await.expect("enqueue");
                enqueued.fetch_add(10, Ordering::Relaxed);
            }
        }));
    }
    // Delivery: one lane per pixel.
    for p in 0..4 {
        let (store, stop, delivered) = (
            Arc::clone(&store),
            Arc::clone(&stop),
            Arc::clone(&delivered),
        );
        tasks.push(tokio::spawn(async move {
            let pixel = format!("p{p}");
            while !stop.load(Ordering::Relaxed) {
                let batch = store
                    .lease(&pixel, 1000, 30_000, now())
                    .await
                    .expect("lease");
                if batch.is_empty() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                let ids: Vec<_> = batch.iter().map(|e| e.id).collect();
                let n = store.ack(&ids, now()).await.expect("ack");
                delivered.fetch_add(n, Ordering::Relaxed);
            }
        }));
    }
    // Purge every second.
    {
        let (store, stop, purged) = (Arc::clone(&store), Arc::clone(&stop), Arc::clone(&purged));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let report = store.purge(now()).await.expect("purge");
                purged.fetch_add(report.ledger, Ordering::Relaxed);
            }
        }));
    }
    println!();
    println!("soak: {secs} s, ingest + 4 delivery lanes + purge every 1 s, dedup window 5 s");
    println!(
        "| t (s) | enqueued/s | delivered/s | backlog | ledger purged (total) | queue dead tuples (vacuums) | queue MiB (part) | ledger dead tuples (vacuums) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let (mut last_e, mut last_d) = (0, 0);
    let mut t = 0;
    while t < secs {
        tokio::time::sleep(Duration::from_secs(every)).await;
        t += every;
        let (e, d) = (
            enqueued.load(Ordering::Relaxed),
            delivered.load(Ordering::Relaxed),
        );
        let dead = |table: &'static str| {
            let client = &client;
            let schema = schema.clone();
            async move {
                client
                    .query_one(
                        "SELECT COALESCE(sum(n_dead_tup), 0)::int8,
                                COALESCE(sum(vacuum_count + autovacuum_count), 0)::int8
                         FROM pg_stat_user_tables WHERE schemaname = $1 AND relname LIKE $2",
                        &[&schema, &table],
                    )
                    .await
                    .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
                    .unwrap_or((-1, -1))
            }
        };
        let (queue_dead, queue_vacuums) = dead("queue_p%").await;
        let (ledger_dead, ledger_vacuums) = dead("dedup_ledger").await;
        let size: i64 = client
            .query_one(
                "SELECT COALESCE(sum(pg_total_relation_size(inhrelid)), 0)::int8
                 FROM pg_inherits WHERE inhparent = format('%I.queue', $1::text)::regclass",
                &[&schema],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(-1);
        let part: i64 = client
            .query_one(
                &format!("SELECT value FROM {schema}.store_meta WHERE key = 'queue_part'"),
                &[],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(-1);
        println!(
            "| {t} | {:.0} | {:.0} | {} | {} | {queue_dead} ({queue_vacuums}) | {} ({part}) | {ledger_dead} ({ledger_vacuums}) |",
            (e - last_e) as f64 / every as f64,
            (d - last_d) as f64 / every as f64,
            e.saturating_sub(d),
            purged.load(Ordering::Relaxed),
            size / (1024 * 1024),
        );
        (last_e, last_d) = (e, d);
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    println!(
        "soak totals: enqueued {} delivered {} purged {} ({} group commits, {:.1} requests each)",
        enqueued.load(Ordering::Relaxed),
        delivered.load(Ordering::Relaxed),
        purged.load(Ordering::Relaxed),
        store.writer_stats().groups,
        store.writer_stats().requests as f64 / store.writer_stats().groups.max(1) as f64
    );
    let _ = store.close().await;
    let _ = sluice_store_postgres::drop_schema(&url(), &schema).await;
}
