//! The single writer thread and its group commit.
//!
//! # Why one thread
//!
//! SQLite allows one writer at a time, and each durable commit costs an
//! fsync (tens of microseconds on a local NVMe disk, 0.5–2 ms on cloud
//! block storage). One commit per HTTP request would cap ingest at the
//! fsync rate. Instead every write (enqueue, lease, ack, retry, dead-letter,
//! replay, purge, forget) is a [`Command`] sent over an unbounded channel to
//! this thread, which:
//!
//! 1. blocks for the first command, opens `BEGIN IMMEDIATE`;
//! 2. applies it, then every command already waiting, and (if
//!    `group_commit_max_wait` > 0) those arriving within that window, until
//!    the batch reaches `group_commit_max_rows`;
//! 3. commits once (one fsync with `synchronous=FULL`);
//! 4. only then answers each caller's oneshot.
//!
//! While one batch is being committed the next one queues up, so the batch
//! size adapts to the load with no added latency when the load is light.
//!
//! # Failure semantics
//!
//! - Each command runs under its own `SAVEPOINT`. A command that fails is
//!   rolled back to its savepoint and answered with its error at once; the
//!   rest of the batch still commits.
//! - If SQLite aborts the whole transaction (disk full, I/O error) or the
//!   `COMMIT` fails, every command of the batch gets that error and nothing
//!   of the batch is committed. No caller ever sees `Ok` for a write that is
//!   not durable.
//! - If `BEGIN IMMEDIATE` fails (another process held the write lock past
//!   `busy_timeout`), the command and every command that was already
//!   queued when that attempt started fail at once with `store_busy`, a transient error (the gateway answers
//!   503 and the client retries), instead of each waiting out the timeout.
//! - The channel is unbounded, but every sender awaits its answer, so the
//!   backlog is bounded by the number of concurrent callers (the HTTP
//!   server's concurrency limit).
//! - When every `SqliteStore` handle is dropped, the thread drains what is
//!   queued, commits, and exits. `close` does the same and waits for it.
//! - A caller whose future is dropped still has its command applied; its
//!   answer is discarded.
//!
//! # Idle
//!
//! When no command has come for `idle_shrink_after`, the writer runs
//! `PRAGMA shrink_memory` on its connection and on the pool's idle read
//! connections, once per idle spell: the page caches fill up under load and
//! would otherwise stay allocated for as long as the process runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::read::ReadPool;
use super::{ops, sql_error};
use crate::{
    AuditRow, DeadLetterId, DeadLetterReason, EnqueueOutcome, EventRowId, ForgetReport,
    LeasedEvent, MergeFn, MergeOutcome, MergeRequest, NewEvent, StoreError,
};

