//! Test support: a real PostgreSQL server, one fresh schema per store.
//!
//! The server URL comes from `SLUICE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Where no server answers, each
//! test prints a loud notice and passes without running, except under
//! `CI=true`, where a missing server fails the test: CI must not go green
//! on tests that never ran.

#![allow(dead_code)]

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_store::Store;
use sluice_store_postgres::{PostgresOptions, PostgresStore};

/// Where the test server is.
pub fn url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Whether the server answers; `false` (after a loud notice) means "skip
/// this test". Panics under `CI=true` instead of skipping.
pub async fn server_available() -> bool {
    let probe = async {
        let (client, connection) = tokio_postgres::connect(&url(), tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client.simple_query("SELECT 1").await.map(|_| ())
    };
    let result = tokio::time::timeout(Duration::from_secs(5), probe).await;
    let error = match result {
        Ok(Ok(())) => return true,
        Ok(Err(error)) => error.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "PostgreSQL at {} is required under CI=true but did not answer: {error}",
            url()
        );
    }
    // Straight to the process's stderr: the test harness captures
    // `eprintln!` of passing tests, and this notice must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!! SKIPPED: no PostgreSQL at {} ({error}); set SLUICE_TEST_POSTGRES_URL \
         to run the PostgreSQL store tests !!!\n",
        url()
    );
    false
}

/// A schema name no other test (or test run) uses.
pub fn unique_schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "sluice_t{}_{}_{:08x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// Options for tests: small pools (tests run in parallel against one
/// server with a limited connection table).
pub fn options(schema: &str) -> PostgresOptions {
    PostgresOptions {
        schema: schema.to_owned(),
        pool_size: 4,
        ..PostgresOptions::default()
    }
}

/// Drops its schemas when dropped (best effort), from a thread of its own
/// because `Drop` cannot await.
#[derive(Default)]
pub struct SchemaGuard {
    schemas: Mutex<Vec<String>>,
}

impl SchemaGuard {
    pub fn register(&self, schema: &str) {
        self.schemas.lock().unwrap().push(schema.to_owned());
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let schemas = std::mem::take(&mut *self.schemas.lock().unwrap());
        if schemas.is_empty() {
            return;
        }
        let url = url();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                for schema in schemas {
                    if let Err(error) = sluice_store_postgres::drop_schema(&url, &schema).await {
                        eprintln!("could not drop test schema {schema}: {error}");
                    }
                }
            });
        })
        .join();
    }
}

/// Connects a store on a fresh schema registered with `guard`.
pub async fn fresh_store(guard: &SchemaGuard) -> PostgresStore {
    let schema = unique_schema();
    guard.register(&schema);
    PostgresStore::connect(&url(), options(&schema))
        .await
        .expect("connect to the test PostgreSQL")
}

/// The conformance factory: each call, a store on a new schema; all of
/// them dropped with the factory. `None` if the test must be skipped.
pub async fn factory() -> Option<impl AsyncFn() -> Arc<dyn Store>> {
    if !server_available().await {
        return None;
    }
    let guard = Arc::new(SchemaGuard::default());
    Some(move || {
        let guard = Arc::clone(&guard);
        async move { Arc::new(fresh_store(&guard).await) as Arc<dyn Store> }
    })
}
