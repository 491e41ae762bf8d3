//! The embedded SQLite backend: one file, WAL, group commit.
//!
//! # Layout
//!
//! - `schema`: the on-disk format and its migration (`PRAGMA user_version`).
//! - `writer`: the one thread that owns the write connection and commits
//!   many callers' writes per transaction (group commit).
//! - `ops`: the write operations the writer runs.
//! - `read`: read-only queries on a small connection pool.
//!
//! # Durability
//!
//! The database runs in WAL mode with `synchronous=FULL` by default: every
//! commit fsyncs the WAL before the writer answers, so an `Ok` from
//! `enqueue` survives `kill -9` and power loss. `synchronous_full: false`
//! selects `NORMAL`, which survives a process crash but may lose the last
//! commits on power loss (the same trade Vector's disk buffer makes); it is
//! for operators who choose it explicitly.
//!
//! Other processes may open the same file (e.g. `sluice dlq replay` while
//! `sluice serve` runs): SQLite's file lock serializes their writers, and
//! each side waits up to `busy_timeout` for the other.
//!
//! # Ownership and leases
//!
//! One process delivers from the file: `sluice serve`, which claims it with
//! [`SqliteStore::claim_ownership`] (an advisory lock on `<file>-owner`).
//! Since no other process can then hold a running lease, the claim gives
//! back every lease left in the file, so the events a `kill -9`'d
//! predecessor had leased are due again at once, not after `lease_ms`.

mod ops;
mod read;
mod schema;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode};
use tokio::sync::oneshot;

use self::read::ReadPool;
use self::writer::{Command, WriterConfig, WriterCounters};
use crate::{
    AuditRow, DEFAULT_DEDUP_WINDOW_MS, DeadLetter, DeadLetterId, DeadLetterReason, DedupReport,
    DedupReportQuery, DlqFilter, EnqueueOutcome, EventRowId, EventSource, ForgetReport,
    LeasedEvent, LedgerEntry, MergeFn, MergeOutcome, MergeRequest, NewEvent, PurgeReport, Store,
    StoreError, StoreStats,
};

/// Page cache of the writer connection, in KiB.
///
/// It fills up under load and is kept, so it sets most of the process's
/// memory: with 64 MiB, `sluice serve` peaked at 116–141 MiB and idled at
/// 100 MiB after a load test; with 8 MiB at 57–63 MiB and ~40 MiB, with no
/// measurable change in ingest or delivery rate (bench/RESULTS.md, gateway
/// section). A page the writer misses is read from the OS page cache, not the
/// disk, and at a 48 h ledger of millions of keys no cache of either size
/// holds the random index pages anyway.
const WRITER_CACHE_KIB: i64 = 8 * 1024;

/// Page cache of each read connection, in KiB.
///
/// The reads are index seeks and short keyset pages (`stats`, `due_pixels`,
/// `dlq_list`); SQLite's default (2 MiB each, up to `read_connections` of
/// them) only kept pages the OS caches anyway. 1 MiB holds far more than one
/// of those queries touches.
const READER_CACHE_KIB: i64 = 1024;

/// Default for [`SqliteOptions::group_commit_max_rows`].
pub const DEFAULT_GROUP_COMMIT_MAX_ROWS: usize = 5_000;
/// Default for [`SqliteOptions::purge_batch_rows`].
pub const DEFAULT_PURGE_BATCH_ROWS: usize = 10_000;
/// Default for [`SqliteOptions::busy_timeout`].
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for [`SqliteOptions::read_connections`].
pub const DEFAULT_READ_CONNECTIONS: usize = 4;
/// Default for [`SqliteOptions::idle_shrink_after`].
pub const DEFAULT_IDLE_SHRINK_AFTER: Duration = Duration::from_secs(5);
/// Default for [`SqliteOptions::wal_checkpoint_bytes`]: 40 MiB of WAL.
pub const DEFAULT_WAL_CHECKPOINT_BYTES: u64 = 40 * 1024 * 1024;
/// Default for [`SqliteOptions::page_size`].
pub const DEFAULT_PAGE_SIZE: u32 = 8192;

