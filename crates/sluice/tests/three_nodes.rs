//! Scale-out: three real `sluice serve` processes on one PostgreSQL schema,
//! behind a round-robin "load balancer" (this test), delivering to one
//! in-process Graph API emulator.
//!
//! 1. The same `event_id` sent to two nodes at the same instant is queued
//!    once (the shared dedup ledger arbitrates) and delivered once.
//! 2. N events with unique ids are spread over the three nodes; one node
//!    is killed with SIGKILL mid-run and the survivors take the rest (a
//!    request that failed on the dead node is retried on the next node, as
//!    a load balancer would). Every acknowledged event must reach the
//!    emulator; events the dead node had leased are taken over once its
//!    leases expire. The number of events delivered twice is measured and
//!    printed (at-least-once; Meta drops the repeats by `event_id`).
//!
//! The server URL comes from `SLUICE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Without a server the test
//! prints a loud notice and passes, except under `CI=true`, where it fails.
//! `SLUICE_THREE_NODES_EVENTS` changes N (default 3000). Run with
//! `--nocapture` to see the report.

mod common;

use common::{Server, client, sluice, spawn_emulator, wait_for};
use serde_json::{Value, json};
use sluice_emulator::{Emulator, EmulatorConfig, Fault, FaultRule};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

const PIXEL: &str = "4000000003";
const TOKEN: &str = "three-nodes-token-0123456789";
const API_KEY: &str = "three-nodes-key-0123456789abcdef";
const NODES: usize = 3;
/// The node that is killed.
const VICTIM: usize = 1;
/// Requests in flight from the "load balancer".
const CONCURRENCY: usize = 24;
/// Events sent to two nodes at once.
const SAME_INSTANT_PAIRS: usize = 30;
/// Delivery settings of every node. The lease is the takeover delay after
/// a node dies; the gateway raises it to at least linger + 3 × timeout +
/// 5 s (11.01 s here).
const BATCH_SIZE: usize = 100;
const CONCURRENCY_PER_PIXEL: usize = 2;
const LEASE_MS: u64 = 12_000;
/// Emulator latency per request, so that a node always has deliveries in
/// flight when it is killed (its leases are then taken over).
const GRAPH_LATENCY_MS: u64 = 50;
/// The most events one node can have sent and not yet recorded as
/// delivered: the bound on what its death can make the others send again.
const DUPLICATE_BOUND: usize = BATCH_SIZE * CONCURRENCY_PER_PIXEL;

const READY_DEADLINE: Duration = Duration::from_secs(30);
const DELIVERY_DEADLINE: Duration = Duration::from_secs(45);

fn postgres_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The URL without a password, for messages.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable url>".to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A schema name no other run uses (a plain lowercase identifier).
fn unique_schema() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("sluice_3n_{}_{:x}", std::process::id(), nanos & 0xffff_ffff)
}

/// Whether PostgreSQL answers (probed by dropping the not-yet-existing
/// schema). `false` after a loud notice; panics under `CI=true`.
async fn postgres_available(url: &str, schema: &str) -> bool {
    let probe = sluice_store_postgres::drop_schema(url, schema);
    let error = match tokio::time::timeout(Duration::from_secs(10), probe).await {
        Ok(Ok(())) => return true,
        Ok(Err(error)) => error.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    let url = redacted(url);
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("PostgreSQL at {url} is required under CI=true but did not answer: {error}");
    }
    eprintln!(
        "\n!!! SKIPPED three_nodes: no PostgreSQL at {url} ({error}); set \
         SLUICE_TEST_POSTGRES_URL to run the scale-out test !!!\n"
    );
    false
}

/// Drops the test schema when dropped (best effort), from a thread of its
/// own because `Drop` cannot await.
struct SchemaGuard {
    url: String,
    schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let url = self.url.clone();
        let schema = self.schema.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let drop = sluice_store_postgres::drop_schema(&url, &schema);
                match tokio::time::timeout(Duration::from_secs(15), drop).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => eprintln!("could not drop test schema {schema}: {error}"),
                    Err(_) => eprintln!("could not drop test schema {schema}: timed out"),
                }
            });
        })
        .join();
    }
}

