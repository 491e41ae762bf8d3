//! The PostgreSQL backend of [`sluice_store::Store`]: one queue, one dedup
//! ledger and one dead-letter queue shared by several `sluice serve` nodes.
//!
//! Use it when one machine is not enough, or must not be a single point of
//! failure: every node connects to the same database and schema, and the
//! database arbitrates. The contract is the trait's, checked by the same
//! conformance suite as the SQLite backend; this page says how it is kept
//! when several processes share the tables.
//!
//! # How each guarantee holds across nodes
//!
//! - **Durability.** `enqueue` answers after `COMMIT` returned, with
//!   `synchronous_commit = on` forced on every connection (unless the
//!   operator turns [`PostgresOptions::synchronous_commit`] off). Enqueues
//!   are group-committed per node (see the `writer` module).
//! - **Exclusive leases.** `lease` claims rows with
//!   `SELECT … FOR UPDATE SKIP LOCKED` and marks them with an absolute
//!   `leased_until_ms` in the same statement. A concurrent lease skips rows
//!   another transaction holds and re-checks the lease condition on rows
//!   changed since its snapshot, so two nodes never get the same event
//!   while its lease runs. A node that dies leaves its leases behind, and
//!   once `now_ms` passes `leased_until_ms` any node leases those events
//!   again (leases are never renewed, so nothing else is needed). Unlike
//!   the SQLite store (whose one owning process gives back every lease at
//!   start, `SqliteStore::claim_ownership`), a node restarted after a
//!   `kill -9` does **not** release leases at start: the rows do not say
//!   which node holds them, other nodes may be alive and delivering theirs,
//!   and releasing a running lease would break exclusive leases. So a dead
//!   node's events wait out the rest of `delivery.lease_ms` (120 s by
//!   default); lower it where that delay matters (its floor keeps it above
//!   the time one delivery attempt can take).
//! - **Deduplication.** The ledger's primary key decides; a key's window
//!   expiry is checked inside `INSERT … ON CONFLICT DO UPDATE`, on the
//!   latest committed row and under its row lock. Two nodes receiving one
//!   event at the same instant queue it once.
//! - **Counters** are sharded rows per pixel, updated in the same statement
//!   or transaction as the rows they count (see [`schema`]).
//!
//! Time is the caller's `now_ms`, as the trait demands, so the nodes'
//! clocks must agree to well within a lease (NTP does this): a node whose
//! clock runs ahead by more than the lease length would take over leases
//! that are still running elsewhere (delivery stays at-least-once; Meta
//! deduplicates on `event_id`).
//!
//! # Failure semantics
//!
//! - Every write is one statement (data-modifying CTEs), hence one
//!   transaction, and applies whole or not at all; `purge` and
//!   `purge_audit` are a series of such bounded statements. A group commit
//!   is one statement too, unless it has to be split into rounds (then one
//!   explicit transaction); `merge_held` is one explicit transaction.
//! - Statement plans are generic (`plan_cache_mode = force_generic_plan`)
//!   and written so that no row estimate can turn a primary-key probe into
//!   a scan (see `schema`): a queue's statistics are usually those of an
//!   empty table.
//! - A lost connection is `store_io` (transient); the pool discards the
//!   connection and the next call gets a fresh one. A statement that runs
//!   past [`PostgresOptions::statement_timeout`], a deadlock, or an exhausted
//!   pool is `store_busy` (transient).
//! - A read-only server (a hot standby after a failover that has not
//!   finished) is `store_read_only`.
//! - Strings with a NUL character cannot be stored in PostgreSQL `text`;
//!   such events are refused as `store_invalid_input`, as are user keys
//!   containing U+001F (the separator used to pass them in bulk; keys are
//!   hex digests).
//!
//! # TLS
//!
//! `sslmode` in the URL works as in libpq (`disable`, `prefer` — the
//! default —, `require`), over rustls; [`PostgresOptions::tls_root_cert`]
//! adds server authentication (`verify-full`). See the `tls` module.

mod error;
mod rotation;
mod rows;
pub mod schema;
mod sql;
mod tls;
mod writer;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI16, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use sluice_store::{
    AuditEntry, AuditFilter, AuditRow, DEFAULT_DEDUP_WINDOW_MS, DeadLetter, DeadLetterId,
    DeadLetterReason, DedupReport, DedupReportQuery, DlqFilter, EnqueueOutcome, EventRowId,
    EventSource, ForgetReport, LeasedEvent, LedgerEntry, MAX_IDS_PER_EXAMPLE, MergeFn,
    MergeOutcome, MergeRequest, NewEvent, PixelStats, PurgeReport, Store, StoreError, StoreStats,
    ledger_order_id,
};
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::Config;
use tokio_postgres::types::ToSql;

pub use rotation::{MOVE_MAX_ROWS, RotationReport};
pub use schema::{MigrationReport, SCHEMA_VERSION};

use crate::error::{pg_error, pool_error};
use crate::schema::COUNTER_SHARDS;
use crate::sql::Sql;
use crate::tls::MakeRustls;
use crate::writer::EnqueueRequest;

/// Default for [`PostgresOptions::schema`].
pub const DEFAULT_SCHEMA: &str = "sluice";
/// Default for [`PostgresOptions::pool_size`].
pub const DEFAULT_POOL_SIZE: usize = 16;
/// Default for [`PostgresOptions::group_commit_max_rows`].
pub const DEFAULT_GROUP_COMMIT_MAX_ROWS: usize = 5_000;
/// Default for [`PostgresOptions::purge_batch_rows`].
pub const DEFAULT_PURGE_BATCH_ROWS: usize = 10_000;