/// How to open an [`SqliteStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// `synchronous=FULL` (durable across power loss; the default) instead
    /// of `NORMAL` (durable across process crashes only).
    pub synchronous_full: bool,
    /// Stop adding commands to a transaction once it holds this many rows
    /// (events enqueued, events leased, ids acked...). Bounds the latency of
    /// one commit and the size of one WAL append.
    pub group_commit_max_rows: usize,
    /// After draining what is queued, wait up to this long for more before
    /// committing. Zero (the default) commits at once: batches still form
    /// naturally while the previous commit's fsync runs, so under load they
    /// grow and under light load nobody waits. A few ms trades latency for
    /// fewer fsyncs on disks where fsync is cheap but IOPS are metered.
    pub group_commit_max_wait: Duration,
    /// How long a dedup key is remembered (48 h, like Meta's own window).
    pub dedup_window_ms: i64,
    /// Ledger rows deleted per purge statement: each is its own small
    /// command, so enqueues interleave with a large purge.
    pub purge_batch_rows: usize,
    /// Read connections kept open between reads.
    pub read_connections: usize,
    /// How long to wait for another process's write lock.
    pub busy_timeout: Duration,
    /// Once no write has come for this long, the writer and the idle read
    /// connections give their page caches back (`PRAGMA shrink_memory`), so
    /// a gateway idles near its start-up size after a burst or a backlog.
    /// The next query reads its pages again from the OS page cache.
    pub idle_shrink_after: Duration,
    /// The writer checkpoints the WAL into the database once it holds about
    /// this many bytes (SQLite's `wal_autocheckpoint`, in pages of the file;
    /// SQLite's own default is 1000 pages). The same hot pages (the queue's
    /// tail, its indexes' tails, the counters) are written to the WAL by
    /// nearly every commit but copied to the database once per checkpoint,
    /// so a longer interval writes less: 40 MiB instead of 4 MiB cut the
    /// bytes written per event by ~20 % and the writer's CPU by ~15 %
    /// (bench/RESULTS.md, "Session 4").
    pub wal_checkpoint_bytes: u64,
    /// The page size of a new store file (an existing file keeps its own).
    /// An event row with a full set of hashed identifiers is ~2.3 KB, just
    /// over half a 4 KiB page, so at 4 KiB every row took a page of its
    /// own; 8 KiB pages hold three. Against 4 KiB: half the write syscalls,
    /// ~7 % fewer bytes written and ~15-30 % less writer CPU per event
    /// (bench/RESULTS.md, "Session 4").
    pub page_size: u32,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous_full: true,
            group_commit_max_rows: DEFAULT_GROUP_COMMIT_MAX_ROWS,
            group_commit_max_wait: Duration::ZERO,
            dedup_window_ms: DEFAULT_DEDUP_WINDOW_MS,
            purge_batch_rows: DEFAULT_PURGE_BATCH_ROWS,
            read_connections: DEFAULT_READ_CONNECTIONS,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            idle_shrink_after: DEFAULT_IDLE_SHRINK_AFTER,
            wal_checkpoint_bytes: DEFAULT_WAL_CHECKPOINT_BYTES,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// The embedded store: one SQLite file, one writer thread, pooled readers.
///
/// Cheap to share behind an `Arc`. Dropping the last handle lets the writer
/// finish what is queued and exit; [`SqliteStore::close`] does the same and
/// waits for it.
pub struct SqliteStore {
    path: PathBuf,
    options: SqliteOptions,
    commands: mpsc::Sender<Command>,
    reads: Arc<ReadPool>,
    counters: Arc<WriterCounters>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The locked `-owner` file, once `claim_ownership` succeeded.
    owner: Mutex<Option<std::fs::File>>,
}

