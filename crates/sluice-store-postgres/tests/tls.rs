//! TLS to a real server: `sslmode` as in libpq, and server authentication
//! with a root certificate. Skipped (loudly) where the server has no TLS.

mod support;

use std::io::Write as _;
use std::path::PathBuf;

use sluice_store::Store;
use sluice_store_postgres::{PostgresOptions, PostgresStore};
use support::{SchemaGuard, options, unique_schema, url};

/// A URL with extra query parameters.
fn url_with(params: &str) -> String {
    let base = url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{params}")
}

/// Whether the server offers TLS; prints a notice if not.
async fn server_has_tls() -> bool {
    let (client, connection) =
        tokio_postgres::connect(&url_with("sslmode=disable"), tokio_postgres::NoTls)
            .await
            .expect("connect");
    tokio::spawn(connection);
    let on: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    if on != "on" {
        let _ = writeln!(
            std::io::stderr(),
            "\n!!! SKIPPED: the test PostgreSQL has ssl=off; TLS tests did not run !!!\n"
        );
    }
    on == "on"
}

/// Whether the sessions of `application_name` use TLS (None: no session).
async fn sessions_use_tls(application_name: &str) -> Option<bool> {
    let (client, connection) =
        tokio_postgres::connect(&url_with("sslmode=disable"), tokio_postgres::NoTls)
            .await
            .expect("connect");
    tokio::spawn(connection);
    client
        .query_one(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl AS s
             JOIN pg_stat_activity AS a USING (pid) WHERE a.application_name = $1",
            &[&application_name],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_encrypts_and_disable_does_not() {
    if !support::server_available().await || !server_has_tls().await {
        return;
    }
    let guard = SchemaGuard::default();
    for (mode, encrypted) in [("require", true), ("disable", false), ("prefer", true)] {
        let schema = unique_schema();
        guard.register(&schema);
        let app = format!("sluice_tls_{mode}_{}", std::process::id());
        let store = PostgresStore::connect(
            &url_with(&format!("sslmode={mode}&application_name={app}")),
            options(&schema),
        )
        .await
        .unwrap_or_else(|e| panic!("sslmode={mode}: {e}"));
        store.check_writable().await.unwrap();
        assert_eq!(
            sessions_use_tls(&app).await,
            Some(encrypted),
            "sslmode={mode}"
        );
        store.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_not_signed_by_the_root_certificate_is_refused() {
    if !support::server_available().await || !server_has_tls().await {
        return;
    }
    let guard = SchemaGuard::default();
    let schema = unique_schema();
    guard.register(&schema);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/unrelated-ca.pem");
    let err = PostgresStore::connect(
        &url_with("sslmode=require"),
        PostgresOptions {
            tls_root_cert: Some(root),
            ..options(&schema)
        },
    )
    .await
    .err()
    .expect("the server's certificate does not chain to this CA");
    assert_eq!(err.code(), "store_io", "{err}");
}
