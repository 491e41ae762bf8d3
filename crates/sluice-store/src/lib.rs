//! sluice's durable queue: events waiting for delivery to Meta, the 48 h
//! dedup ledger, and the dead-letter queue, behind one [`Store`] trait.
//!
//! # The contract every backend keeps
//!
//! - **Durability.** When [`Store::enqueue`] returns `Ok`, the events are
//!   committed to stable storage (fsync'd): a `kill -9` or a power cut right
//!   after loses none of them. The gateway answers 2xx only after that.
//!   [`Store::enqueue_with_audit`] commits a request's consent-audit rows
//!   in the same transaction as its events: one wait, and never an event
//!   without its audit.
//! - **At-least-once delivery.** [`Store::lease`] hands events to a worker
//!   for `lease_ms`. A worker that dies simply lets its lease expire; the
//!   events then become due again, also across restarts (leases are stored
//!   as an absolute `leased_until` compared with the caller's `now_ms`).
//!   Meta deduplicates repeated deliveries on `event_id`. A process that
//!   owns an SQLite store ([`SqliteStore::claim_ownership`], as `sluice
//!   serve` does) gives back the leases of a killed predecessor at start
//!   instead of waiting them out; PostgreSQL leases always run out, since
//!   other nodes may still hold theirs.
//! - **Exclusive leases.** Two lease calls, concurrent or not, never hand
//!   out the same event while its lease is unexpired.
//! - **Deduplication.** The key `(pixel_id, event_name, event_id)` is
//!   accepted once per window ([`Store::dedup_window_ms`], 48 h by default);
//!   later copies within the window, including copies later in the same
//!   batch, come back as [`EnqueueOutcome::Duplicate`] and are not queued.
//!   The ledger records every source that sent the key. Replaying a dead
//!   letter bypasses the ledger.
//! - **Identity merge.** [`Store::merge_held`] folds a later copy of an
//!   event into the first copy while that one waits under its hold, in one
//!   transaction that no lease can interleave with; the ledger counts it as
//!   a merge, not a duplicate. [`Store::dedup_report`] shows where keys came
//!   from.
//! - **Explicit time.** Every operation that depends on time takes `now_ms`
//!   (Unix milliseconds). Backends never read a clock, so tests are
//!   deterministic and time can be moved across a 48 h window in one call.
//! - **Ordering.** `lease` returns a pixel's due events ordered by the
//!   instant they became due, then by arrival. For events enqueued without a
//!   hold and never retried (and a `now_ms` that does not go backwards),
//!   that is plain arrival order. (Strict arrival
//!   order across retried events would force a scan of every waiting retry
//!   on each lease; see `sqlite::schema`.)
//! - **No personal data in the clear.** The store sees only hashed payloads
//!   and hashed user keys. Nothing here logs a payload or puts one in an error.
//!
//! The `conformance` module (feature `conformance`) checks all of this
//! against any backend; [`SqliteStore`] is the embedded default. The crate's
//! README.md summarizes the contract and the decisions behind it.

mod error;
mod ids;
pub mod sqlite;
mod types;

#[cfg(feature = "conformance")]
pub mod conformance;

use async_trait::async_trait;

pub use error::StoreError;
pub use ids::{DeadLetterId, EventRowId, ParseIdError};
pub use sqlite::{SqliteOptions, SqliteStore, WriterStats};
pub use types::{
    AuditEntry, AuditFilter, AuditRow, DEFAULT_DEDUP_WINDOW_MS, DEFAULT_DLQ_LIMIT,
    DEFAULT_REPORT_EXAMPLES, DeadLetter, DeadLetterReason, DedupReport, DedupReportQuery,
    DedupReportRow, DlqFilter, EnqueueOutcome, EventIdConflict, EventIdOrigin, EventSource,
    ForgetReport, LeasedEvent, LedgerEntry, MAX_DLQ_LIMIT, MAX_IDS_PER_EXAMPLE, MAX_ORDER_ID_BYTES,
    MergeFn, MergeOutcome, MergeRequest, NewEvent, OrderIdConflict, ParseSourceError, PixelStats,
    PurgeReport, SourceSet, StoreStats, ledger_order_id,
};

/// The separator backends may join an event's user keys with (keys are hex
/// digests); [`check_new_events`] refuses a key that contains it.
pub const USER_KEY_SEPARATOR: char = '\u{1f}';

/// What no backend stores: an event without `pixel_id` or `event_name`
/// (they key the ledger and the lanes), or with a user key containing
/// [`USER_KEY_SEPARATOR`]. Kept minimal: the gateway validates events; a
/// backend adds only what its own storage cannot hold.
pub fn check_new_events(events: &[NewEvent]) -> Result<(), StoreError> {
    for event in events {
        if event.pixel_id.is_empty() {
            return Err(StoreError::invalid("event without pixel_id"));
        }
        if event.event_name.is_empty() {
            return Err(StoreError::invalid("event without event_name"));
        }
        if event
            .user_keys
            .iter()
            .any(|k| k.contains(USER_KEY_SEPARATOR))
        {
            return Err(StoreError::invalid(
                "a user key contains the control character U+001F",
            ));
        }
    }
    Ok(())
}

