//! Maps PostgreSQL and pool failures onto [`StoreError`].
//!
//! The mapping decides what the gateway answers: transient kinds (`Busy`,
//! `Full`, `Io`) become a 503 that the client retries, the rest a 500.
//!
//! Messages are built from the SQLSTATE and the server's *primary* message
//! only. The `DETAIL` line is never used: for constraint violations it
//! quotes the offending key values (`Key (pixel_id, event_id)=(…)`), which
//! are event data.

use std::error::Error as _;

use deadpool_postgres::PoolError;
use sluice_store::StoreError;
use tokio_postgres::error::SqlState;

/// Maps a driver error. Connection-level failures (the server went away,
/// a broken socket, a timeout) are `Io`, which is transient: the pool
/// replaces the connection and the caller's retry goes to a fresh one.
pub(crate) fn pg_error(error: tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let message = format!("{} ({})", db.message(), db.code().code());
        return db_error(db.code(), message);
    }
    let message = match error.source() {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    };
    if error.is_closed() || error.source().is_some_and(|s| s.is::<std::io::Error>()) {
        return StoreError::Io { message };
    }
    // Timeouts, connect and TLS failures carry no SQLSTATE; all of them are
    // about reaching the server, and retrying later can help.
    let text = error.to_string();
    if text.starts_with("error connecting")
        || text.starts_with("timeout")
        || text.starts_with("error performing TLS")
        || text.starts_with("error communicating")
    {
        return StoreError::Io { message };
    }
    StoreError::Backend { message }
}

/// Maps a server error by its SQLSTATE class.
fn db_error(code: &SqlState, message: String) -> StoreError {
    let class = &code.code()[..2];
    if *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::QUERY_CANCELED
        || *code == SqlState::TOO_MANY_CONNECTIONS
    {
        // Lock contention, a statement timeout, or a full connection table:
        // the same request can succeed a moment later.
        return StoreError::Busy { message };
    }
    if *code == SqlState::DISK_FULL || *code == SqlState::OUT_OF_MEMORY {
        return StoreError::Full { message };
    }
    if *code == SqlState::READ_ONLY_SQL_TRANSACTION || *code == SqlState::INSUFFICIENT_PRIVILEGE {
        return StoreError::ReadOnly { message };
    }
    if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
        return StoreError::Corrupt { message };
    }
    if *code == SqlState::CHARACTER_NOT_IN_REPERTOIRE
        || *code == SqlState::UNTRANSLATABLE_CHARACTER
        || *code == SqlState::PROGRAM_LIMIT_EXCEEDED
    {
        return StoreError::InvalidInput { message };
    }
    match class {
        // 08: connection exception; 57: operator intervention (shutdown,
        // crash recovery, "the database system is starting up"); 58: system
        // error (I/O below the database).
        "08" | "57" | "58" => StoreError::Io { message },
        // 53: insufficient resources not named above.
        "53" => StoreError::Full { message },
        // 42P01 / 3F000: a table or the schema is missing: not a sluice store
        // (or not migrated).
        "3F" => StoreError::Corrupt { message },
        _ if *code == SqlState::UNDEFINED_TABLE => StoreError::Corrupt { message },
        _ => StoreError::Backend { message },
    }
}

/// Maps a failure to check a connection out of the pool.
pub(crate) fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Closed => StoreError::Closed,
        PoolError::Backend(e) => pg_error(e),
        PoolError::Timeout(kind) => StoreError::Busy {
            message: format!("timed out waiting for a database connection ({kind:?})"),
        },
        other => StoreError::Backend {
            message: format!("connection pool: {other}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstate_classes_map_to_the_documented_kinds() {
        let cases = [
            (SqlState::T_R_DEADLOCK_DETECTED, "store_busy"),
            (SqlState::QUERY_CANCELED, "store_busy"),
            (SqlState::DISK_FULL, "store_full"),
            (SqlState::READ_ONLY_SQL_TRANSACTION, "store_read_only"),
            (SqlState::ADMIN_SHUTDOWN, "store_io"),
            (SqlState::CONNECTION_FAILURE, "store_io"),
            (SqlState::DATA_CORRUPTED, "store_corrupt"),
            (SqlState::UNDEFINED_TABLE, "store_corrupt"),
            (SqlState::CHARACTER_NOT_IN_REPERTOIRE, "store_invalid_input"),
            (SqlState::SYNTAX_ERROR, "store_backend"),
        ];
        for (state, expected) in cases {
            assert_eq!(db_error(&state, "m".into()).code(), expected, "{state:?}");
        }
        assert!(db_error(&SqlState::T_R_SERIALIZATION_FAILURE, String::new()).is_transient());
    }
}
