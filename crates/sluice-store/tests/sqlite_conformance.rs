//! Runs the backend-independent conformance suite against [`SqliteStore`],
//! each test in its own temporary directory, each store in its own file.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sluice_store::{SqliteOptions, SqliteStore, Store};

/// A factory of fresh stores living in one temporary directory, which the
/// factory owns (and deletes when the test drops it).
fn sqlite_factory() -> impl AsyncFn() -> Arc<dyn Store> {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let next = Arc::new(AtomicUsize::new(0));
    move || {
        let path = dir
            .path()
            .join(format!("store-{}.db", next.fetch_add(1, Ordering::Relaxed)));
        async move {
            let store = SqliteStore::open(&path, SqliteOptions::default())
                .await
                .expect("open sqlite store");
            Arc::new(store) as Arc<dyn Store>
        }
    }
}

sluice_store::store_conformance_tests!(sqlite_factory());