/// How to connect a [`PostgresStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The PostgreSQL schema holding the tables; created by the migration.
    /// A plain lowercase identifier (`[a-z_][a-z0-9_]*`).
    pub schema: String,
    /// Connections kept by this node (writers, leases, reads share them).
    pub pool_size: usize,
    /// Server-side limit for one statement (`statement_timeout`); a
    /// statement past it fails with `store_busy`. Zero disables it.
    pub statement_timeout: Duration,
    /// How long to wait for a free pooled connection before `store_busy`.
    pub pool_wait_timeout: Duration,
    /// How long to wait for a new connection, if the URL does not say
    /// (`connect_timeout`).
    pub connect_timeout: Duration,
    /// How long a dedup key is remembered (48 h, like Meta's own window).
    pub dedup_window_ms: i64,
    /// Events committed per group commit at most.
    pub group_commit_max_rows: usize,
    /// After draining what is waiting, wait up to this long for more before
    /// committing. Zero (the default) commits at once; groups still grow
    /// under load while the previous commit runs.
    pub group_commit_max_wait: Duration,
    /// Group-commit writer tasks, each with at most one group in flight.
    /// More than one lets groups collect while others commit, and lets the
    /// server flush several commits with one WAL fsync: with a 4 ms fsync
    /// (a busy disk on the benchmark machine) four writers carried about
    /// 1.4x the single-event ingest of two.
    pub writers: usize,
    /// Ledger rows deleted per purge statement.
    pub purge_batch_rows: usize,
    /// After purging, `purge` vacuums each hot table (queue, ledger, lease
    /// batches, counters) whose dead tuples exceed this many and a fifth of
    /// its live ones. Autovacuum normally gets there first (the migration
    /// sets absolute thresholds), but a server with autovacuum off, or with
    /// its workers busy elsewhere, would otherwise let a busy queue grow
    /// without bound. Zero turns this off. The vacuum runs in the
    /// background (`purge` does not wait for it), throttled like
    /// autovacuum (`vacuum_cost_delay`), and runs at most once per
    /// [`PostgresOptions::vacuum_interval`] per table and node: an
    /// unthrottled vacuum of a bloated queue starved the delivery lanes of
    /// I/O in the soak test, and their slower leases then held back the
    /// very horizon the vacuum needed.
    pub vacuum_dead_rows: u64,
    /// See [`PostgresOptions::vacuum_dead_rows`].
    pub vacuum_interval: Duration,
    /// How long inserts go to one queue partition before a node rotates to
    /// a drained one and truncates it (see [`PostgresStore::rotate_queue`]):
    /// the queue's live data spans about this long plus the delivery lag,
    /// and its dead rows never need a vacuum. Zero turns the background
    /// rotation off (an operator or test may still call `rotate_queue`).
    pub queue_rotate_interval: Duration,
    /// Apply the embedded migrations on connect (otherwise the schema must
    /// already be at [`SCHEMA_VERSION`]; `sluice migrate` applies them).
    pub run_migrations: bool,
    /// Force `synchronous_commit = on` (the acknowledgement contract).
    /// `false` leaves the server's setting alone: an operator who chose
    /// `off` on the server trades the last few hundred ms of acknowledged
    /// events on a server crash for latency.
    pub synchronous_commit: bool,
    /// CA certificates (PEM) the server's certificate must chain to, with
    /// the URL's host name checked (libpq's `verify-full`). Without it,
    /// `sslmode=require`/`prefer` encrypt but do not authenticate the
    /// server, as libpq's `require` does.
    pub tls_root_cert: Option<PathBuf>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            schema: DEFAULT_SCHEMA.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            statement_timeout: Duration::from_secs(30),
            pool_wait_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            dedup_window_ms: DEFAULT_DEDUP_WINDOW_MS,
            group_commit_max_rows: DEFAULT_GROUP_COMMIT_MAX_ROWS,
            group_commit_max_wait: Duration::ZERO,
            writers: 4,
            purge_batch_rows: DEFAULT_PURGE_BATCH_ROWS,
            vacuum_dead_rows: 100_000,
            vacuum_interval: Duration::from_secs(60),
            queue_rotate_interval: Duration::from_secs(10),
            run_migrations: true,
            synchronous_commit: true,
            tls_root_cert: None,
        }
    }
}

/// Counters of the group-commit writers, see [`PostgresStore::writer_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Group transactions committed since connect.
    pub groups: u64,
    /// `enqueue` calls committed since connect; `requests / groups` is the
    /// mean group size.
    pub requests: u64,
    /// Events committed by the writers since connect.
    pub events: u64,
    /// Time the writers spent committing groups (from taking a connection
    /// to the answer of the commit), summed over writers, in microseconds;
    /// `commit_us / groups` is the mean group latency.
    pub commit_us: u64,
}

#[derive(Debug, Default)]
struct WriterCounters {
    groups: AtomicU64,
    requests: AtomicU64,
    events: AtomicU64,
    commit_us: AtomicU64,
}

/// What the writers and the store share.
struct Shared {
    pool: Pool,
    sql: Sql,
    options: PostgresOptions,
    stats: WriterCounters,
    shard_seed: u32,
    shard_next: AtomicU32,
    /// When this node last vacuumed each table.
    vacuumed: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// A maintenance vacuum is running in the background.
    vacuuming: AtomicBool,
    /// The queue partition this node inserts into (see `rotation`).
    queue_part: AtomicI16,
}

impl Shared {
    /// The counter shard for the next write: rotates, from a per-process
    /// random start, so nodes spread over the shards.
    fn next_shard(&self) -> i16 {
        let n = self
            .shard_seed
            .wrapping_add(self.shard_next.fetch_add(1, Ordering::Relaxed));
        i16::try_from(n % COUNTER_SHARDS.unsigned_abs() as u32).unwrap_or(0)
    }

