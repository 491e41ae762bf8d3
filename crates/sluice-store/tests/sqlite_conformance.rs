//! Runs the backend-independent conformance suite against [`SqliteStore`],
//! each test in its own temporary directory, each store in its own file.
//!
//! The suite runs twice: with the default options, and with tiny limits
//! (a one-minute dedup window, 7-row group commits, 4-row purge batches,
//! a group-commit wait, `synchronous=NORMAL`) so that every option's code
//! path is held to the same contract.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sluice_store::{SqliteOptions, SqliteStore, Store};

/// A factory of fresh stores living in one temporary directory, which the
/// factory owns (and deletes when the test drops it).
fn sqlite_factory(options: SqliteOptions) -> impl AsyncFn() -> Arc<dyn Store> {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let next = Arc::new(AtomicUsize::new(0));
    move || {
        let path = dir
            .path()
            .join(format!("store-{}.db", next.fetch_add(1, Ordering::Relaxed)));
        let options = options.clone();
        async move {
            let store = SqliteStore::open(&path, options)
                .await
                .expect("open sqlite store");
            Arc::new(store) as Arc<dyn Store>
        }
    }
}

mod default_options {
    use super::*;

    sluice_store::store_conformance_tests!(sqlite_factory(SqliteOptions::default()));
}

mod tiny_limits {
    use super::*;

    fn options() -> SqliteOptions {
        SqliteOptions {
            synchronous_full: false,
            group_commit_max_rows: 7,
            group_commit_max_wait: Duration::from_millis(1),
            dedup_window_ms: 60_000,
            purge_batch_rows: 4,
            read_connections: 1,
            ..SqliteOptions::default()
        }
    }

    sluice_store::store_conformance_tests!(sqlite_factory(options()));
}