/// A TOML string literal.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A node's configuration: one pixel, one API key, the shared schema, fast
/// delivery with a short lease, and a `partner_agent` naming the node (the
/// emulator records it, so each delivery says which node made it).
fn node_config(index: usize, url: &str, schema: &str, graph_url: &str) -> String {
    format!(
        r#"
[store]
url = {url}
schema = {schema}
pool_size = 6

[delivery]
graph_url = {graph_url}
batch_size = {BATCH_SIZE}
linger_ms = 10
concurrency_per_pixel = {CONCURRENCY_PER_PIXEL}
timeout_ms = 2000
lease_ms = {LEASE_MS}
partner_agent = "three-nodes-{index}"
backoff_base_ms = 50
backoff_max_ms = 400

[[pixels]]
id = "{PIXEL}"
access_token = "{TOKEN}"

[[api_keys]]
name = "three-nodes"
key = "{API_KEY}"
pixels = ["{PIXEL}"]
"#,
        url = toml_str(url),
        schema = toml_str(schema),
        graph_url = toml_str(graph_url),
    )
}

/// The node processes. Dropping it kills every one still running (on every
/// path, panics included: `Server`'s drop kills and reaps) and, after a
/// failure, prints the tails of their logs.
struct Cluster {
    servers: Vec<Option<Server>>,
    _dirs: Vec<TempDir>,
}

impl Cluster {
    /// Starts `NODES` × `sluice serve --config …`, each on a free port with
    /// its own data directory, all on `schema`.
    async fn start(url: &str, schema: &str, graph_url: &str) -> Cluster {
        let mut cluster = Cluster {
            servers: Vec::new(),
            _dirs: Vec::new(),
        };
        for index in 0..NODES {
            let dir = tempfile::tempdir().expect("temp dir");
            let config = dir.path().join("sluice.toml");
            std::fs::write(&config, node_config(index, url, schema, graph_url))
                .expect("write node config");
            let data_dir = dir.path().join("data");
            cluster._dirs.push(dir);
            let config = config.display().to_string();
            let server = Server::start(&data_dir, &["--config", &config], &[]).await;
            cluster.servers.push(Some(server));
        }
        cluster
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.servers
            .iter()
            .map(|s| s.as_ref().expect("node running").addr)
            .collect()
    }

    /// SIGKILL (`Child::kill`), then reap.
    fn kill9(&mut self, index: usize) {
        if let Some(server) = self.servers[index].take() {
            server.kill9();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (i, server) in self.servers.iter().enumerate() {
                let Some(server) = server else { continue };
                let text = server.log_text();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                eprintln!("--- node {i} log (last 40 lines) ---\n{tail}");
            }
        }
        self.servers.clear();
    }
}

/// A raw website Purchase as a shop backend sends it, consent granted.
fn event(event_id: &str) -> Value {
    json!({
        "event_name": "Purchase",
        "event_time": unix_ms() / 1000 - 5,
        "event_id": event_id,
        "action_source": "website",
        "event_source_url": "https://shop.example.com/checkout/done",
        "consent": {"ad_user_data": "granted", "ad_personalization": "granted"},
        "user_data": {
            "em": format!("buyer-{event_id}@example.com"),
            "client_ip_address": "203.0.113.9",
            "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64) three-nodes"
        },
        "custom_data": {"value": 42.5, "currency": "EUR"}
    })
}

/// How a node answered one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Committed to the queue.
    Accepted,
    /// Already in the shared ledger (queued by an earlier copy).
    Duplicate,
    /// No answer (connection refused or reset) or 503: try another node.
    Unavailable,
}

/// POSTs one event to `addr`'s `/v1/events`.
async fn post(client: &reqwest::Client, addr: SocketAddr, body: &Value) -> Answer {
    let response = client
        .post(format!("http://{addr}/v1/events"))
        .bearer_auth(API_KEY)
        .json(body)
        .send()
        .await;
    let Ok(response) = response else {
        return Answer::Unavailable;
    };
    let status = response.status().as_u16();
    let Ok(text) = response.text().await else {
        return Answer::Unavailable;
    };
    if status == 503 {
        return Answer::Unavailable;
    }
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert_eq!(status, 200, "unexpected answer from {addr}: {answer}");
    match (answer["accepted"].as_u64(), answer["duplicates"].as_u64()) {
        (Some(1), _) => Answer::Accepted,
        (_, Some(1)) => Answer::Duplicate,
        _ => panic!("event neither accepted nor a duplicate at {addr}: {answer}"),
    }
}

/// One event's fate at the load balancer.
struct Sent {
    event_id: String,
    answer: Answer,
    /// Nodes tried, including the one that answered.
    attempts: usize,
    /// When the answer came, in Unix ms.
    answered_ms: i64,
}

