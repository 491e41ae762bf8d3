//! Queue rotation: inserts go to one of [`QUEUE_PARTS`] partitions at a
//! time, and a partition that has drained is `TRUNCATE`d, so the queue's
//! dead rows never wait for a vacuum.
//!
//! # Why
//!
//! Every queued event is inserted, updated by its lease and deleted by its
//! ack. Without vacuum, none of that space comes back: in a 30-minute soak
//! on a server with autovacuum off, the queue grew to 38.7 GB and the lease
//! scans, stepping over millions of dead index entries, fell behind ingest
//! after 13 minutes. Vacuuming a table that size cannot keep up. `TRUNCATE`
//! of a drained partition gives all its space back at once, at no cost that
//! grows with the rows, and needs no vacuum at all.
//!
//! # How
//!
//! `store_meta` holds the current partition (`queue_part`) and when it
//! became current (`queue_part_since_ms`). Each node caches the current
//! partition and refreshes it on every maintenance tick. Once the current
//! partition has been current for [`crate::PostgresOptions::queue_rotate_interval`],
//! a node makes another partition with no events current, oldest first,
//! truncating it on the way; on every tick it also truncates the other
//! partitions that have drained since. A truncation takes the partition's
//! `ACCESS EXCLUSIVE` lock (waiting at most [`LOCK_WAIT`], so leases and
//! acks stall for at most that long), checks under that lock that the
//! partition is still empty, truncates it and commits at once. One
//! truncation at a time per schema (a try-advisory lock), and the check
//! that needs a scan over the partition's dead rows runs first without the
//! lock.
//!
//! Measured in a 3-minute soak at 14–24k events/s (`pg_throughput
//! --soak-secs 180`): the queue stayed at 166–877 MiB and delivery kept
//! pace; the same soak with inserts rotating but partitions truncated only
//! when reused held 2.7–3.5 GB.
//!
//! Correctness does not depend on nodes agreeing on the current partition:
//! a partition is truncated only when it holds no rows under its exclusive
//! lock, and an insert that a stale node sends to it waits for that lock
//! and then lands in the fresh partition. A stale cache only delays the
//! next truncation of the partition it writes to.
//!
//! A partition holding a large backlog (an outage) is simply skipped. A
//! few stragglers (events waiting for a retry, or for a paused pixel) would
//! pin their partition forever, so once the oldest partition is down to
//! [`MOVE_MAX_ROWS`] rows, its events that nobody has leased are moved,
//! with their ids, into the current partition. Moving is invisible to the
//! trait: ids, due times and attempts stay, leased rows are never moved
//! (their holder acks them by id), held rows (dual tracking's merge window)
//! are left alone until well past their hold, and `forget` takes the same
//! advisory lock as a move so that it cannot miss a row in flight between
//! partitions.

use std::sync::Weak;
use std::time::Duration;

use sluice_store::StoreError;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient};

use crate::Shared;
use crate::error::{pg_error, pool_error};
use crate::schema::{QUEUE_PARTS, lock_key};

/// The longest a rotation waits for a partition's exclusive lock before it
/// tries the next one (leases and acks queue behind the wait).
pub(crate) const LOCK_WAIT: &str = "250ms";
/// The oldest partition's events are moved out once it holds at most this
/// many (see the module header).
pub const MOVE_MAX_ROWS: i64 = 10_000;
/// Held rows are moved only this long after their hold ended, so that a
/// node whose clock lags cannot be merging into a row being moved.
const HOLD_MARGIN_MS: i64 = 300_000;

/// What one rotation attempt did ([`crate::PostgresStore::rotate_queue`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// The partition inserts go to after the attempt.
    pub current: i16,
    /// The partition that was truncated and made current, if any.
    pub rotated_to: Option<i16>,
    /// Events moved out of the oldest partition into the current one.
    pub moved: u64,
    /// Partitions truncated: the new current one, and others found drained.
    pub truncated: u32,
}

/// The advisory-lock key of rotations of `schema` (one rotator at a time).
pub(crate) fn rotate_lock_key(schema: &str) -> i64 {
    lock_key("sluice-rotate:", schema)
}

/// The advisory-lock key that `forget` and moves share (see the header).
pub(crate) fn move_lock_key(schema: &str) -> i64 {
    lock_key("sluice-move:", schema)
}