/// Counters of the writer thread, see [`SqliteStore::writer_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Write commands sent to the writer since open; `submitted - commands`
    /// is roughly the writer's backlog (failed commands aside).
    pub submitted: u64,
    /// Transactions committed since open. With group commit this grows much
    /// slower than `commands` under concurrent load.
    pub transactions: u64,
    /// Write commands committed since open.
    pub commands: u64,
    /// Times the writer found itself idle for
    /// [`SqliteOptions::idle_shrink_after`] and gave the page caches back.
    pub idle_shrinks: u64,
    /// Batches applied a second time under savepoints because a command in
    /// them failed (see the writer's failure semantics).
    pub replays: u64,
}

// === impl SqliteStore ===

impl SqliteStore {
    /// Opens (creating if needed, with parent directories) the store at
    /// `path`, migrates its schema, and starts the writer thread.
    pub async fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        if options.dedup_window_ms <= 0 {
            return Err(StoreError::invalid("dedup_window_ms must be positive"));
        }
        let path = path.as_ref().to_path_buf();
        let (commands_tx, commands_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let counters = Arc::new(WriterCounters::default());
        let reads = Arc::new(ReadPool::new(
            path.clone(),
            options.busy_timeout,
            options.read_connections,
        ));

        let thread_path = path.clone();
        let thread_options = options.clone();
        let thread_counters = Arc::clone(&counters);
        let thread_reads = Arc::clone(&reads);
        let handle = std::thread::Builder::new()
            .name("sluice-store-writer".to_owned())
            .spawn(move || {
                let conn = match open_writer(&thread_path, &thread_options) {
                    Ok(conn) => conn,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return;
                    }
                };
                if ready_tx.send(Ok(())).is_err() {
                    return;
                }
                let config = WriterConfig {
                    dedup_window_ms: thread_options.dedup_window_ms,
                    group_commit_max_rows: thread_options.group_commit_max_rows,
                    group_commit_max_wait: thread_options.group_commit_max_wait,
                    idle_shrink_after: thread_options.idle_shrink_after,
                };
                writer::run_writer(conn, commands_rx, config, thread_counters, &thread_reads);
            })
            .map_err(|e| StoreError::Io {
                message: format!("cannot start the writer thread: {e}"),
            })?;