/// What the sender tasks share.
struct Load {
    client: reqwest::Client,
    addrs: Vec<SocketAddr>,
    /// The load balancer's view: a node marked dead gets no new requests.
    alive: Vec<AtomicBool>,
    ids: Vec<String>,
    next: AtomicUsize,
    acked: AtomicUsize,
}

/// Sends `ids[i]` to node `i % 3`, or to the next live node when that one
/// is down or does not answer, until every id is taken.
async fn send_all(load: Arc<Load>) -> Vec<Sent> {
    let mut sent = Vec::new();
    loop {
        let i = load.next.fetch_add(1, Ordering::Relaxed);
        let Some(id) = load.ids.get(i) else {
            return sent;
        };
        let body = event(id);
        let mut attempts = 0;
        let mut answer = Answer::Unavailable;
        for k in 0..3 * NODES {
            let node = (i + k) % NODES;
            if !load.alive[node].load(Ordering::Acquire) {
                continue;
            }
            attempts += 1;
            answer = post(&load.client, load.addrs[node], &body).await;
            if answer != Answer::Unavailable {
                break;
            }
        }
        if answer != Answer::Unavailable {
            load.acked.fetch_add(1, Ordering::Relaxed);
        }
        sent.push(Sent {
            event_id: id.clone(),
            answer,
            attempts,
            answered_ms: unix_ms(),
        });
    }
}

