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
//! - A command that fails does not sink the others. The batch is first
//!   applied without savepoints (they cost the writer about a third of its
//!   CPU, see `run_writer`); if a command fails, that attempt is rolled
//!   back and the same commands are applied again, each under its own
//!   `SAVEPOINT`. The failing one is rolled back to its savepoint and
//!   answered with its error; the rest of the batch still commits.
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
        /// The queue scan taken on a read connection just before.
        scan: ops::QueueKeyScan,
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
    /// Batches replayed under savepoints after a command failed.
    pub(crate) replays: AtomicU64,
}

/// A command's result, held until the commit decides whether it stands.
enum Done {
    Enqueued(Vec<EnqueueOutcome>),
    Leased(Vec<LeasedEvent>),
    Count(u64),
    DeadLettered(Vec<DeadLetterId>),
    Forgot(ForgetReport),
    Merged(MergeOutcome),
    Unit,
}

/// The result of one command inside the open transaction.
type Outcome = Result<Done, StoreError>;

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

    /// Applies the command inside the open transaction. It borrows the
    /// command, so a batch can be applied a second time (see
    /// [`replay_under_savepoints`]).
    fn execute(&self, conn: &Connection, config: &WriterConfig) -> Outcome {
        match self {
            Command::Enqueue {
                events,
                audit,
                now_ms,
                ..
            } => {
                ops::append_audit(conn, audit)?;
                ops::enqueue(conn, events, *now_ms, config.dedup_window_ms).map(Done::Enqueued)
            }
            Command::Lease {
                pixel_id,
                max_events,
                lease_ms,
                now_ms,
                ..
            } => ops::lease(conn, pixel_id, *max_events, *lease_ms, *now_ms).map(Done::Leased),
            Command::Ack { ids, now_ms, .. } => ops::ack(conn, ids, *now_ms).map(Done::Count),
            Command::Reschedule {
                ids,
                due_at_ms,
                last_error,
                ..
            } => ops::reschedule(
                conn,
                ids,
                *due_at_ms,
                last_error.is_some(),
                last_error.as_deref(),
            )
            .map(Done::Count),
            Command::DeadLetter {
                ids,
                reason,
                now_ms,
                ..
            } => ops::dead_letter(conn, ids, reason, *now_ms).map(Done::DeadLettered),
            Command::DlqReplay {
                ids,
                test_event_code,
                now_ms,
                ..
            } => ops::dlq_replay(conn, ids, test_event_code.as_deref(), *now_ms).map(Done::Count),
            Command::DlqDelete { ids, .. } => ops::dlq_delete(conn, ids).map(Done::Count),
            Command::PurgeLedgerBatch {
                cutoff_ms, limit, ..
            } => ops::purge_ledger_batch(conn, *cutoff_ms, *limit).map(Done::Count),
            Command::PurgeAuditBatch {
                before_ms, limit, ..
            } => ops::purge_audit_batch(conn, *before_ms, *limit).map(Done::Count),
            Command::Forget {
                user_keys, scan, ..
            } => ops::forget(conn, user_keys, scan).map(Done::Forgot),
            Command::MergeHeld {
                request,
                merge,
                now_ms,
                ..
            } => ops::merge_held(conn, request, merge, *now_ms).map(Done::Merged),
            Command::Probe { .. } => ops::probe(conn).map(|()| Done::Unit),
            Command::ReleaseAllLeases { now_ms, .. } => {
                ops::release_all_leases(conn, *now_ms).map(Done::Count)
            }
            Command::Shutdown { .. } => Ok(Done::Unit),
        }
    }

    /// Sends the command's answer. `outcome` is what [`Command::execute`]
    /// returned for this same command, so its variant always matches.
    fn answer(self, outcome: Outcome) {
        // A dropped receiver means the caller went away; nothing to do.
        match self {
            Command::Enqueue { reply, .. } => send(reply, outcome, |done| match done {
                Done::Enqueued(v) => Some(v),
                _ => None,
            }),
            Command::Lease { reply, .. } => send(reply, outcome, |done| match done {
                Done::Leased(v) => Some(v),
                _ => None,
            }),
            Command::Ack { reply, .. }
            | Command::Reschedule { reply, .. }
            | Command::DlqReplay { reply, .. }
            | Command::DlqDelete { reply, .. }
            | Command::PurgeLedgerBatch { reply, .. }
            | Command::PurgeAuditBatch { reply, .. }
            | Command::ReleaseAllLeases { reply, .. } => send(reply, outcome, |done| match done {
                Done::Count(n) => Some(n),
                _ => None,
            }),
            Command::DeadLetter { reply, .. } => send(reply, outcome, |done| match done {
                Done::DeadLettered(v) => Some(v),
                _ => None,
            }),
            Command::Forget { reply, .. } => send(reply, outcome, |done| match done {
                Done::Forgot(v) => Some(v),
                _ => None,
            }),
            Command::MergeHeld { reply, .. } => send(reply, outcome, |done| match done {
                Done::Merged(v) => Some(v),
                _ => None,
            }),
            Command::Probe { reply } => send(reply, outcome, |done| match done {
                Done::Unit => Some(()),
                _ => None,
            }),
            Command::Shutdown { reply } => drop(reply.send(())),
        }
    }

    /// Answers the command with `error` without applying it.
    fn fail(self, error: StoreError) {
        self.answer(Err(error));
    }
}