/// Reads the current partition from `store_meta` into the node's cache.
pub(crate) async fn refresh(shared: &Shared) -> Result<i16, StoreError> {
    let client = shared.pool.get().await.map_err(pool_error)?;
    let (part, _) = read_meta(&**client, &shared.options.schema).await?;
    shared.set_queue_part(part);
    Ok(part)
}

fn part_from(value: i64) -> Result<i16, StoreError> {
    i16::try_from(value)
        .ok()
        .filter(|p| (0..QUEUE_PARTS).contains(p))
        .ok_or_else(|| StoreError::Corrupt {
            message: format!("store_meta.queue_part is {value}, not a queue partition"),
        })
}

/// Rotates if the current partition is due (or `force`), truncates the
/// other partitions that have drained since they were last truncated, and
/// refreshes the node's cache.
///
/// Each truncation is its own short transaction: its exclusive lock stalls
/// leases and acks, which touch every partition, until it commits. Proving
/// a partition empty can take long (a scan over every dead row it
/// collected), so that is done first without the lock, and again, by then
/// cheaply, under it.
pub(crate) async fn rotate(
    shared: &Shared,
    now_ms: i64,
    force: bool,
) -> Result<RotationReport, StoreError> {
    let schema = shared.options.schema.as_str();
    let mut pooled = shared.pool.get().await.map_err(pool_error)?;
    let client: &mut Client = &mut pooled;
    let (current, since_ms) = read_meta(client, schema).await?;
    let interval_ms =
        i64::try_from(shared.options.queue_rotate_interval.as_millis()).unwrap_or(i64::MAX);
    let due = force || now_ms.saturating_sub(since_ms) >= interval_ms;
    let mut report = RotationReport {
        current,
        ..RotationReport::default()
    };
    if due {
        let oldest = (current + 1) % QUEUE_PARTS;
        report.moved = move_stragglers(client, schema, oldest, current, now_ms).await?;
    }
    for step in 1..QUEUE_PARTS {
        let candidate = (current + step) % QUEUE_PARTS;
        let becomes_current = due && report.rotated_to.is_none();
        let partition = format!("{schema}.queue_p{candidate}");
        if !becomes_current
            && scalar::<i64>(client, &format!("SELECT pg_relation_size('{partition}')")).await? == 0
        {
            continue;
        }
        if occupied(client, &partition).await? {
            continue;
        }
        let make_current_at = becomes_current.then_some(now_ms);
        match truncate(client, schema, report.current, candidate, make_current_at).await? {
            Truncated::Yes => {
                report.truncated += 1;
                if becomes_current {
                    report.rotated_to = Some(candidate);
                    report.current = candidate;
                }
            }
            Truncated::Busy => {}
            Truncated::OtherRotator => break,
        }
    }
    let (current, _) = read_meta(client, schema).await?;
    shared.set_queue_part(current);
    report.current = current;
    if report.truncated > 0 {
        tracing::debug!(schema, ?report, "rotated the queue");
    }
    Ok(report)
}

/// The current partition and since when, from `store_meta`.
async fn read_meta(client: &impl GenericClient, schema: &str) -> Result<(i16, i64), StoreError> {
    let meta = client
        .query(
            &format!(
                "SELECT key, value FROM {schema}.store_meta
                 WHERE key IN ('queue_part', 'queue_part_since_ms')"
            ),
            &[],
        )
        .await
        .map_err(pg_error)?;
    let mut current = None;
    let mut since_ms = 0;
    for row in &meta {
        let key: &str = row.try_get(0).map_err(pg_error)?;
        let value: i64 = row.try_get(1).map_err(pg_error)?;
        match key {
            "queue_part" => current = Some(part_from(value)?),
            _ => since_ms = value,
        }
    }
    let current = current.ok_or_else(|| StoreError::Corrupt {
        message: "store_meta has no queue_part".to_owned(),
    })?;
    Ok((current, since_ms))
}

/// The one value `sql` answers.
async fn scalar<T>(client: &impl GenericClient, sql: &str) -> Result<T, StoreError>
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    client
        .query_one(sql, &[])
        .await
        .map_err(pg_error)?
        .try_get(0)
        .map_err(pg_error)
}

/// Whether `partition` (schema-qualified) holds any event.
async fn occupied(client: &impl GenericClient, partition: &str) -> Result<bool, StoreError> {
    scalar(
        client,
        &format!("SELECT EXISTS (SELECT 1 FROM {partition})"),
    )
    .await
}