/// Each `event_id` the emulator received, with the node that delivered
/// each copy (from the `partner_agent` each node sends) and its arrival
/// time in Unix ms, in arrival order.
fn deliveries(emulator: &Emulator) -> BTreeMap<String, Vec<(usize, i64)>> {
    let mut out: BTreeMap<String, Vec<(usize, i64)>> = BTreeMap::new();
    for recorded in emulator.events_for(PIXEL) {
        let id = recorded.json()["event_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let node = recorded
            .partner_agent
            .as_deref()
            .and_then(|a| a.strip_prefix("three-nodes-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX);
        out.entry(id)
            .or_default()
            .push((node, recorded.received_at_ms));
    }
    out
}

/// A sample of an unlabelled metric in Prometheus text.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Accepts the test's token and pixel, with a little latency per request
/// so that a node always has deliveries in flight when it is killed.
fn emulator_config() -> EmulatorConfig {
    EmulatorConfig {
        tokens: Some(vec![TOKEN.to_owned()]),
        pixels: Some(vec![PIXEL.to_owned()]),
        faults: vec![FaultRule::always(Fault::Latency {
            ms: GRAPH_LATENCY_MS,
        })],
        ..EmulatorConfig::default()
    }
}

/// Applies the migrations with the real `sluice migrate`.
fn migrate(url: &str, schema: &str) {
    let output = sluice()
        .args(["migrate", "--store", url, "--schema", schema])
        .output()
        .expect("run sluice migrate");
    assert!(
        output.status.success(),
        "sluice migrate failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    let expected = format!(
        "postgres schema {schema}: migrated from version 0 to {}",
        sluice_store_postgres::SCHEMA_VERSION
    );
    assert_eq!(said.trim(), expected);
}

fn events_to_send() -> usize {
    std::env::var("SLUICE_THREE_NODES_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n >= 30)
        .unwrap_or(3000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_one_killed_every_acknowledged_event_is_delivered() {
    let started = Instant::now();
    let url = postgres_url();
    let schema = unique_schema();
    if !postgres_available(&url, &schema).await {
        return;
    }
    // Declared before the cluster, so dropped after it: the nodes are dead
    // before their schema goes.
    let _schema_guard = SchemaGuard {
        url: url.clone(),
        schema: schema.clone(),
    };
    let emulator = spawn_emulator(emulator_config()).await;
    let em = emulator.emulator().clone();
    migrate(&url, &schema);

    let mut cluster = Cluster::start(&url, &schema, &emulator.base_url()).await;
    let addrs = cluster.addrs();
    let client = client();
    for (i, addr) in addrs.iter().enumerate() {
        let client = &client;
        wait_for(
            &format!("node {i} /readyz"),
            READY_DEADLINE,
            || async move {
                let response = client
                    .get(format!("http://{addr}/readyz"))
                    .send()
                    .await
                    .ok()?;
                let status = response.status().as_u16();
                let body: Value = response.json().await.ok()?;
                (status == 200 && body["store"] == "postgres").then_some(())
            },
        )
        .await;
    }
    let ready_after = started.elapsed();

    // 1. The same event_id at two nodes at the same instant: queued once.
    let pairs: Vec<_> = (0..SAME_INSTANT_PAIRS)
        .map(|k| {
            let client = client.clone();
            let (a, b) = (addrs[k % NODES], addrs[(k + 1) % NODES]);
            tokio::spawn(async move {
                let body = event(&format!("same-{k:03}"));
                tokio::join!(post(&client, a, &body), post(&client, b, &body))
            })
        })
        .collect();
    for (k, pair) in pairs.into_iter().enumerate() {
        let (a, b) = pair.await.expect("same-instant pair");
        let mut got = [a, b];
        got.sort_by_key(|a| *a != Answer::Accepted);
        assert_eq!(
            got,
            [Answer::Accepted, Answer::Duplicate],
            "same-{k:03} sent to two nodes at once: one must queue it, the other see a duplicate"
        );
    }
    wait_for(
        "the same-instant events at the emulator",
        DELIVERY_DEADLINE,
        || {
            let delivered = deliveries(&em);
            let done =
                (0..SAME_INSTANT_PAIRS).all(|k| delivered.contains_key(&format!("same-{k:03}")));
            async move { done.then_some(()) }
        },
    )
    .await;

    // 2. Load over three nodes; one killed mid-run.
    let n = events_to_send();
    let load = Arc::new(Load {
        client: client.clone(),
        addrs: addrs.clone(),
        alive: (0..NODES).map(|_| AtomicBool::new(true)).collect(),
        ids: (0..n).map(|i| format!("tn-{i:06}")).collect(),
        next: AtomicUsize::new(0),
        acked: AtomicUsize::new(0),
    });
    let load_started = Instant::now();
    let senders: Vec<_> = (0..CONCURRENCY)
        .map(|_| tokio::spawn(send_all(Arc::clone(&load))))
        .collect();
    let acked_at_kill = wait_for(
        "a third of the events to be acknowledged",
        Duration::from_secs(60),
        || {
            let acked = load.acked.load(Ordering::Relaxed);
            async move { (acked >= n / 3).then_some(acked) }
        },
    )
    .await;
    // SIGKILL first, then the load balancer notices: requests in flight to
    // the victim fail and are retried elsewhere.
    cluster.kill9(VICTIM);
    let killed_at_ms = unix_ms();
    let killed_after = load_started.elapsed();
    load.alive[VICTIM].store(false, Ordering::Release);

    let mut sent = Vec::with_capacity(n);
    for sender in senders {
        sent.extend(sender.await.expect("sender task"));
    }
    let load_secs = load_started.elapsed().as_secs_f64();
    let unacknowledged: Vec<&str> = sent
        .iter()
        .filter(|s| s.answer == Answer::Unavailable)
        .map(|s| s.event_id.as_str())
        .collect();
    let acknowledged: BTreeSet<&str> = sent
        .iter()
        .filter(|s| s.answer != Answer::Unavailable)
        .map(|s| s.event_id.as_str())
        .collect();
    let retried = sent.iter().filter(|s| s.attempts > 1).count();
    let retried_duplicates = sent
        .iter()
        .filter(|s| s.answer == Answer::Duplicate)
        .count();

    // Every acknowledged event arrives, and the shared queue drains,
    // including what the dead node held: that comes back when its leases
    // expire, and what it had already sent is then sent a second time.
    let survivor = addrs[(VICTIM + 1) % NODES];
    let dead_letters = wait_for(
        "every acknowledged event at the emulator and an empty queue",
        DELIVERY_DEADLINE,
        || {
            let delivered = deliveries(&em);
            let all = acknowledged.iter().all(|id| delivered.contains_key(*id));
            let client = &client;
            async move {
                if !all {
                    return None;
                }
                let text = client
                    .get(format!("http://{survivor}/metrics"))
                    .send()
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                let depth = gauge(&text, "sluice_queue_depth")?;
                let dead = gauge(&text, "sluice_dead_letters")?;
                (depth == 0.0).then_some(dead)
            }
        },
    )
    .await;
    let drained_after = load_started.elapsed();

    let delivered = deliveries(&em);
    let acked_delivered = acknowledged
        .iter()
        .filter(|id| delivered.contains_key(**id))
        .count();
    let load_delivered = delivered.keys().filter(|id| id.starts_with("tn-")).count();
    let twice: Vec<&String> = delivered
        .iter()
        .filter(|(id, copies)| id.starts_with("tn-") && copies.len() > 1)
        .map(|(id, _)| id)
        .collect();
    let extra_copies: usize = delivered
        .iter()
        .filter(|(id, _)| id.starts_with("tn-"))
        .map(|(_, copies)| copies.len() - 1)
        .sum();
    let same_repeated: Vec<&String> = delivered
        .iter()
        .filter(|(id, copies)| id.starts_with("same-") && copies.len() > 1)
        .map(|(id, _)| id)
        .collect();
    let mut per_node = [0usize; NODES];
    for (node, _) in delivered.values().flatten() {
        if let Some(count) = per_node.get_mut(*node) {
            *count += 1;
        }
    }
    // Which node sent each copy of a repeated event, e.g. "1→0": the dead
    // node sent it and died before recording the delivery; node 0 sent it
    // again once the lease had expired.
    let mut repeat_paths: BTreeMap<String, usize> = BTreeMap::new();
    for (id, copies) in &delivered {
        if id.starts_with("tn-") && copies.len() > 1 {
            let path: Vec<String> = copies.iter().map(|(node, _)| node.to_string()).collect();
            *repeat_paths.entry(path.join("→")).or_insert(0) += 1;
        }
    }
    // What the dead node held comes back after its leases expire: events
    // acknowledged before the kill (which the nodes otherwise deliver
    // within a second or so) that a survivor delivered ≥ 5 s after it.
    let taken_over = sent
        .iter()
        .filter(|s| s.answer == Answer::Accepted && s.answered_ms < killed_at_ms)
        .filter(|s| {
            delivered.get(&s.event_id).is_some_and(|copies| {
                copies
                    .iter()
                    .any(|&(node, at)| node != VICTIM && at >= killed_at_ms + 5_000)
            })
        })
        .count();
    let last_delivery_ms = delivered
        .values()
        .flatten()
        .map(|&(_, at)| at)
        .max()
        .unwrap_or(killed_at_ms);
    let emulator_duplicates = em.stats().duplicates;

    println!(
        "\n=== three nodes on one PostgreSQL schema, node {VICTIM} killed with SIGKILL ===\n\
         nodes ready after            {ready_after:.1?}\n\
         same-instant pairs           {SAME_INSTANT_PAIRS}: each queued once; delivered more than once: {}\n\
         events sent                  {n} (round-robin, {CONCURRENCY} requests in flight)\n\
         killed after                 {killed_after:.1?}, {acked_at_kill} acknowledged by then\n\
         acknowledged                 {} ({retried} needed another node; {retried_duplicates} of those \
         had been committed by the dead node and came back as duplicates)\n\
         not acknowledged             {}\n\
         ingest                       {load_secs:.1} s, {:.0} events/s acknowledged\n\
         delivered                    {load_delivered} of {n}; {acked_delivered} of {} acknowledged\n\
         delivered twice              {} events, {extra_copies} extra copies (bound {DUPLICATE_BOUND}); \
         emulator counted {emulator_duplicates} duplicates; by node {repeat_paths:?}\n\
         deliveries per node          {per_node:?} (node {VICTIM} until it died)\n\
         taken over                   {taken_over} events acknowledged before the kill, delivered by a \
         survivor ≥ 5 s after it (the dead node's leases); last delivery {:.1} s after the kill \
         (lease {LEASE_MS} ms)\n\
         all delivered, queue empty   {drained_after:.1?} after the load started; dead letters {dead_letters}\n\
         total                        {:.1?}\n",
        same_repeated.len(),
        acknowledged.len(),
        unacknowledged.len(),
        acknowledged.len() as f64 / load_secs,
        acknowledged.len(),
        twice.len(),
        (last_delivery_ms - killed_at_ms) as f64 / 1000.0,
        started.elapsed(),
    );

    assert!(
        unacknowledged.is_empty(),
        "two live nodes refused {} events, e.g. {:?}",
        unacknowledged.len(),
        &unacknowledged[..unacknowledged.len().min(5)]
    );
    assert_eq!(
        acked_delivered,
        acknowledged.len(),
        "every acknowledged event must be delivered"
    );
    assert!(
        same_repeated.is_empty(),
        "same-instant events delivered more than once: {same_repeated:?}"
    );
    assert_eq!(dead_letters, 0.0, "nothing may be dead-lettered");
    assert!(
        twice.len() <= DUPLICATE_BOUND,
        "{} events delivered twice, more than one node's in-flight batches ({DUPLICATE_BOUND})",
        twice.len()
    );
    drop(cluster);
    emulator.shutdown().await;
}