/// Sends `outcome` to `reply`, taking the value out of [`Done`] with `pick`.
fn send<T>(reply: Reply<T>, outcome: Outcome, pick: impl FnOnce(Done) -> Option<T>) {
    let answer = outcome.and_then(|done| {
        pick(done).ok_or_else(|| StoreError::Backend {
            message: "store writer: a command's result does not match the command".to_owned(),
        })
    });
    let _ = reply.send(answer);
}

/// Applies `batch` a second time, each command under a savepoint of its
/// own, after the first attempt (no savepoints) hit a command that failed.
///
/// The first attempt was rolled back, so every command sees the same state
/// as before and produces the same result; a failing command is rolled back
/// to its savepoint alone and the others stay. `Err` means the transaction
/// itself is gone (it could not begin, or SQLite aborted it): then nothing
/// of the batch may be acknowledged.
fn replay_under_savepoints(
    conn: &Connection,
    config: &WriterConfig,
    batch: &[Command],
) -> Result<Vec<Outcome>, StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(sql_error)?;
    batch
        .iter()
        .map(|command| execute_under_savepoint(conn, config, command))
        .collect()
}

/// Applies one command under its own savepoint: if it fails, only its
/// changes are rolled back. The outer `Err` means the whole transaction is
/// gone.
fn execute_under_savepoint(
    conn: &Connection,
    config: &WriterConfig,
    command: &Command,
) -> Result<Outcome, StoreError> {
    execute_cached(conn, "SAVEPOINT command").map_err(sql_error)?;
    match command.execute(conn, config) {
        Ok(done) => {
            execute_cached(conn, "RELEASE command").map_err(sql_error)?;
            Ok(Ok(done))
        }
        Err(error) => {
            // SQLite rolls the whole transaction back by itself on some
            // errors (SQLITE_FULL, SQLITE_IOERR, ...): then the savepoint is
            // gone and so is every earlier command.
            if conn.is_autocommit() {
                return Err(error);
            }
            conn.execute_batch("ROLLBACK TO command; RELEASE command")
                .map_err(|_| error.clone())?;
            Ok(Err(error))
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
        let mut batch: Vec<Command> = Vec::new();
        let mut outcomes: Vec<Outcome> = Vec::new();
        // Set once a command has failed: the rest of this transaction runs
        // each command under a savepoint.
        let mut savepoints = false;
        // SQLite aborted the transaction (or the replay could not run).
        let mut lost: Option<StoreError> = None;
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        let mut next = Some(first);

        // Commands run without savepoints at first. A savepoint per command
        // makes SQLite copy the pre-image of every page each command touches
        // into the statement journal, which cost about a third of the
        // writer's CPU under single-event load (bench/RESULTS.md, "Session
        // 4"). Commands almost never fail; when one does, what was applied
        // so far is rolled back and applied again under savepoints.
        while let Some(command) = next.take() {
            if let Command::Shutdown { reply } = command {
                shutdown = Some(reply);
                break;
            }
            rows += command.weight();
            let outcome = if savepoints {
                execute_under_savepoint(&conn, &config, &command)
            } else {
                Ok(command.execute(&conn, &config))
            };
            batch.push(command);
            match outcome {
                Ok(Ok(done)) => outcomes.push(Ok(done)),
                Ok(Err(error)) if savepoints => outcomes.push(Err(error)),
                Ok(Err(error)) if !conn.is_autocommit() => {
                    // The failed command may have half-applied: undo the
                    // whole attempt and apply the same commands again.
                    tracing::debug!(
                        code = error.code(),
                        commands = batch.len(),
                        "a command failed; replaying its batch under savepoints"
                    );
                    let _ = conn.execute_batch("ROLLBACK");
                    match replay_under_savepoints(&conn, &config, &batch) {
                        Ok(replayed) => {
                            outcomes = replayed;
                            savepoints = true;
                            counters.replays.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            outcomes.clear();
                            lost = Some(error);
                            break;
                        }
                    }
                }
                Ok(Err(error)) | Err(error) => {
                    outcomes.push(Err(error.clone()));
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

        let committed = match lost {
            Some(error) => Err(error),
            None => conn.execute_batch("COMMIT").map_err(sql_error),
        };
        match &committed {
            Ok(()) => {
                counters.transactions.fetch_add(1, Ordering::Relaxed);
                let ok = outcomes.iter().filter(|o| o.is_ok()).count();
                counters.commands.fetch_add(ok as u64, Ordering::Relaxed);
                tracing::trace!(
                    commands = batch.len(),
                    rows,
                    savepoints,
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
                    commands = batch.len(),
                    "group commit failed; batch rolled back"
                );
            }
        }
        // A command keeps its own error; when the commit did not happen,
        // every other command of the batch gets the commit's error: no
        // caller ever sees `Ok` for a write that is not durable.
        let mut outcomes = outcomes.into_iter();
        for command in batch {
            let outcome = match (outcomes.next(), &committed) {
                (Some(Err(own)), _) => Err(own),
                (Some(Ok(done)), Ok(())) => Ok(done),
                (_, Err(error)) => Err(error.clone()),
                (None, Ok(())) => Err(StoreError::Backend {
                    message: "store writer: a command was not applied".to_owned(),
                }),
            };
            command.answer(outcome);
        }
        if let Some(reply) = shutdown {
            let _ = reply.send(());
            return;
        }
    }
}