/// Where a command's result goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One write request for the writer thread.
pub(crate) enum Command {
    /// `enqueue_with_audit` (and so `enqueue` and `append_audit`): the audit
    /// rows and the events under one savepoint.
    Enqueue {
        events: Vec<NewEvent>,
        audit: Vec<AuditRow>,
        now_ms: i64,
        reply: Reply<Vec<EnqueueOutcome>>,
    },
    Lease {
        pixel_id: String,
        max_events: usize,
        lease_ms: i64,
        now_ms: i64,
        reply: Reply<Vec<LeasedEvent>>,
    },
    Ack {
        ids: Vec<EventRowId>,
        now_ms: i64,
        reply: Reply<u64>,
    },
    Reschedule {
        ids: Vec<EventRowId>,
        due_at_ms: i64,
        /// `Some` for `retry` (counts an attempt), `None` for `release`.
        last_error: Option<String>,
        reply: Reply<u64>,
    },
    DeadLetter {
        ids: Vec<EventRowId>,
        reason: DeadLetterReason,
        now_ms: i64,
        reply: Reply<Vec<DeadLetterId>>,
    },
    DlqReplay {
        ids: Vec<DeadLetterId>,
        test_event_code: Option<String>,
        now_ms: i64,
        reply: Reply<u64>,
    },
    DlqDelete {
        ids: Vec<DeadLetterId>,
        reply: Reply<u64>,
    },
    PurgeLedgerBatch {
        cutoff_ms: i64,
        limit: usize,
        reply: Reply<u64>,
    },
    PurgeAuditBatch {
        before_ms: i64,
        limit: usize,
        reply: Reply<u64>,
    },
    Forget {
        user_keys: Vec<String>,
        reply: Reply<ForgetReport>,
    },
    MergeHeld {
        request: MergeRequest,
        merge: MergeFn,
        now_ms: i64,
        reply: Reply<MergeOutcome>,
    },
    Probe {
        reply: Reply<()>,
    },
    /// `SqliteStore::claim_ownership`: every lease given back.
    ReleaseAllLeases {
        now_ms: i64,
        reply: Reply<u64>,
    },
    /// Commit what is pending, answer, and stop the thread.
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Settings the writer needs.
#[derive(Debug, Clone)]
pub(crate) struct WriterConfig {
    pub(crate) dedup_window_ms: i64,
    pub(crate) group_commit_max_rows: usize,
    pub(crate) group_commit_max_wait: Duration,
    pub(crate) idle_shrink_after: Duration,
}

/// Counters the writer publishes, for tests and the operator.
#[derive(Debug, Default)]
pub(crate) struct WriterCounters {
    /// Commands handed to the writer's channel.
    pub(crate) submitted: AtomicU64,
    /// Transactions committed.
    pub(crate) transactions: AtomicU64,
    /// Commands answered with `Ok` after a commit.
    pub(crate) commands: AtomicU64,
    /// Idle spells that ended in `shrink_memory`.
    pub(crate) idle_shrinks: AtomicU64,
}

/// Sends a command's answer after the batch's commit outcome is known.
type Finish = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// What applying one command did to the open transaction.
enum Applied {
    /// Applied under its savepoint; answer after the commit.
    Pending(Finish),
    /// Failed and rolled back to its savepoint; already answered.
    Answered,
    /// Failed in a way that aborted the whole transaction; already answered.
    TransactionLost(StoreError),
}

// === impl Command ===

impl Command {
    /// How much this command counts toward `group_commit_max_rows`.
    fn weight(&self) -> usize {
        match self {
            Command::Enqueue { events, audit, .. } => events.len() + audit.len(),
            Command::Lease { max_events, .. } => *max_events,
            Command::Ack { ids, .. }
            | Command::Reschedule { ids, .. }
            | Command::DeadLetter { ids, .. } => ids.len(),
            Command::DlqReplay { ids, .. } | Command::DlqDelete { ids, .. } => ids.len(),
            Command::PurgeLedgerBatch { limit, .. } | Command::PurgeAuditBatch { limit, .. } => {
                *limit
            }
            Command::Forget { user_keys, .. } => user_keys.len(),
            Command::MergeHeld { .. }
            | Command::Probe { .. }
            | Command::ReleaseAllLeases { .. }
            | Command::Shutdown { .. } => 1,
        }
        .max(1)
    }

    /// Applies the command inside the open transaction.
    fn apply(self, conn: &Connection, config: &WriterConfig) -> Applied {
        match self {
            Command::Enqueue {
                events,
                audit,
                now_ms,
                reply,
            } => run(conn, reply, |c| {
                ops::append_audit(c, &audit)?;
                ops::enqueue(c, events, now_ms, config.dedup_window_ms)
            }),
            Command::Lease {
                pixel_id,
                max_events,
                lease_ms,
                now_ms,
                reply,
            } => run(conn, reply, |c| {
                ops::lease(c, &pixel_id, max_events, lease_ms, now_ms)
            }),
            Command::Ack { ids, now_ms, reply } => run(conn, reply, |c| ops::ack(c, &ids, now_ms)),
            Command::Reschedule {
                ids,
                due_at_ms,
                last_error,
                reply,
            } => run(conn, reply, |c| {
                ops::reschedule(
                    c,
                    &ids,
                    due_at_ms,
                    last_error.is_some(),
                    last_error.as_deref(),
                )
            }),
            Command::DeadLetter {
                ids,
                reason,
                now_ms,
                reply,
            } => run(conn, reply, |c| ops::dead_letter(c, &ids, &reason, now_ms)),
            Command::DlqReplay {
                ids,
                test_event_code,
                now_ms,
                reply,
            } => run(conn, reply, |c| {
                ops::dlq_replay(c, &ids, test_event_code.as_deref(), now_ms)
            }),
            Command::DlqDelete { ids, reply } => run(conn, reply, |c| ops::dlq_delete(c, &ids)),
            Command::PurgeLedgerBatch {
                cutoff_ms,
                limit,
                reply,
            } => run(conn, reply, |c| {
                ops::purge_ledger_batch(c, cutoff_ms, limit)
            }),
            Command::PurgeAuditBatch {
                before_ms,
                limit,
                reply,
            } => run(conn, reply, |c| ops::purge_audit_batch(c, before_ms, limit)),
            Command::Forget { user_keys, reply } => {
                run(conn, reply, |c| ops::forget(c, &user_keys))
            }
            Command::MergeHeld {
                request,
                merge,
                now_ms,
                reply,
            } => run(conn, reply, |c| ops::merge_held(c, &request, merge, now_ms)),
            Command::Probe { reply } => run(conn, reply, ops::probe),
            Command::ReleaseAllLeases { now_ms, reply } => {
                run(conn, reply, |c| ops::release_all_leases(c, now_ms))
            }
            Command::Shutdown { .. } => unreachable!("shutdown is handled by the loop"),
        }
    }

