//! The `[store]` keys for PostgreSQL and `delivery.lease_ms`, as the real
//! binary reads them (`sluice check-config`, `sluice migrate`, `sluice
//! serve`). No database is needed: nothing here connects, except to a
//! closed port to see a command get past the configuration checks.

mod common;

use common::{run, stderr, stdout};

const SECRET: &str = "pg-password-not-for-output";

fn check(dir: &tempfile::TempDir, toml: &str) -> std::process::Output {
    let path = dir.path().join("sluice.toml");
    std::fs::write(&path, toml).unwrap();
    run(&["check-config", path.to_str().unwrap()], &[], None)
}

#[test]
fn a_postgres_store_is_described_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(
        &dir,
        &format!(
            "[store]\nurl = \"postgres://sluice:{SECRET}@db.internal:5432/sluice?sslmode=require\"\n\
             schema = \"gateway\"\n[delivery]\nlease_ms = 30000\n"
        ),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("postgres (schema gateway)"),
        "{}",
        stdout(&out)
    );
    for text in [stdout(&out), stderr(&out)] {
        assert!(!text.contains(SECRET), "the password leaked: {text}");
    }
}

#[test]
fn a_root_certificate_needs_sslmode_require() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "postgres://sluice@db.internal/sluice",
        "postgres://sluice@db.internal/sluice?sslmode=prefer",
    ] {
        let out = check(
            &dir,
            &format!("[store]\nurl = \"{url}\"\ntls_root_cert = \"/etc/ssl/db-ca.pem\"\n"),
        );
        assert_eq!(out.status.code(), Some(1), "{url}: {}", stdout(&out));
        assert!(stderr(&out).contains("sslmode=require"), "{}", stderr(&out));
    }
    let out = check(
        &dir,
        "[store]\nurl = \"postgres://sluice@db.internal/sluice?application_name=x&sslmode=require\"\n\
         tls_root_cert = \"/etc/ssl/db-ca.pem\"\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn bad_store_settings_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, expected) in [
        ("[store]\nurl = \"mysql://db/x\"\n", "postgres://"),
        ("[store]\nbackend = \"postgres\"\n", "store.url"),
        ("[store]\nbackend = \"redis\"\n", "store.backend"),
        (
            "[store]\nurl = \"postgres://db/x\"\npool_size = 0\n",
            "store.pool_size",
        ),
    ] {
        let out = check(&dir, toml);
        assert_eq!(out.status.code(), Some(1), "{toml}: {}", stdout(&out));
        assert!(stderr(&out).contains(expected), "{toml}: {}", stderr(&out));
    }
}

#[test]
fn migrate_needs_a_postgres_url() {
    let out = run(&["migrate"], &[], None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no PostgreSQL URL"),
        "{}",
        stderr(&out)
    );
}

/// Issue #7: `[store] backend = "postgres"` in the file and the URL only on
/// the command line. The flag is applied before the checks, so the command
/// gets as far as connecting (to a closed port here) instead of refusing
/// the configuration.
#[test]
fn store_url_on_the_command_line_completes_a_postgres_backend() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"{}\"\n[store]\nbackend = \"postgres\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let config = path.to_str().unwrap();
    let url = format!("postgres://sluice:{SECRET}@127.0.0.1:1/sluice");

    let out = run(&["check-config", config], &[], None);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("store.url"), "{}", stderr(&out));

    for args in [
        vec![
            "serve",
            "--config",
            config,
            "--listen",
            "127.0.0.1:0",
            "--store",
            &url,
        ],
        vec!["migrate", "--config", config, "--store", &url],
    ] {
        let out = run(&args, &[], None);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(
            !err.contains("needs store.url") && !err.contains("no PostgreSQL URL"),
            "{args:?}: the flag was not applied before the checks: {err}"
        );
        assert!(
            err.to_lowercase().contains("connect") || err.contains("127.0.0.1"),
            "{args:?}: expected a connection failure: {err}"
        );
        assert!(
            !err.contains(SECRET),
            "{args:?}: the password leaked: {err}"
        );
    }
}
