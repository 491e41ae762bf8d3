//! Decoding of result rows into the store's types. A value the schema
//! forbids (an unknown source name, a negative count) is `Corrupt`.

use sluice_store::{
    AuditEntry, AuditRow, DeadLetter, DeadLetterId, DedupReportRow, EventIdConflict, EventIdOrigin,
    EventRowId, EventSource, LeasedEvent, LedgerEntry, OrderIdConflict, SourceSet, StoreError,
};
use tokio_postgres::Row;

use crate::error::pg_error;

fn source(raw: &str) -> Result<EventSource, StoreError> {
    raw.parse().map_err(|_| StoreError::Corrupt {
        message: "a row holds an unknown event source".to_owned(),
    })
}

pub(crate) fn attempts(raw: i32) -> u32 {
    u32::try_from(raw.max(0)).unwrap_or(u32::MAX)
}

pub(crate) fn count(raw: i64) -> u64 {
    u64::try_from(raw).unwrap_or(0)
}

fn source_set(raw: i16) -> SourceSet {
    SourceSet::from_bits(u8::try_from(raw & 0xff).unwrap_or(0))
}

/// A row of the `lease` statement.
pub(crate) fn leased_event(row: &Row) -> Result<LeasedEvent, StoreError> {
    Ok(LeasedEvent {
        id: EventRowId::from_raw(row.try_get(0).map_err(pg_error)?),
        pixel_id: row.try_get(1).map_err(pg_error)?,
        event_name: row.try_get(2).map_err(pg_error)?,
        event_id: row.try_get(3).map_err(pg_error)?,
        event_time: row.try_get(4).map_err(pg_error)?,
        source: source(row.try_get(5).map_err(pg_error)?)?,
        payload: row.try_get(6).map_err(pg_error)?,
        attempts: attempts(row.try_get(7).map_err(pg_error)?),
        last_error: row.try_get(8).map_err(pg_error)?,
        test_event_code: row.try_get(9).map_err(pg_error)?,
        first_enqueued_ms: row.try_get(10).map_err(pg_error)?,
    })
}

/// A row selecting [`DEAD_LETTER_COLUMNS`](crate::sql::DEAD_LETTER_COLUMNS).
pub(crate) fn dead_letter(row: &Row) -> Result<DeadLetter, StoreError> {
    Ok(DeadLetter {
        id: DeadLetterId::from_raw(row.try_get(0).map_err(pg_error)?),
        pixel_id: row.try_get(1).map_err(pg_error)?,
        event_name: row.try_get(2).map_err(pg_error)?,
        event_id: row.try_get(3).map_err(pg_error)?,
        event_time: row.try_get(4).map_err(pg_error)?,
        source: source(row.try_get(5).map_err(pg_error)?)?,
        payload: row.try_get(6).map_err(pg_error)?,
        attempts: attempts(row.try_get(7).map_err(pg_error)?),
        test_event_code: row.try_get(8).map_err(pg_error)?,
        first_enqueued_ms: row.try_get(9).map_err(pg_error)?,
        code: row.try_get(10).map_err(pg_error)?,
        message: row.try_get(11).map_err(pg_error)?,
        detail_json: row.try_get(12).map_err(pg_error)?,
        dead_lettered_ms: row.try_get(13).map_err(pg_error)?,
    })
}

/// A row of the `dedup_lookup` statement.
pub(crate) fn ledger_entry(row: &Row) -> Result<LedgerEntry, StoreError> {
    Ok(LedgerEntry {
        pixel_id: row.try_get(0).map_err(pg_error)?,
        event_name: row.try_get(1).map_err(pg_error)?,
        event_id: row.try_get(2).map_err(pg_error)?,
        first_source: source(row.try_get(3).map_err(pg_error)?)?,
        sources: source_set(row.try_get(4).map_err(pg_error)?),
        first_seen_ms: row.try_get(5).map_err(pg_error)?,
        last_seen_ms: row.try_get(6).map_err(pg_error)?,
        duplicates: count(row.try_get(7).map_err(pg_error)?),
        merged: count(row.try_get(8).map_err(pg_error)?),
        order_id: row.try_get(9).map_err(pg_error)?,
        event_id_origin: EventIdOrigin::from_code(i64::from(
            row.try_get::<_, i16>(10).map_err(pg_error)?,
        )),
    })
}

/// A row of the `report_rows` statement.
pub(crate) fn report_row(row: &Row) -> Result<DedupReportRow, StoreError> {
    let n = |i: usize| row.try_get::<_, i64>(i).map_err(pg_error).map(count);
    Ok(DedupReportRow {
        pixel_id: row.try_get(0).map_err(pg_error)?,
        event_name: row.try_get(1).map_err(pg_error)?,
        events: n(2)?,
        browser_only: n(3)?,
        server_only: n(4)?,
        both: n(5)?,
        merged: n(6)?,
        duplicates: n(7)?,
        without_event_id: n(8)?,
        random_event_id: n(9)?,
    })
}

/// A row of the `report_order_conflicts` statement.
pub(crate) fn order_conflict(row: &Row) -> Result<OrderIdConflict, StoreError> {
    Ok(OrderIdConflict {
        pixel_id: row.try_get(0).map_err(pg_error)?,
        event_name: row.try_get(1).map_err(pg_error)?,
        order_id: row.try_get(2).map_err(pg_error)?,
        event_id_count: count(row.try_get(3).map_err(pg_error)?),
        event_ids: row.try_get(4).map_err(pg_error)?,
    })
}

/// A row of the `report_name_conflicts` statement.
pub(crate) fn name_conflict(row: &Row) -> Result<EventIdConflict, StoreError> {
    Ok(EventIdConflict {
        pixel_id: row.try_get(0).map_err(pg_error)?,
        event_id: row.try_get(1).map_err(pg_error)?,
        event_names: row.try_get(2).map_err(pg_error)?,
    })
}

/// A row of `audit_list`.
pub(crate) fn audit_entry(row: &Row) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: row.try_get(0).map_err(pg_error)?,
        row: AuditRow {
            time_ms: row.try_get(1).map_err(pg_error)?,
            pixel_id: row.try_get(2).map_err(pg_error)?,
            event_name: row.try_get(3).map_err(pg_error)?,
            event_id: row.try_get(4).map_err(pg_error)?,
            source: row.try_get(5).map_err(pg_error)?,
            outcome: row.try_get(6).map_err(pg_error)?,
            rule_id: row.try_get(7).map_err(pg_error)?,
            record_json: row.try_get(8).map_err(pg_error)?,
        },
    })
}