enum Truncated {
    Yes,
    /// The partition's lock was not free in time, or it holds events now.
    Busy,
    /// Another node is rotating, or has rotated since we looked.
    OtherRotator,
}

/// Truncates `part` if it holds no events under its exclusive lock and
/// `current` is still the current partition; with `make_current_at`, also
/// makes `part` the current partition, as of then.
async fn truncate(
    client: &mut Client,
    schema: &str,
    current: i16,
    part: i16,
    make_current_at: Option<i64>,
) -> Result<Truncated, StoreError> {
    let tx = client.transaction().await.map_err(pg_error)?;
    let won: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock($1)",
            &[&rotate_lock_key(schema)],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    if !won || read_meta(&tx, schema).await?.0 != current {
        return Ok(Truncated::OtherRotator);
    }
    tx.batch_execute(&format!("SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
        .await
        .map_err(pg_error)?;
    let partition = format!("{schema}.queue_p{part}");
    match tx
        .batch_execute(&format!("LOCK TABLE {partition} IN ACCESS EXCLUSIVE MODE"))
        .await
    {
        Ok(()) => {}
        Err(error) if error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
            return Ok(Truncated::Busy);
        }
        Err(error) => return Err(pg_error(error)),
    }
    if occupied(&tx, &partition).await? {
        return Ok(Truncated::Busy);
    }
    let mut sql = format!("TRUNCATE {partition};");
    if let Some(now_ms) = make_current_at {
        sql.push_str(&format!(
            "UPDATE {schema}.store_meta SET value = {part} WHERE key = 'queue_part';
             UPDATE {schema}.store_meta SET value = {now_ms} WHERE key = 'queue_part_since_ms';"
        ));
    }
    tx.batch_execute(&sql).await.map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)?;
    Ok(Truncated::Yes)
}

/// Moves the unleased events of partition `from` into `to` when `from`
/// holds at most [`MOVE_MAX_ROWS`] events; answers how many moved.
async fn move_stragglers(
    client: &mut Client,
    schema: &str,
    from: i16,
    to: i16,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let remaining: i64 = scalar(
        client,
        &format!(
            "SELECT count(*) FROM (SELECT 1 FROM {schema}.queue_p{from} LIMIT {}) AS r",
            MOVE_MAX_ROWS + 1
        ),
    )
    .await?;
    if remaining == 0 || remaining > MOVE_MAX_ROWS {
        return Ok(0);
    }
    let tx = client.transaction().await.map_err(pg_error)?;
    // Waits for a running `forget` (see the module header).
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&move_lock_key(schema)],
    )
    .await
    .map_err(pg_error)?;
    let moved = tx
        .execute(
            &format!(
                "WITH moved AS (
                    DELETE FROM {schema}.queue_p{from}
                    WHERE id = ANY (ARRAY(
                        SELECT id FROM {schema}.queue_p{from}
                        WHERE leased_until_ms IS NULL
                          AND (hold_until_ms IS NULL OR hold_until_ms <= $1)
                        FOR UPDATE SKIP LOCKED))
                    RETURNING *)
                INSERT INTO {schema}.queue
                    (id, part, pixel_id, due_ms, hold_until_ms, enqueued_ms, event_time,
                     attempts, leased_until_ms, lease_batch, source, event_name, event_id,
                     test_event_code, last_error, user_keys, payload)
                SELECT id, $2::int2, pixel_id, due_ms, hold_until_ms, enqueued_ms, event_time,
                       attempts, leased_until_ms, lease_batch, source, event_name, event_id,
                       test_event_code, last_error, user_keys, payload
                FROM moved"
            ),
            &[&now_ms.saturating_sub(HOLD_MARGIN_MS), &to],
        )
        .await
        .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)?;
    Ok(moved)
}

/// The node's maintenance loop: refreshes the current partition and
/// rotates when due. Holds only a weak reference, so a dropped store ends
/// it at the next tick.
pub(crate) async fn run(shared: Weak<Shared>, rotate_interval: Duration) {
    let tick = (rotate_interval / 4).clamp(Duration::from_millis(250), Duration::from_secs(5));
    loop {
        tokio::time::sleep(tick).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Err(error) = rotate(&shared, wall_clock_ms(), false).await {
            tracing::warn!(code = error.code(), %error, "queue rotation failed; will retry");
        }
    }
}

/// Rotation only needs a rough clock: it decides when, never whether.
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