    /// Answers the command with `error` without applying it.
    fn fail(self, error: StoreError) {
        // A dropped receiver means the caller went away; nothing to do.
        match self {
            Command::Enqueue { reply, .. } => drop(reply.send(Err(error))),
            Command::Lease { reply, .. } => drop(reply.send(Err(error))),
            Command::Ack { reply, .. }
            | Command::Reschedule { reply, .. }
            | Command::DlqReplay { reply, .. }
            | Command::DlqDelete { reply, .. }
            | Command::PurgeLedgerBatch { reply, .. }
            | Command::PurgeAuditBatch { reply, .. }
            | Command::ReleaseAllLeases { reply, .. } => drop(reply.send(Err(error))),
            Command::DeadLetter { reply, .. } => drop(reply.send(Err(error))),
            Command::Forget { reply, .. } => drop(reply.send(Err(error))),
            Command::MergeHeld { reply, .. } => drop(reply.send(Err(error))),
            Command::Probe { reply } => drop(reply.send(Err(error))),
            Command::Shutdown { reply } => drop(reply.send(())),
        }
    }
}

/// Runs `op` under a savepoint and turns the outcome into [`Applied`].
fn run<T, F>(conn: &Connection, reply: Reply<T>, op: F) -> Applied
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError>,
{
    if let Err(e) = execute_cached(conn, "SAVEPOINT command") {
        let error = sql_error(e);
        let _ = reply.send(Err(error.clone()));
        return Applied::TransactionLost(error);
    }
    match op(conn) {
        Ok(value) => {
            if let Err(e) = execute_cached(conn, "RELEASE command") {
                let error = sql_error(e);
                let _ = reply.send(Err(error.clone()));
                return Applied::TransactionLost(error);
            }
            Applied::Pending(Box::new(move |commit_error: Option<&StoreError>| {
                let _ = reply.send(match commit_error {
                    None => Ok(value),
                    Some(error) => Err(error.clone()),
                });
            }))
        }
        Err(error) => {
            let _ = reply.send(Err(error.clone()));
            // SQLite rolls the whole transaction back by itself on some
            // errors (SQLITE_FULL, SQLITE_IOERR, ...): then the savepoint is
            // gone and so is every earlier command of the batch.
            if conn.is_autocommit() {
                return Applied::TransactionLost(error);
            }
            match conn.execute_batch("ROLLBACK TO command; RELEASE command") {
                Ok(()) => Applied::Answered,
                Err(_) => Applied::TransactionLost(error),
            }
        }
    }
}

/// The writer's end of the channel, counting what it has taken out (to
/// compare with `WriterCounters::submitted`).
struct Inbox {
    commands: Receiver<Command>,
    received: u64,
}

// === impl Inbox ===

impl Inbox {
    fn recv(&mut self) -> Option<Command> {
        let command = self.commands.recv().ok()?;
        self.received += 1;
        Some(command)
    }

    fn try_recv(&mut self) -> Result<Command, TryRecvError> {
        let command = self.commands.try_recv()?;
        self.received += 1;
        Ok(command)
    }

    /// `None` on timeout or disconnection: either way, commit what we have.
    fn recv_timeout(&mut self, timeout: Duration) -> Option<Command> {
        self.wait(timeout).ok()
    }

    /// The next command, or why there is none within `timeout`.
    fn wait(&mut self, timeout: Duration) -> Result<Command, RecvTimeoutError> {
        let command = self.commands.recv_timeout(timeout)?;
        self.received += 1;
        Ok(command)
    }