/// The durable queue. Object-safe: the server holds an `Arc<dyn Store>`.
///
/// Every method is cancel-safe in the sense that matters for durability: if
/// the caller's future is dropped after the request reached the backend, the
/// operation may still commit (so the gateway must not answer 2xx unless it
/// saw `Ok`, and a dropped `ack` may still have deleted the events).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name for logs and `/readyz` (`"sqlite"`, `"postgres"`).
    fn backend_name(&self) -> &'static str;

    /// How long a dedup key is remembered, in milliseconds.
    fn dedup_window_ms(&self) -> i64;

    /// Deduplicates and queues `events`, returning one outcome per input in
    /// input order, after the queued rows are durably committed.
    ///
    /// A key already in the ledger with `first_seen_ms + window > now_ms` is a
    /// duplicate: its ledger entry gains the source and a duplicate count,
    /// and nothing is queued. Otherwise the event is queued, due at
    /// `max(now_ms, hold_until_ms)`, and the ledger entry is (re)started at
    /// `now_ms`. Fails as a whole (nothing committed) or succeeds as a whole.
    ///
    /// The same as [`Store::enqueue_with_audit`] without audit rows.
    async fn enqueue(
        &self,
        events: Vec<NewEvent>,
        now_ms: i64,
    ) -> Result<Vec<EnqueueOutcome>, StoreError> {
        self.enqueue_with_audit(events, Vec::new(), now_ms).await
    }

    /// [`Store::append_audit`] and [`Store::enqueue`] as one write: the
    /// consent-audit rows and the events commit in the same transaction
    /// (one group-commit unit), or neither does. An `Ok` means both are
    /// durable, so the gateway acknowledges a request after a single wait,
    /// and no event is ever stored without the audit rows of its request.
    ///
    /// Either list may be empty (both empty is a no-op); the outcomes are
    /// those of `events`, as from `enqueue`. Audit rows carry their own
    /// `time_ms`; `now_ms` is the enqueue's.
    async fn enqueue_with_audit(
        &self,
        events: Vec<NewEvent>,
        audit: Vec<AuditRow>,
        now_ms: i64,
    ) -> Result<Vec<EnqueueOutcome>, StoreError>;

    /// Pixels that have at least one event deliverable at `now_ms`, sorted.
    async fn due_pixels(&self, now_ms: i64) -> Result<Vec<String>, StoreError>;

    /// Leases up to `max_events` of `pixel_id`'s events that are due at
    /// `now_ms` (not held, not waiting for a retry, not under an unexpired
    /// lease), ordered by due instant then arrival, and marks them leased
    /// until `now_ms + lease_ms`. The lease is committed before this returns.
    async fn lease(
        &self,
        pixel_id: &str,
        max_events: usize,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<LeasedEvent>, StoreError>;

    /// Marks events delivered: deletes them from the queue and counts them
    /// per pixel (`now_ms` becomes the pixel's `last_delivered_ms`). Ids no
    /// longer queued are ignored. Returns how many were deleted.
    async fn ack(&self, ids: &[EventRowId], now_ms: i64) -> Result<u64, StoreError>;

    /// Records a failed attempt: releases the lease, adds one to `attempts`,
    /// stores `last_error`, and makes the events due at `next_attempt_at_ms`.
    /// Ids no longer queued are ignored. Returns how many were updated.
    async fn retry(
        &self,
        ids: &[EventRowId],
        next_attempt_at_ms: i64,
        last_error: &str,
    ) -> Result<u64, StoreError>;

    /// Gives events back without counting an attempt (graceful shutdown,
    /// pacing, an open circuit breaker): releases the lease and makes them
    /// due at `due_at_ms`. Returns how many were updated.
    async fn release(&self, ids: &[EventRowId], due_at_ms: i64) -> Result<u64, StoreError>;

    /// Moves events from the queue to the dead-letter queue with `reason`,
    /// counting the attempt that failed. Ids no longer queued are ignored.
    /// Returns the new dead-letter ids, in the order of `ids` that were found.
    async fn dead_letter(
        &self,
        ids: &[EventRowId],
        reason: DeadLetterReason,
        now_ms: i64,
    ) -> Result<Vec<DeadLetterId>, StoreError>;

    /// Dead letters matching `filter`, ascending by id.
    async fn dlq_list(&self, filter: &DlqFilter) -> Result<Vec<DeadLetter>, StoreError>;

    /// One dead letter, if it exists.
    async fn dlq_get(&self, id: DeadLetterId) -> Result<Option<DeadLetter>, StoreError>;

    /// Moves dead letters back into the queue, due at `now_ms`, with
    /// `attempts` reset to 0 and new [`EventRowId`]s. The dedup ledger is not
    /// consulted. `test_event_code`, if given, replaces the events' own code
    /// (replay into Meta's Test Events tool first). Returns how many moved.
    async fn dlq_replay(
        &self,
        ids: &[DeadLetterId],
        test_event_code: Option<String>,
        now_ms: i64,
    ) -> Result<u64, StoreError>;

    /// Deletes dead letters. Returns how many were deleted.
    async fn dlq_delete(&self, ids: &[DeadLetterId]) -> Result<u64, StoreError>;

    /// The live ledger entry for one dedup key (`None` if absent or expired at `now_ms`).
    async fn dedup_lookup(
        &self,
        pixel_id: &str,
        event_name: &str,
        event_id: &str,
        now_ms: i64,
    ) -> Result<Option<LedgerEntry>, StoreError>;

    /// Where the live ledger's keys came from, per pixel and event name, and
    /// the suspicious ids (see [`DedupReport`]), for keys first seen at or
    /// after [`DedupReportQuery::effective_since_ms`]. Scans the live ledger:
    /// meant for `sluice dedup report` and `/admin/dedup`, not for `/metrics`.
    async fn dedup_report(
        &self,
        query: &DedupReportQuery,
        now_ms: i64,
    ) -> Result<DedupReport, StoreError>;

    /// Identity merge: folds a later copy of an event into the first copy,
    /// which waits in the queue under a hold (`NewEvent::hold_until_ms`).
    ///
    /// Finds the queued copy of the key `(pixel_id, event_name, event_id)`
    /// that came from another source than `request.source`, is still held
    /// at `now_ms` (`hold_until_ms > now_ms`) and was never leased. If there
    /// is one, `merge` gets its payload; when it returns a payload, in one
    /// transaction the copy gets that payload and `request.user_keys`, is
    /// released (due at `now_ms`), and its ledger entry gains
    /// `request.source`, one `merged` and the order id if it had none.
    /// Otherwise nothing changes and the caller treats its copy as usual
    /// (within the dedup window, a duplicate).
    ///
    /// Race-free against leases: a held copy is not leasable before its hold
    /// ends, a copy leased by another node (whose clock ran past the hold) is
    /// not merged into, and the check and the update commit together.
    async fn merge_held(
        &self,
        request: MergeRequest,
        merge: MergeFn,
        now_ms: i64,
    ) -> Result<MergeOutcome, StoreError>;

    /// Counters for `/metrics`. Cost is independent of the backlog size
    /// (bounded by the number of pixels, leased and held events).
    async fn stats(&self, now_ms: i64) -> Result<StoreStats, StoreError>;

    /// Deletes dedup-ledger entries expired at `now_ms`, in bounded batches
    /// so that other writers are never blocked for long.
    async fn purge(&self, now_ms: i64) -> Result<PurgeReport, StoreError>;

    /// Deletes every queued event and dead letter carrying any of
    /// `user_keys`, and the ledger entries of those events. Events already
    /// under lease are deleted too; a worker may still deliver its copy.
    async fn forget(&self, user_keys: &[String]) -> Result<ForgetReport, StoreError>;

    /// Appends consent-audit rows; committed durably before it returns (the
    /// gateway writes the decisions of a request before acknowledging it).
    /// The same as [`Store::enqueue_with_audit`] without events.
    async fn append_audit(&self, rows: Vec<AuditRow>, now_ms: i64) -> Result<(), StoreError> {
        self.enqueue_with_audit(Vec::new(), rows, now_ms)
            .await
            .map(|_| ())
    }

    /// Audit rows matching `filter`, ascending by id.
    async fn audit_list(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError>;

    /// Deletes audit rows older than `before_ms`, in bounded batches (the
    /// retention purge). Returns how many were deleted.
    async fn purge_audit(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// Deletes dead letters moved to the dead-letter queue before
    /// `before_ms`, in bounded batches (the retention purge,
    /// `store.dlq_retention_days`), like [`Store::dlq_delete`]: their user
    /// keys go with them and the per-pixel dead-letter counts follow.
    /// Returns how many were deleted.
    async fn purge_dead_letters(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// Proves that a write can be committed now (for `/readyz`).
    async fn check_writable(&self) -> Result<(), StoreError>;

    /// Finishes and commits the writes already submitted, then stops
    /// accepting new ones (they fail with [`StoreError::Closed`]); for a
    /// graceful shutdown. Idempotent. Dropping the store without `close` is
    /// still safe: nothing acknowledged is lost either way.
    async fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