    /// The queue partition new events go to (see `rotation`).
    fn queue_part(&self) -> i16 {
        self.queue_part.load(Ordering::Relaxed)
    }

    fn set_queue_part(&self, part: i16) {
        self.queue_part.store(part, Ordering::Relaxed);
    }
}

/// A store on PostgreSQL. Cheap to share behind an `Arc`; many of them (in
/// one process or on many machines) may use the same schema at once.
pub struct PostgresStore {
    shared: Arc<Shared>,
    requests: std::sync::Mutex<Option<mpsc::UnboundedSender<EnqueueRequest>>>,
    writers: AsyncMutex<Vec<JoinHandle<()>>>,
    /// The rotation loop, if `queue_rotate_interval` is not zero.
    maintenance: Option<JoinHandle<()>>,
    closed: AtomicBool,
}

// === impl PostgresStore ===

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db?…`, any key that
    /// libpq-style URLs take), migrates the schema unless told not to, and
    /// starts the group-commit writers.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        schema::validate_schema_name(&options.schema)?;
        if options.dedup_window_ms <= 0 {
            return Err(StoreError::invalid("dedup_window_ms must be positive"));
        }
        let config = connection_config(url, &options)?;
        let manager = Manager::from_config(
            config,
            MakeRustls::new(options.tls_root_cert.as_deref())?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .wait_timeout(Some(options.pool_wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Backend {
                message: format!("cannot build the connection pool: {e}"),
            })?;

        {
            let mut client = pool.get().await.map_err(pool_error)?;
            if options.run_migrations {
                schema::migrate(&mut client, &options.schema).await?;
            } else {
                schema::check_version(&client, &options.schema).await?;
            }
        }

        let seed = RandomState::new().build_hasher().finish();
        let shared = Arc::new(Shared {
            pool,
            sql: Sql::new(&options.schema),
            options,
            stats: WriterCounters::default(),
            shard_seed: (seed >> 32) as u32,
            shard_next: AtomicU32::new(0),
            vacuumed: std::sync::Mutex::new(std::collections::HashMap::new()),
            vacuuming: AtomicBool::new(false),
            queue_part: AtomicI16::new(0),
        });
        rotation::refresh(&shared).await?;
        let maintenance = (!shared.options.queue_rotate_interval.is_zero()).then(|| {
            let weak = Arc::downgrade(&shared);
            tokio::spawn(rotation::run(weak, shared.options.queue_rotate_interval))
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(AsyncMutex::new(rx));
        let writers = (0..shared.options.writers.max(1))
            .map(|_| tokio::spawn(writer::run_writer(Arc::clone(&rx), Arc::clone(&shared))))
            .collect();
        tracing::debug!(schema = %shared.options.schema, "connected postgres store");
        Ok(PostgresStore {
            shared,
            requests: std::sync::Mutex::new(Some(tx)),
            writers: AsyncMutex::new(writers),
            maintenance,
            closed: AtomicBool::new(false),
        })
    }

    /// The options the store was connected with.
    pub fn options(&self) -> &PostgresOptions {
        &self.shared.options
    }

    /// Rotates the queue now if another partition has drained (see
    /// [`PostgresOptions::queue_rotate_interval`], which the background
    /// loop waits for; this call does not): truncates it and makes it the
    /// one new events go to. A partition still holding events is never
    /// truncated; once the oldest one is down to [`MOVE_MAX_ROWS`] events,
    /// its unleased events are first moved, ids unchanged, to the current
    /// partition. Safe on any node at any time; one node rotates at once.
    pub async fn rotate_queue(&self, now_ms: i64) -> Result<RotationReport, StoreError> {
        self.ensure_open()?;
        rotation::rotate(&self.shared, now_ms, true).await
    }

    /// How many group transactions and enqueue calls were committed.
    pub fn writer_stats(&self) -> WriterStats {
        WriterStats {
            groups: self.shared.stats.groups.load(Ordering::Relaxed),
            requests: self.shared.stats.requests.load(Ordering::Relaxed),
            events: self.shared.stats.events.load(Ordering::Relaxed),
            commit_us: self.shared.stats.commit_us.load(Ordering::Relaxed),
        }
    }

    fn ensure_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.ensure_open()?;
        self.shared.pool.get().await.map_err(pool_error)
    }

    /// Runs one prepared statement and returns its rows.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.query(&stmt, params).await.map_err(pg_error)
    }

    /// Runs one prepared statement that returns exactly one `count(*)`.
    async fn query_count(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let rows = self.query(sql, params).await?;
        let row = rows.first().ok_or_else(|| StoreError::Backend {
            message: "a count statement returned no row".to_owned(),
        })?;
        Ok(rows::count(row.try_get(0).map_err(pg_error)?))
    }
}

// === maintenance ===

impl Shared {
    /// Vacuums the hot tables that have piled up dead tuples (see
    /// [`PostgresOptions::vacuum_dead_rows`]). `SKIP_LOCKED`: when another
    /// node (or autovacuum) is already vacuuming a table, this one skips it.
    /// Runs in the background, started by `purge` (see `spawn_vacuum`).
    async fn vacuum_if_bloated(&self) -> Result<(), StoreError> {
        let threshold = i64::try_from(self.options.vacuum_dead_rows).unwrap_or(i64::MAX);
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client
            .query(
                "SELECT relname::text FROM pg_catalog.pg_stat_user_tables
                 WHERE schemaname = $1
                   AND (relname IN ('dedup_ledger', 'lease_batches', 'pixel_counters')
                        OR relname LIKE 'queue\\_p_')
                   AND n_dead_tup >= $2 AND n_dead_tup * 5 >= n_live_tup",
                &[&self.options.schema, &threshold],
            )
            .await
            .map_err(pg_error)?;
        for row in rows {
            let table: String = row.try_get(0).map_err(pg_error)?;
            {
                let mut vacuumed = self
                    .vacuumed
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let now = std::time::Instant::now();
                if vacuumed
                    .get(&table)
                    .is_some_and(|at| now.duration_since(*at) < self.options.vacuum_interval)
                {
                    continue;
                }
                vacuumed.insert(table.clone(), now);
            }
            // VACUUM refuses to run in a transaction block, so the session
            // settings are changed and restored around it with separate
            // statements: no timeout, autovacuum's throttle.
            client
                .batch_execute("SET statement_timeout = 0")
                .await
                .map_err(pg_error)?;
            client
                .batch_execute("SET vacuum_cost_delay = 2")
                .await
                .map_err(pg_error)?;
            let started = std::time::Instant::now();
            let result = client
                .batch_execute(&format!(
                    "VACUUM (ANALYZE, SKIP_LOCKED, TRUNCATE false) {}.{table}",
                    self.options.schema
                ))
                .await;
            client
                .batch_execute("RESET statement_timeout")
                .await
                .map_err(pg_error)?;
            client
                .batch_execute("RESET vacuum_cost_delay")
                .await
                .map_err(pg_error)?;
            result.map_err(pg_error)?;
            tracing::info!(
                table,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "vacuumed a bloated store table"
            );
        }
        Ok(())
    }

    /// Starts [`Shared::vacuum_if_bloated`] in the background unless one is
    /// already running: a throttled vacuum of a large table takes long, and
    /// `purge` (the ledger's retention) must not wait for it.
    fn spawn_vacuum(self: &Arc<Self>) {
        if self.vacuuming.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(error) = shared.vacuum_if_bloated().await {
                tracing::warn!(code = error.code(), %error, "maintenance vacuum failed");
            }
            shared.vacuuming.store(false, Ordering::Release);
        });
    }
}

/// Applies the embedded migrations to `schema` at `url` and reports the
/// versions (`sluice migrate`). Safe to run while nodes are up, and from
/// several places at once.
pub async fn migrate(url: &str, schema: &str) -> Result<MigrationReport, StoreError> {
    schema::validate_schema_name(schema)?;
    let options = PostgresOptions {
        schema: schema.to_owned(),
        ..PostgresOptions::default()
    };
    let mut client = connect_one(url, &options).await?;
    schema::migrate(&mut client, schema).await
}

/// Applies the embedded migrations up to `version` only: for tests of
/// the migrations themselves (a node needs [`SCHEMA_VERSION`]).
#[doc(hidden)]
pub async fn migrate_to_version(
    url: &str,
    schema: &str,
    version: i64,
) -> Result<MigrationReport, StoreError> {
    schema::validate_schema_name(schema)?;
    let options = PostgresOptions {
        schema: schema.to_owned(),
        ..PostgresOptions::default()
    };
    let mut client = connect_one(url, &options).await?;
    schema::migrate_to(&mut client, schema, version).await
}

/// Drops `schema` and everything in it. For tests and for decommissioning;
/// never called by the gateway.
pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    schema::validate_schema_name(schema)?;
    let options = PostgresOptions {
        schema: schema.to_owned(),
        ..PostgresOptions::default()
    };
    let client = connect_one(url, &options).await?;
    // Dropping a large queue can outlast the usual statement timeout.
    client
        .batch_execute(&format!(
            "SET statement_timeout = 0; DROP SCHEMA IF EXISTS {schema} CASCADE"
        ))
        .await
        .map_err(pg_error)
}

/// One connection outside any pool, its driver task spawned.
async fn connect_one(
    url: &str,
    options: &PostgresOptions,
) -> Result<tokio_postgres::Client, StoreError> {
    let config = connection_config(url, options)?;
    let tls = MakeRustls::new(options.tls_root_cert.as_deref())?;
    let (client, connection) = config.connect(tls).await.map_err(pg_error)?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "postgres connection ended");
        }
    });
    Ok(client)
}

/// Parses the URL and adds the session settings the contract needs.
fn connection_config(url: &str, options: &PostgresOptions) -> Result<Config, StoreError> {
    // The URL may carry a password: never echo it.
    let mut config = Config::from_str(url)
        .map_err(|_| StoreError::invalid("invalid PostgreSQL URL (expected postgres://…)"))?;
    if config.get_application_name().is_none() {
        config.application_name("sluice");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    let mut session = config.get_options().unwrap_or_default().to_owned();
    session.push_str(&format!(
        " -c statement_timeout={}",
        options.statement_timeout.as_millis()
    ));
    if options.synchronous_commit {
        session.push_str(" -c synchronous_commit=on");
    }
    // Our statements are index lookups driven by array parameters: a
    // generic plan fits every batch size, and re-planning the large
    // multi-CTE statements for each execution (custom plans) costs more
    // than running them for small groups.
    session.push_str(" -c plan_cache_mode=force_generic_plan");
    // A generic plan is made once per connection, with the statistics of
    // that moment, and kept while the tables change under it. A queue
    // partition is empty when it becomes current (just truncated, see
    // `rotation`) and holds a million rows a minute later: a plan made
    // in between served `id = ANY($1)` on it with a sequential scan, and
    // every ack and lease read the whole partition (delivery fell from
    // 16k to 1.7k events/s in a 3-minute soak). With sequential scans
    // priced out, every statement here that has an index uses it; the
    // ones that have none (`forget` on the queue) still scan.
    session.push_str(" -c enable_seqscan=off");
    config.options(session.trim());
    Ok(config)
}

/// Rejects what no backend may store, and what PostgreSQL cannot.
fn validate_events(events: &[NewEvent]) -> Result<(), StoreError> {
    sluice_store::check_new_events(events)?;
    for event in events {
        let texts = [&event.pixel_id, &event.event_name, &event.event_id]
            .into_iter()
            .chain(event.test_event_code.as_ref())
            .chain(event.order_id.as_ref())
            .chain(&event.user_keys);
        for text in texts {
            if text.contains('\0') {
                return Err(StoreError::invalid(
                    "event text contains a NUL character, which PostgreSQL cannot store",
                ));
            }
        }
    }
    Ok(())
}

/// Rejects audit rows PostgreSQL cannot store (text with NUL).
fn validate_audit(rows: &[AuditRow]) -> Result<(), StoreError> {
    for row in rows {
        let texts = [
            &row.pixel_id,
            &row.event_name,
            &row.source,
            &row.outcome,
            &row.rule_id,
            &row.record_json,
        ];
        if texts
            .into_iter()
            .chain(&row.event_id)
            .any(|t| t.contains('\0'))
        {
            return Err(StoreError::invalid(
                "audit row text contains a NUL character, which PostgreSQL cannot store",
            ));
        }
    }
    Ok(())
}

fn raw_ids<I: Copy>(ids: &[I], raw: impl Fn(I) -> i64) -> Vec<i64> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    ids.iter()
        .map(|id| raw(*id))
        .filter(|id| seen.insert(*id))
        .collect()
}

fn no_nul(text: &str, what: &str) -> Result<(), StoreError> {
    if text.contains('\0') {
        Err(StoreError::invalid(format!(
            "{what} contains a NUL character, which PostgreSQL cannot store"
        )))
    } else {
        Ok(())
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    fn dedup_window_ms(&self) -> i64 {
        self.shared.options.dedup_window_ms
    }

    async fn enqueue_with_audit(
        &self,
        events: Vec<NewEvent>,
        audit: Vec<AuditRow>,
        now_ms: i64,
    ) -> Result<Vec<EnqueueOutcome>, StoreError> {
        self.ensure_open()?;
        if events.is_empty() && audit.is_empty() {
            return Ok(Vec::new());
        }
        validate_events(&events)?;
        validate_audit(&audit)?;
        // Through the group-commit writers: the audit rows ride the same
        // statement as the events (see `writer`), so they commit together.
        let (reply, answer) = oneshot::channel();
        {
            let requests = self
                .requests
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            requests
                .as_ref()
                .ok_or(StoreError::Closed)?
                .send(EnqueueRequest {
                    events,
                    audit,
                    now_ms,
                    reply,
                })
                .map_err(|_| StoreError::Closed)?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn due_pixels(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let rows = self.query(&self.shared.sql.due_pixels, &[&now_ms]).await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(pg_error))
            .collect()
    }

    async fn lease(
        &self,
        pixel_id: &str,
        max_events: usize,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<LeasedEvent>, StoreError> {
        self.ensure_open()?;
        if lease_ms <= 0 {
            return Err(StoreError::invalid("lease_ms must be positive"));
        }
        if max_events == 0 {
            return Ok(Vec::new());
        }
        no_nul(pixel_id, "pixel_id")?;
        let limit = i64::try_from(max_events).unwrap_or(i64::MAX);
        let leased_until = now_ms.saturating_add(lease_ms);
        let rows = self
            .query(
                &self.shared.sql.lease,
                &[&pixel_id, &now_ms, &limit, &leased_until],
            )
            .await?;
        rows.iter().map(rows::leased_event).collect()
    }

    async fn ack(&self, ids: &[EventRowId], now_ms: i64) -> Result<u64, StoreError> {
        self.ensure_open()?;
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = raw_ids(ids, EventRowId::raw);
        let shard = self.shared.next_shard();
        self.query_count(&self.shared.sql.ack, &[&ids, &now_ms, &shard])
            .await
    }

    async fn retry(
        &self,
        ids: &[EventRowId],
        next_attempt_at_ms: i64,
        last_error: &str,
    ) -> Result<u64, StoreError> {
        self.ensure_open()?;
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = raw_ids(ids, EventRowId::raw);
        let last_error = truncate_error(&last_error.replace('\0', ""));
        self.query_count(
            &self.shared.sql.reschedule,
            &[&ids, &next_attempt_at_ms, &1i32, &last_error],
        )
        .await
    }

    async fn release(&self, ids: &[EventRowId], due_at_ms: i64) -> Result<u64, StoreError> {
        self.ensure_open()?;
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = raw_ids(ids, EventRowId::raw);
        let none: Option<&str> = None;
        self.query_count(
            &self.shared.sql.reschedule,
            &[&ids, &due_at_ms, &0i32, &none],
        )
        .await
    }

    async fn dead_letter(
        &self,
        ids: &[EventRowId],
        reason: DeadLetterReason,
        now_ms: i64,
    ) -> Result<Vec<DeadLetterId>, StoreError> {
        self.ensure_open()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        no_nul(&reason.code, "dead-letter code")?;
        no_nul(&reason.message, "dead-letter message")?;
        if let Some(detail) = &reason.detail_json {
            no_nul(detail, "dead-letter detail")?;
        }
        let ids = raw_ids(ids, EventRowId::raw);
        let shard = self.shared.next_shard();
        let rows = self
            .query(
                &self.shared.sql.dead_letter,
                &[
                    &ids,
                    &reason.code,
                    &reason.message,
                    &reason.detail_json,
                    &now_ms,
                    &shard,
                ],
            )
            .await?;
        let mut moved = rows
            .iter()
            .map(|row| row.try_get::<_, i64>(0).map_err(pg_error))
            .collect::<Result<Vec<_>, _>>()?;
        // Ids are drawn in insertion order, which follows `ids`.
        moved.sort_unstable();
        Ok(moved.into_iter().map(DeadLetterId::from_raw).collect())
    }

    async fn dlq_list(&self, filter: &DlqFilter) -> Result<Vec<DeadLetter>, StoreError> {
        let after_id = filter.after_id.map(DeadLetterId::raw);
        let limit = i64::from(filter.effective_limit());
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let fields: [(&str, Option<&(dyn ToSql + Sync)>); 5] = [
            ("pixel_id =", filter.pixel_id.as_ref().map(|v| v as _)),
            ("event_name =", filter.event_name.as_ref().map(|v| v as _)),
            ("code =", filter.code.as_ref().map(|v| v as _)),
            (
                "dead_lettered_ms >=",
                filter.since_ms.as_ref().map(|v| v as _),
            ),
            ("id >", after_id.as_ref().map(|v| v as _)),
        ];
        for (condition, value) in fields {
            if let Some(value) = value {
                params.push(value);
                conditions.push(format!("{condition} ${}", params.len()));
            }
        }
        params.push(&limit);
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        // At most 32 statement shapes, so the per-connection cache stays small.
        let sql = format!(
            "{}{where_clause} ORDER BY id LIMIT ${}",
            self.shared.sql.dlq_list_base,
            params.len()
        );
        let rows = self.query(&sql, &params).await?;
        rows.iter().map(rows::dead_letter).collect()
    }

    async fn dlq_get(&self, id: DeadLetterId) -> Result<Option<DeadLetter>, StoreError> {
        let rows = self.query(&self.shared.sql.dlq_get, &[&id.raw()]).await?;
        rows.first().map(rows::dead_letter).transpose()
    }

    async fn dlq_replay(
        &self,
        ids: &[DeadLetterId],
        test_event_code: Option<String>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        self.ensure_open()?;
        if ids.is_empty() {
            return Ok(0);
        }
        if let Some(code) = &test_event_code {
            no_nul(code, "test_event_code")?;
        }
        let ids = raw_ids(ids, DeadLetterId::raw);
        let shard = self.shared.next_shard();
        self.query_count(
            &self.shared.sql.dlq_replay,
            &[
                &ids,
                &test_event_code,
                &now_ms,
                &shard,
                &self.shared.queue_part(),
            ],
        )
        .await
    }

    async fn dlq_delete(&self, ids: &[DeadLetterId]) -> Result<u64, StoreError> {
        self.ensure_open()?;
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = raw_ids(ids, DeadLetterId::raw);
        let shard = self.shared.next_shard();
        self.query_count(&self.shared.sql.dlq_delete, &[&ids, &shard])
            .await
    }

    async fn dedup_lookup(
        &self,
        pixel_id: &str,
        event_name: &str,
        event_id: &str,
        now_ms: i64,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        for text in [pixel_id, event_name, event_id] {
            if text.contains('\0') {
                return Ok(None);
            }
        }
        let live_after_ms = now_ms.saturating_sub(self.shared.options.dedup_window_ms);
        let rows = self
            .query(
                &self.shared.sql.dedup_lookup,
                &[&pixel_id, &event_name, &event_id, &live_after_ms],
            )
            .await?;
        rows.first().map(rows::ledger_entry).transpose()
    }

    async fn dedup_report(
        &self,
        query: &DedupReportQuery,
        now_ms: i64,
    ) -> Result<DedupReport, StoreError> {
        if let Some(pixel) = &query.pixel_id {
            no_nul(pixel, "pixel_id")?;
        }
        let since_ms = query.effective_since_ms(now_ms, self.shared.options.dedup_window_ms);
        let pixel_id = query.pixel_id.as_deref();
        let max = i64::from(query.effective_max_examples());
        // One more than asked tells whether a list was cut.
        let fetch = max + 1;
        let per_order = MAX_IDS_PER_EXAMPLE as i32;
        let mut client = self.client().await?;
        // One snapshot for the rows and the lists.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_error)?;
        let sql = &self.shared.sql;
        let stmt = tx
            .prepare_cached(&sql.report_rows)
            .await
            .map_err(pg_error)?;
        let rows = tx
            .query(&stmt, &[&since_ms, &pixel_id])
            .await
            .map_err(pg_error)?
            .iter()
            .map(rows::report_row)
            .collect::<Result<Vec<_>, _>>()?;
        let stmt = tx
            .prepare_cached(&sql.report_order_conflicts)
            .await
            .map_err(pg_error)?;
        let mut orders = tx
            .query(&stmt, &[&since_ms, &pixel_id, &fetch, &per_order])
            .await
            .map_err(pg_error)?
            .iter()
            .map(rows::order_conflict)
            .collect::<Result<Vec<_>, _>>()?;
        let stmt = tx
            .prepare_cached(&sql.report_name_conflicts)
            .await
            .map_err(pg_error)?;
        let mut names = tx
            .query(&stmt, &[&since_ms, &pixel_id, &fetch])
            .await
            .map_err(pg_error)?
            .iter()
            .map(rows::name_conflict)
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await.map_err(pg_error)?;
        let limit = usize::try_from(max).unwrap_or(usize::MAX);
        let truncated = orders.len() > limit || names.len() > limit;
        orders.truncate(limit);
        names.truncate(limit);
        Ok(DedupReport {
            since_ms,
            until_ms: now_ms,
            rows,
            order_ids_with_several_event_ids: orders,
            event_ids_with_several_event_names: names,
            truncated,
        })
    }

    async fn merge_held(
        &self,
        request: MergeRequest,
        merge: MergeFn,
        now_ms: i64,
    ) -> Result<MergeOutcome, StoreError> {
        self.ensure_open()?;
        if request.event_id.is_empty() {
            return Ok(MergeOutcome::NotMerged);
        }
        let texts = [&request.pixel_id, &request.event_name, &request.event_id];
        if texts.into_iter().any(|t| t.contains('\0')) {
            return Ok(MergeOutcome::NotMerged);
        }
        if request
            .user_keys
            .iter()
            .chain(&request.order_id)
            .any(|t| t.contains('\0'))
        {
            return Err(StoreError::invalid(
                "merge text contains a NUL character, which PostgreSQL cannot store",
            ));
        }
        let sql = &self.shared.sql;
        let mut client = self.client().await?;
        // Locks the held row first, then its ledger entry: the order
        // `forget` uses (enqueue locks ledger rows but never an existing
        // queue row), so the two cannot wait on each other in a cycle.
        let tx = client.transaction().await.map_err(pg_error)?;
        let stmt = tx.prepare_cached(&sql.held_copy).await.map_err(pg_error)?;
        let held = tx
            .query_opt(
                &stmt,
                &[
                    &request.pixel_id,
                    &request.event_name,
                    &request.event_id,
                    &now_ms,
                    &request.source.as_str(),
                ],
            )
            .await
            .map_err(pg_error)?;
        let Some(held) = held else {
            return Ok(MergeOutcome::NotMerged);
        };
        let row_id: i64 = held.try_get(0).map_err(pg_error)?;
        let into_source: &str = held.try_get(1).map_err(pg_error)?;
        let into_source: EventSource = into_source.parse().map_err(|_| StoreError::Corrupt {
            message: "queue.source holds an unknown source".to_owned(),
        })?;
        let payload: Vec<u8> = held.try_get(2).map_err(pg_error)?;
        // A panicking merge function is a refusal, as in every backend.
        let merged =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || merge(&payload)))
                .ok()
                .flatten();
        let Some(merged) = merged else {
            return Ok(MergeOutcome::NotMerged);
        };
        let stmt = tx
            .prepare_cached(&sql.merge_queue)
            .await
            .map_err(pg_error)?;
        tx.execute(&stmt, &[&row_id, &merged, &now_ms, &request.user_keys])
            .await
            .map_err(pg_error)?;
        let stmt = tx
            .prepare_cached(&sql.merge_ledger)
            .await
            .map_err(pg_error)?;
        tx.execute(
            &stmt,
            &[
                &request.pixel_id,
                &request.event_name,
                &request.event_id,
                &i16::from(request.source.bit()),
                &now_ms,
                &ledger_order_id(request.order_id.as_deref()),
            ],
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok(MergeOutcome::Merged {
            id: EventRowId::from_raw(row_id),
            into_source,
        })
    }

    async fn stats(&self, now_ms: i64) -> Result<StoreStats, StoreError> {
        let rows = self.query(&self.shared.sql.stats, &[&now_ms]).await?;
        let mut stats = StoreStats::default();
        for row in &rows {
            let get = |i: usize| row.try_get::<_, i64>(i).map_err(pg_error).map(rows::count);
            let pixel = PixelStats {
                pixel_id: row.try_get(0).map_err(pg_error)?,
                queued: get(1)?,
                dead_letters: get(2)?,
                delivered_total: get(3)?,
                duplicates_total: get(4)?,
                last_delivered_ms: row.try_get(5).map_err(pg_error)?,
                leased: get(6)?,
                held: get(7)?,
                oldest_due_ms: row.try_get(8).map_err(pg_error)?,
            };
            stats.queued += pixel.queued;
            stats.leased += pixel.leased;
            stats.held += pixel.held;
            stats.dead_letters += pixel.dead_letters;
            stats.delivered_total += pixel.delivered_total;
            stats.duplicates_total += pixel.duplicates_total;
            stats.per_pixel.push(pixel);
        }
        Ok(stats)
    }

    async fn purge(&self, now_ms: i64) -> Result<PurgeReport, StoreError> {
        self.ensure_open()?;
        let cutoff_ms = now_ms.saturating_sub(self.shared.options.dedup_window_ms);
        let batch = self.shared.options.purge_batch_rows.max(1);
        let limit = i64::try_from(batch).unwrap_or(i64::MAX);
        let mut report = PurgeReport::default();
        // Each batch is its own statement and transaction: a large purge
        // never holds many row locks, and enqueues interleave with it.
        loop {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(&self.shared.sql.purge_ledger)
                .await
                .map_err(pg_error)?;
            let deleted = client
                .execute(&stmt, &[&cutoff_ms, &limit])
                .await
                .map_err(pg_error)?;
            report.batches += 1;
            report.ledger += deleted;
            if deleted < batch as u64 {
                break;
            }
        }
        loop {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(&self.shared.sql.purge_lease_batches)
                .await
                .map_err(pg_error)?;
            let deleted = client
                .execute(&stmt, &[&now_ms, &limit])
                .await
                .map_err(pg_error)?;
            if deleted < batch as u64 {
                break;
            }
        }
        if self.shared.options.vacuum_dead_rows > 0 {
            self.shared.spawn_vacuum();
        }
        Ok(report)
    }

    async fn forget(&self, user_keys: &[String]) -> Result<ForgetReport, StoreError> {
        self.ensure_open()?;
        let keys: Vec<&str> = user_keys
            .iter()
            .map(String::as_str)
            .filter(|k| !k.contains('\0'))
            .collect();
        if keys.is_empty() {
            return Ok(ForgetReport::default());
        }
        let shard = self.shared.next_shard();
        // Under the lock that queue rotation takes to move events between
        // partitions, so no event is in flight where this cannot see it.
        let mut client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.shared.sql.forget)
            .await
            .map_err(pg_error)?;
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&rotation::move_lock_key(&self.shared.options.schema)],
        )
        .await
        .map_err(pg_error)?;
        let rows = tx.query(&stmt, &[&keys, &shard]).await.map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        let row = rows.first().ok_or_else(|| StoreError::Backend {
            message: "forget returned no row".to_owned(),
        })?;
        let get = |i: usize| row.try_get::<_, i64>(i).map_err(pg_error).map(rows::count);
        Ok(ForgetReport {
            queued: get(0)?,
            dead_letters: get(1)?,
            ledger: get(2)?,
        })
    }

    async fn audit_list(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::from(filter.effective_limit());
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        let fields: [(&str, Option<&(dyn ToSql + Sync)>); 5] = [
            ("time_ms >=", filter.since_ms.as_ref().map(|v| v as _)),
            ("pixel_id =", filter.pixel_id.as_ref().map(|v| v as _)),
            ("outcome =", filter.outcome.as_ref().map(|v| v as _)),
            ("rule_id =", filter.rule_id.as_ref().map(|v| v as _)),
            ("id >", filter.after_id.as_ref().map(|v| v as _)),
        ];
        for (condition, value) in fields {
            if let Some(value) = value {
                params.push(value);
                conditions.push(format!("{condition} ${}", params.len()));
            }
        }
        params.push(&limit);
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "{}{where_clause} ORDER BY id LIMIT ${}",
            self.shared.sql.audit_list_base,
            params.len()
        );
        let rows = self.query(&sql, &params).await?;
        rows.iter().map(rows::audit_entry).collect()
    }

    async fn purge_audit(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.ensure_open()?;
        let batch = self.shared.options.purge_batch_rows.max(1);
        let limit = i64::try_from(batch).unwrap_or(i64::MAX);
        let mut deleted = 0;
        loop {
            let client = self.client().await?;
            let stmt = client
                .prepare_cached(&self.shared.sql.purge_audit)
                .await
                .map_err(pg_error)?;
            let n = client
                .execute(&stmt, &[&before_ms, &limit])
                .await
                .map_err(pg_error)?;
            deleted += n;
            if n < batch as u64 {
                return Ok(deleted);
            }
        }
    }

    async fn purge_dead_letters(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.ensure_open()?;
        let batch = self.shared.options.purge_batch_rows.max(1);
        let limit = i64::try_from(batch).unwrap_or(i64::MAX);
        let mut deleted = 0;
        loop {
            let shard = self.shared.next_shard();
            let n = self
                .query_count(
                    &self.shared.sql.purge_dead_letters,
                    &[&before_ms, &limit, &shard],
                )
                .await?;
            deleted += n;
            if n < batch as u64 {
                return Ok(deleted);
            }
        }
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.shared.sql.probe)
            .await
            .map_err(pg_error)?;
        client.execute(&stmt, &[]).await.map_err(pg_error)?;
        Ok(())
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::Release);
        if let Some(maintenance) = &self.maintenance {
            maintenance.abort();
        }
        // Dropping the sender lets the writers drain what was sent, commit
        // it, answer, and stop.
        drop(
            self.requests
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take(),
        );
        let writers = std::mem::take(&mut *self.writers.lock().await);
        for writer in writers {
            writer.await.map_err(|e| StoreError::Backend {
                message: format!("a group-commit writer failed: {e}"),
            })?;
        }
        self.shared.pool.close();
        Ok(())
    }
}

/// `last_error` longer than this is cut (at a char boundary) so that a
/// verbose upstream error cannot bloat every row of a large retry backlog.
const MAX_LAST_ERROR_BYTES: usize = 2048;

fn truncate_error(message: &str) -> String {
    let mut end = message.len().min(MAX_LAST_ERROR_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_adds_session_settings_and_keeps_url_options() {
        let options = PostgresOptions::default();
        let config = connection_config(
            "postgres://u@127.0.0.1:5432/db?options=-c%20work_mem%3D8MB",
            &options,
        )
        .unwrap();
        let session = config.get_options().unwrap();
        assert!(session.starts_with("-c work_mem=8MB"), "{session}");
        assert!(session.contains("statement_timeout=30000"), "{session}");
        assert!(session.contains("synchronous_commit=on"), "{session}");
        assert!(session.contains("enable_seqscan=off"), "{session}");
        assert_eq!(config.get_application_name(), Some("sluice"));
    }

    #[test]
    fn a_missing_root_certificate_is_a_config_error() {
        let err = MakeRustls::new(Some(std::path::Path::new("/nonexistent/ca.pem")))
            .err()
            .expect("refused");
        assert_eq!(err.code(), "store_invalid_input");
    }

    #[test]
    fn bad_urls_do_not_echo_secrets() {
        let err = connection_config(
            "postgres://u:hunter2@127.0.0.1/db?sslmode=bogus",
            &PostgresOptions::default(),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn nul_characters_are_refused() {
        let event = NewEvent {
            pixel_id: "p".into(),
            event_name: "n".into(),
            event_id: "a\0b".into(),
            event_time: 0,
            source: sluice_store::EventSource::Backend,
            payload: Vec::new(),
            user_keys: Vec::new(),
            test_event_code: None,
            hold_until_ms: None,
            order_id: None,
            event_id_origin: sluice_store::EventIdOrigin::Sent,
        };
        assert_eq!(
            validate_events(&[event]).unwrap_err().code(),
            "store_invalid_input"
        );
    }

    #[test]
    fn long_errors_are_cut_at_a_char_boundary() {
        let long = "é".repeat(MAX_LAST_ERROR_BYTES);
        let cut = truncate_error(&long);
        assert!(cut.len() <= MAX_LAST_ERROR_BYTES);
        assert!(long.starts_with(&cut));
    }
}
