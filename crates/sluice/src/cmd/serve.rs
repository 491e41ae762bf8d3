//! `sluice serve` and `sluice check-config`.

use anyhow::Context;
use clap::Args;
use sluice_server::config::{Config, describe};
use sluice_server::{Gateway, StartOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Without one, sluice starts in zero-config mode:
    /// 127.0.0.1, a queue under ./sluice-data, and a built-in sandbox instead of Meta.
    #[arg(long, short, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (overrides server.listen).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Directory for the queue and other state (overrides data_dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Queue in PostgreSQL instead of the SQLite file (postgres://user@host/db),
    /// for several nodes sharing one queue; overrides store.url.
    #[arg(long, env = "SLUICE_STORE__URL", hide_env_values = true)]
    pub store: Option<String>,
    /// Send to this Graph API base URL instead (e.g. a `sluice emulate` at
    /// http://127.0.0.1:4100); overrides delivery.graph_url.
    #[arg(long)]
    pub graph_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The file to check (the SLUICE_* environment is applied on top).
    pub file: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    super::init_logging();
    // The flags are applied before the configuration is checked: they may
    // supply what the file leaves out (`--store` for a file that says
    // `backend = "postgres"` without a URL).
    let config = Config::load_with_overrides(args.config.as_deref(), |config| {
        if let Some(listen) = args.listen {
            config.server.listen = listen;
        }
        if let Some(dir) = args.data_dir {
            config.data_dir = dir;
        }
        if let Some(url) = args.graph_url {
            config.delivery.graph_url = Some(url);
        }
        if let Some(url) = args.store {
            config.store.url = Some(sluice_core::Secret::new(url));
        }
    })?;
    let runtime = super::runtime()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let zero_config = config.is_zero_config();
        let graph_url = config.delivery.graph_url.clone();
        let gateway = Gateway::start(config, listener, StartOptions::default()).await?;
        banner(gateway.addr, zero_config, graph_url.as_deref());
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests and deliveries");
        gateway.shutdown().await;
        tracing::info!("stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn banner(addr: SocketAddr, zero_config: bool, graph_url: Option<&str>) {
    eprintln!(
        "sluice {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    if zero_config {
        match graph_url {
            Some(url) => eprintln!(
                "zero-config mode: events go to {url} (any pixel id and token are accepted and forwarded as given)"
            ),
            None => {
                eprintln!(
                    "zero-config mode: events go to the built-in sandbox; NOTHING is sent to Meta."
                );
                eprintln!("  see what arrived: curl http://{addr}/_sandbox/_emulator/events");
            }
        }
        eprintln!(
            "  the backend API needs no key in this mode: curl -X POST http://{addr}/v1/events -d @event.json"
        );
        eprintln!(
            "  to send to Meta, write a sluice.toml with [[pixels]] id + access_token and run: sluice serve --config sluice.toml"
        );
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

pub fn check_config(args: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    match Config::load(args.file.as_deref()) {
        Ok(config) => {
            for (key, value) in describe(&config) {
                println!("{key:>12}: {value}");
            }
            println!("configuration is valid");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// PostgreSQL URL (postgres://user@host/db); default: store.url of the configuration.
    #[arg(long, env = "SLUICE_STORE__URL", hide_env_values = true)]
    pub store: Option<String>,
    /// Schema holding sluice's tables; default: store.schema (`sluice`).
    #[arg(long)]
    pub schema: Option<String>,
    /// Configuration file.
    #[arg(long, short, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// `sluice migrate`: applies the embedded schema migrations to PostgreSQL
/// (the SQLite file migrates itself when it is opened).
pub fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    // Applied before the checks, as for `serve`.
    let config = Config::load_with_overrides(args.config.as_deref(), |config| {
        if let Some(url) = args.store {
            config.store.url = Some(sluice_core::Secret::new(url));
        }
        if let Some(schema) = args.schema {
            config.store.schema = schema;
        }
    })?;
    let Some(url) = &config.store.url else {
        anyhow::bail!(
            "no PostgreSQL URL: pass --store postgres://… or set store.url (the SQLite queue migrates itself on start)"
        );
    };
    let url = url.expose();
    let schema = &config.store.schema;
    let report = super::runtime()?.block_on(sluice_store_postgres::migrate(url, schema))?;
    if report.from < report.to {
        println!(
            "postgres schema {schema}: migrated from version {} to {}",
            report.from, report.to
        );
    } else {
        println!("postgres schema {schema}: already at version {}", report.to);
    }
    Ok(ExitCode::SUCCESS)
}
