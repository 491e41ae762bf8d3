//! The one error type of every store backend.
//!
//! Each variant has a stable [`code`](StoreError::code) for logs, metrics
//! labels and API error bodies, and says whether retrying can help
//! ([`is_transient`](StoreError::is_transient)): the gateway answers 503 on a
//! transient error (the client retries; nothing was acknowledged) and 500
//! otherwise.
//!
//! Messages never carry payloads, user keys or other event data: backends
//! build them from the database's own error text, which names tables and
//! constraints but not values.
//!
//! `StoreError` is `Clone` because one failed group commit answers many
//! callers with the same error.

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store has been closed or its writer has stopped (crashed or shut
    /// down); nothing more will be committed through this handle.
    #[error("store is closed")]
    Closed,
    /// The database is locked by another process or connection for longer
    /// than the busy timeout.
    #[error("store is busy: {message}")]
    Busy {
        /// The backend's description.
        message: String,
    },
    /// The disk or the database quota is full.
    #[error("store is full: {message}")]
    Full {
        /// The backend's description.
        message: String,
    },
    /// The database cannot be written (read-only file, mount or role).
    #[error("store is read-only: {message}")]
    ReadOnly {
        /// The backend's description.
        message: String,
    },
    /// An I/O error below the database.
    #[error("store i/o error: {message}")]
    Io {
        /// The backend's description.
        message: String,
    },
    /// The database file is damaged or is not a sluice store.
    #[error("store is corrupt or not a sluice store: {message}")]
    Corrupt {
        /// The backend's description.
        message: String,
    },
    /// The database was written by a newer sluice; refusing to touch it.
    #[error("store schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// The version found on disk.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The caller passed something the contract forbids (e.g. an empty pixel id).
    #[error("invalid store request: {message}")]
    InvalidInput {
        /// What was wrong, without event data.
        message: String,
    },
    /// Any other backend failure.
    #[error("store backend error: {message}")]
    Backend {
        /// The backend's description.
        message: String,
    },
}

// === impl StoreError ===

impl StoreError {
    /// A stable snake_case code for this kind of failure. Never changes
    /// meaning once released: dashboards and alerts key on it.
    pub const fn code(&self) -> &'static str {
        match self {
            StoreError::Closed => "store_closed",
            StoreError::Busy { .. } => "store_busy",
            StoreError::Full { .. } => "store_full",
            StoreError::ReadOnly { .. } => "store_read_only",
            StoreError::Io { .. } => "store_io",
            StoreError::Corrupt { .. } => "store_corrupt",
            StoreError::SchemaTooNew { .. } => "store_schema_too_new",
            StoreError::InvalidInput { .. } => "store_invalid_input",
            StoreError::Backend { .. } => "store_backend",
        }
    }

    /// Whether the same request may succeed later without operator action
    /// (lock contention, a full disk that gets space, a transient I/O error).
    pub const fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Busy { .. } | StoreError::Full { .. } | StoreError::Io { .. }
        )
    }

    /// Shorthand for [`StoreError::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        StoreError::InvalidInput {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_distinct() {
        let all = [
            StoreError::Closed,
            StoreError::Busy {
                message: String::new(),
            },
            StoreError::Full {
                message: String::new(),
            },
            StoreError::ReadOnly {
                message: String::new(),
            },
            StoreError::Io {
                message: String::new(),
            },
            StoreError::Corrupt {
                message: String::new(),
            },
            StoreError::SchemaTooNew {
                found: 2,
                supported: 1,
            },
            StoreError::invalid("x"),
            StoreError::Backend {
                message: String::new(),
            },
        ];
        let mut codes: Vec<_> = all.iter().map(StoreError::code).collect();
        assert!(codes.iter().all(|c| c.starts_with("store_")));
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