        ready_rx.await.map_err(|_| StoreError::Closed)??;
        tracing::debug!(path = %path.display(), "opened sqlite store");
        Ok(SqliteStore {
            reads,
            path,
            options,
            commands: commands_tx,
            counters,
            writer: Mutex::new(Some(handle)),
            owner: Mutex::new(None),
        })
    }

    /// Claims the store for this process and gives back every lease: for
    /// the one long-running process that delivers from this file
    /// (`sluice serve`), right after it opened the store.
    ///
    /// A process killed with `kill -9` leaves its leases behind, and
    /// without this its events would wait out the rest of their lease
    /// (`delivery.lease_ms`, 120 s by default) after a restart. Owning the
    /// file means no other process can hold a running lease on it, so every
    /// leased event becomes due at once (due at its arrival, without
    /// counting an attempt). Delivery stays at-least-once: a batch the dead
    /// process had sent is sent again, and Meta deduplicates on `event_id`.
    ///
    /// Ownership is an exclusive advisory lock on `<file>-owner`, held until
    /// the store is dropped (the kernel drops it when the process dies). If
    /// another process (or another store in this one) holds it, nothing is
    /// released and this returns `Ok(None)`: that owner's leases may be
    /// running. Other processes opening the file without claiming it (the
    /// CLI's `dlq`, `forget`, ...) are unaffected either way. Returns how
    /// many leases were given back.
    pub async fn claim_ownership(&self, now_ms: i64) -> Result<Option<u64>, StoreError> {
        {
            let mut owner = self
                .owner
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if owner.is_none() {
                let mut name = self.path.clone().into_os_string();
                name.push("-owner");
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&name)
                    .map_err(|e| StoreError::Io {
                        message: format!("cannot open {}: {e}", Path::new(&name).display()),
                    })?;
                match file.try_lock() {
                    Ok(()) => *owner = Some(file),
                    Err(std::fs::TryLockError::WouldBlock) => {
                        tracing::warn!(
                            path = %self.path.display(),
                            "another process owns this store; its leases are left to expire"
                        );
                        return Ok(None);
                    }
                    Err(std::fs::TryLockError::Error(e)) => {
                        return Err(StoreError::Io {
                            message: format!("cannot lock {}: {e}", Path::new(&name).display()),
                        });
                    }
                }
            }
        }
        let released = self
            .write(|reply| Command::ReleaseAllLeases { now_ms, reply })
            .await?;
        if released > 0 {
            tracing::info!(released, "gave back the leases of the previous run");
        }
        Ok(Some(released))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &SqliteOptions {
        &self.options
    }

    /// How many transactions and commands the writer has committed.
    pub fn writer_stats(&self) -> WriterStats {
        WriterStats {
            submitted: self.counters.submitted.load(Ordering::Relaxed),
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            commands: self.counters.commands.load(Ordering::Relaxed),
            idle_shrinks: self.counters.idle_shrinks.load(Ordering::Relaxed),
            replays: self.counters.replays.load(Ordering::Relaxed),
        }
    }

    /// Sends a command to the writer and waits for its answer.
    async fn write<T>(
        &self,
        make: impl FnOnce(writer::Reply<T>) -> Command,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .map_err(|_| StoreError::Closed)?;
        self.counters.submitted.fetch_add(1, Ordering::Release);
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs a read query on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reads = Arc::clone(&self.reads);
        tokio::task::spawn_blocking(move || reads.with(query))
            .await
            .map_err(|e| StoreError::Backend {
                message: format!("read task failed: {e}"),
            })?
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    fn dedup_window_ms(&self) -> i64 {
        self.options.dedup_window_ms
    }

    async fn enqueue_with_audit(
        &self,
        events: Vec<NewEvent>,
        audit: Vec<AuditRow>,
        now_ms: i64,
    ) -> Result<Vec<EnqueueOutcome>, StoreError> {
        if events.is_empty() && audit.is_empty() {
            return Ok(Vec::new());
        }
        crate::check_new_events(&events)?;
        self.write(|reply| Command::Enqueue {
            events,
            audit,
            now_ms,
            reply,
        })
        .await
    }

    async fn due_pixels(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        self.read(move |conn| read::due_pixels(conn, now_ms)).await
    }

    async fn lease(
        &self,
        pixel_id: &str,
        max_events: usize,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<LeasedEvent>, StoreError> {
        if lease_ms <= 0 {
            return Err(StoreError::invalid("lease_ms must be positive"));
        }
        if max_events == 0 {
            return Ok(Vec::new());
        }
        let pixel_id = pixel_id.to_owned();
        self.write(|reply| Command::Lease {
            pixel_id,
            max_events,
            lease_ms,
            now_ms,
            reply,
        })
        .await
    }

    async fn ack(&self, ids: &[EventRowId], now_ms: i64) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = ids.to_vec();
        self.write(|reply| Command::Ack { ids, now_ms, reply })
            .await
    }

    async fn retry(
        &self,
        ids: &[EventRowId],
        next_attempt_at_ms: i64,
        last_error: &str,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = ids.to_vec();
        let last_error = Some(last_error.to_owned());
        self.write(|reply| Command::Reschedule {
            ids,
            due_at_ms: next_attempt_at_ms,
            last_error,
            reply,
        })
        .await
    }

    async fn release(&self, ids: &[EventRowId], due_at_ms: i64) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = ids.to_vec();
        self.write(|reply| Command::Reschedule {
            ids,
            due_at_ms,
            last_error: None,
            reply,
        })
        .await
    }

    async fn dead_letter(
        &self,
        ids: &[EventRowId],
        reason: DeadLetterReason,
        now_ms: i64,
    ) -> Result<Vec<DeadLetterId>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        self.write(|reply| Command::DeadLetter {
            ids,
            reason,
            now_ms,
            reply,
        })
        .await
    }

    async fn dlq_list(&self, filter: &DlqFilter) -> Result<Vec<DeadLetter>, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| read::dlq_list(conn, &filter)).await
    }

    async fn dlq_get(&self, id: DeadLetterId) -> Result<Option<DeadLetter>, StoreError> {
        self.read(move |conn| read::dlq_get(conn, id)).await
    }

    async fn dlq_replay(
        &self,
        ids: &[DeadLetterId],
        test_event_code: Option<String>,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = ids.to_vec();
        self.write(|reply| Command::DlqReplay {
            ids,
            test_event_code,
            now_ms,
            reply,
        })
        .await
    }

    async fn dlq_delete(&self, ids: &[DeadLetterId]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = ids.to_vec();
        self.write(|reply| Command::DlqDelete { ids, reply }).await
    }

    async fn dedup_lookup(
        &self,
        pixel_id: &str,
        event_name: &str,
        event_id: &str,
        now_ms: i64,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        let key = (
            pixel_id.to_owned(),
            event_name.to_owned(),
            event_id.to_owned(),
        );
        let live_after_ms = now_ms.saturating_sub(self.options.dedup_window_ms);
        self.read(move |conn| read::dedup_lookup(conn, (&key.0, &key.1, &key.2), live_after_ms))
            .await
    }

    async fn dedup_report(
        &self,
        query: &DedupReportQuery,
        now_ms: i64,
    ) -> Result<DedupReport, StoreError> {
        let query = query.clone();
        let window_ms = self.options.dedup_window_ms;
        self.read(move |conn| read::dedup_report(conn, &query, now_ms, window_ms))
            .await
    }

    async fn merge_held(
        &self,
        request: MergeRequest,
        merge: MergeFn,
        now_ms: i64,
    ) -> Result<MergeOutcome, StoreError> {
        if request.event_id.is_empty() {
            return Ok(MergeOutcome::NotMerged);
        }
        self.write(|reply| Command::MergeHeld {
            request,
            merge,
            now_ms,
            reply,
        })
        .await
    }

    async fn stats(&self, now_ms: i64) -> Result<StoreStats, StoreError> {
        self.read(move |conn| read::stats(conn, now_ms)).await
    }

    async fn purge(&self, now_ms: i64) -> Result<PurgeReport, StoreError> {
        let cutoff_ms = now_ms.saturating_sub(self.options.dedup_window_ms);
        let limit = self.options.purge_batch_rows.max(1);
        let mut report = PurgeReport::default();
        loop {
            let deleted = self
                .write(|reply| Command::PurgeLedgerBatch {
                    cutoff_ms,
                    limit,
                    reply,
                })
                .await?;
            report.batches += 1;
            report.ledger += deleted;
            if deleted < limit as u64 {
                return Ok(report);
            }
        }
    }

    async fn forget(&self, user_keys: &[String]) -> Result<ForgetReport, StoreError> {
        if user_keys.is_empty() {
            return Ok(ForgetReport::default());
        }
        let user_keys = user_keys.to_vec();
        // Walk the queue on a reader, beside the writer: a backlog may hold
        // millions of events, and ingest waits on the writer. The writer
        // then checks only what changed since this snapshot.
        let scan_keys = user_keys.clone();
        let scan = self
            .read(move |conn| read::queue_key_scan(conn, &scan_keys))
            .await?;
        self.write(|reply| Command::Forget {
            user_keys,
            scan,
            reply,
        })
        .await
    }

    async fn audit_list(
        &self,
        filter: &crate::AuditFilter,
    ) -> Result<Vec<crate::AuditEntry>, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| read::audit_list(conn, &filter)).await
    }

    async fn purge_audit(&self, before_ms: i64) -> Result<u64, StoreError> {
        let limit = self.options.purge_batch_rows.max(1);
        let mut total = 0;
        loop {
            let deleted = self
                .write(|reply| Command::PurgeAuditBatch {
                    before_ms,
                    limit,
                    reply,
                })
                .await?;
            total += deleted;
            if deleted < limit as u64 {
                return Ok(total);
            }
        }
    }

    async fn purge_dead_letters(&self, before_ms: i64) -> Result<u64, StoreError> {
        // Picked on a reader, deleted by the writer's `dlq_delete` (user
        // keys and per-pixel counts included). An entry replayed or deleted
        // in between is skipped; every round deletes what it picked, so the
        // loop ends.
        let limit = self.options.purge_batch_rows.max(1);
        let mut total = 0;
        loop {
            let ids = self
                .read(move |conn| read::dead_letters_before(conn, before_ms, limit))
                .await?;
            if ids.is_empty() {
                return Ok(total);
            }
            let picked = ids.len();
            total += self
                .write(|reply| Command::DlqDelete { ids, reply })
                .await?;
            if picked < limit {
                return Ok(total);
            }
        }
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.write(|reply| Command::Probe { reply }).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(handle) = handle else {
            return Ok(());
        };
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Shutdown { reply }).is_ok() {
            let _ = done.await;
        }
        tokio::task::spawn_blocking(move || handle.join())
            .await
            .map_err(|e| StoreError::Backend {
                message: format!("joining the writer failed: {e}"),
            })?
            .map_err(|_| StoreError::Backend {
                message: "the writer thread panicked".to_owned(),
            })
    }
}