    /// The next command; after `idle_after` without one, first gives the
    /// page caches back (once: then it waits without a timeout). `None`
    /// when every sender is gone.
    fn next_or_shrink(
        &mut self,
        idle_after: Duration,
        shrunk: &mut bool,
        conn: &Connection,
        reads: &ReadPool,
        counters: &WriterCounters,
    ) -> Option<Command> {
        if !*shrunk {
            match self.wait(idle_after) {
                Ok(command) => return Some(command),
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => {
                    shrink(conn, reads);
                    counters.idle_shrinks.fetch_add(1, Ordering::Relaxed);
                    *shrunk = true;
                }
            }
        }
        self.recv()
    }
}

/// `PRAGMA shrink_memory` on the writer's connection and the idle readers.
/// Failing to shrink costs memory, not correctness: logged and ignored.
fn shrink(conn: &Connection, reads: &ReadPool) {
    if let Err(error) = conn.execute_batch("PRAGMA shrink_memory") {
        tracing::debug!(%error, "shrink_memory failed on the writer");
    }
    let readers = reads.shrink_idle();
    tracing::trace!(readers, "idle: page caches given back");
}

/// Runs a parameterless statement through the statement cache: the
/// savepoint pair runs for every command, so it should not be re-parsed.
fn execute_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// The writer thread's body. Returns when every sender is gone or a
/// `Shutdown` command has been answered.
pub(crate) fn run_writer(
    conn: Connection,
    commands: Receiver<Command>,
    config: WriterConfig,
    counters: Arc<WriterCounters>,
    reads: &ReadPool,
) {
    let max_rows = config.group_commit_max_rows.max(1);
    let mut inbox = Inbox {
        commands,
        received: 0,
    };
    // Nothing to give back before the first command.
    let mut shrunk = true;
    while let Some(first) = inbox.next_or_shrink(
        config.idle_shrink_after,
        &mut shrunk,
        &conn,
        reads,
        &counters,
    ) {
        shrunk = false;
        if let Command::Shutdown { reply } = first {
            let _ = reply.send(());
            return;
        }
        let sent_before_begin = counters.submitted.load(Ordering::Acquire);
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Typically another process held the lock past the busy
            // timeout. The commands that were already queued when this
            // attempt started have waited as long: fail them now too,
            // instead of letting each wait out its own timeout in turn.
            // Later arrivals get a fresh attempt.
            let error = sql_error(e);
            tracing::warn!(code = error.code(), error = %error, "cannot begin a write transaction");
            first.fail(error.clone());
            while inbox.received < sent_before_begin {
                match inbox.try_recv() {
                    Ok(Command::Shutdown { reply }) => {
                        let _ = reply.send(());
                        return;
                    }
                    Ok(waiting) => waiting.fail(error.clone()),
                    Err(_) => break,
                }
            }
            continue;
        }

        let started = Instant::now();
        let deadline = started + config.group_commit_max_wait;
        let mut rows = 0usize;
        let mut pending: Vec<Finish> = Vec::new();
        let mut lost: Option<StoreError> = None;
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        let mut next = Some(first);

        while let Some(command) = next.take() {
            if let Command::Shutdown { reply } = command {
                shutdown = Some(reply);
                break;
            }
            rows += command.weight();
            match command.apply(&conn, &config) {
                Applied::Pending(finish) => pending.push(finish),
                Applied::Answered => {}
                Applied::TransactionLost(error) => {
                    lost = Some(error);
                    break;
                }
            }
            if rows >= max_rows {
                break;
            }
            next = match inbox.try_recv() {
                Ok(command) => Some(command),
                Err(TryRecvError::Disconnected) => None,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        None
                    } else {
                        inbox.recv_timeout(deadline - now)
                    }
                }
            };
        }

        let outcome = match lost {
            Some(error) => Err(error),
            None => conn.execute_batch("COMMIT").map_err(sql_error),
        };
        match &outcome {
            Ok(()) => {
                counters.transactions.fetch_add(1, Ordering::Relaxed);
                counters
                    .commands
                    .fetch_add(pending.len() as u64, Ordering::Relaxed);
                tracing::trace!(
                    commands = pending.len(),
                    rows,
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "group commit"
                );
            }
            Err(error) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                tracing::warn!(
                    code = error.code(),
                    error = %error,
                    commands = pending.len(),
                    "group commit failed; batch rolled back"
                );
            }
        }
        let commit_error = outcome.err();
        for finish in pending {
            finish(commit_error.as_ref());
        }
        if let Some(reply) = shutdown {
            let _ = reply.send(());
            return;
        }
    }
}