/// Opens and configures the write connection, then migrates the schema.
fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| StoreError::Io {
            message: format!("cannot create {}: {e}", parent.display()),
        })?;
    }
    let mut conn = Connection::open(path).map_err(sql_error)?;
    conn.busy_timeout(options.busy_timeout).map_err(sql_error)?;
    // Only takes effect on a new, empty file: before WAL mode writes the
    // header. An existing store keeps the page size it was created with.
    conn.pragma_update(None, "page_size", options.page_size)
        .map_err(sql_error)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sql_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend {
            message: format!("cannot enable WAL mode (journal_mode is {mode})"),
        });
    }
    let synchronous = if options.synchronous_full {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(sql_error)?;
    let page_size: u64 = conn
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .map_err(sql_error)?;
    let checkpoint_pages = (options.wal_checkpoint_bytes / page_size.max(512)).max(1);
    conn.pragma_update(None, "wal_autocheckpoint", checkpoint_pages)
        .map_err(sql_error)?;
    // Keep the WAL from staying huge after a burst once it is checkpointed
    // (the limit is above what `wal_autocheckpoint` lets it reach).
    let wal_limit = options.wal_checkpoint_bytes.max(64 * 1024 * 1024);
    conn.pragma_update(None, "journal_size_limit", wal_limit)
        .map_err(sql_error)?;
    // A savepoint (the writer's replay after a failed command) or a
    // multi-row statement makes SQLite keep the pre-image of each page it
    // changes in a statement journal. With temp_store=MEMORY that journal
    // lived on the heap in 1 KiB chunks: acking 1000 events under a
    // savepoint took up to ~19 MiB at once (heaptrack, bench/RESULTS.md
    // "Session 3: memory"). FILE keeps the first 64 KiB in memory and spills
    // the rest to an unlinked temp file, which lives in the OS page cache and
    // is never fsynced.
    conn.pragma_update(None, "temp_store", "FILE")
        .map_err(sql_error)?;
    // `forget` must not leave a person's hashes in free pages of the file.
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(sql_error)?;
    // The writer touches random pages of the user-key and ledger indexes on
    // every enqueue; SQLite's default 2 MiB page cache makes each of those a
    // read from the OS. Negative = KiB.
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .map_err(sql_error)?;
    conn.set_prepared_statement_cache_capacity(64);
    schema::migrate(&mut conn)?;
    Ok(conn)
}

/// Maps a SQLite error onto [`StoreError`]. The message is SQLite's own,
/// which names tables and constraints, never bound values.
pub(crate) fn sql_error(error: rusqlite::Error) -> StoreError {
    let message = error.to_string();
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy { message },
        Some(ErrorCode::DiskFull) => StoreError::Full { message },
        Some(ErrorCode::ReadOnly) => StoreError::ReadOnly { message },
        Some(ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => StoreError::Io { message },
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            StoreError::Corrupt { message }
        }
        _ => match error {
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt { message },
            _ => StoreError::Backend { message },
        },
    }
}

impl ToSql for EventSource {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for EventSource {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}
