//! One module per subcommand.

pub mod consent;
pub mod dedup;
pub mod dlq;
pub mod forget;
pub mod normalize;
pub mod send;
pub mod serve;
pub mod validate;

use std::process::ExitCode;

/// Logging for long-running commands: `SLUICE_LOG` (or `RUST_LOG`) filters,
/// `SLUICE_LOG_FORMAT=json` switches to JSON lines.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("SLUICE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    if std::env::var("SLUICE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub fn emulate(args: sluice_emulator::EmulateArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    runtime()?.block_on(sluice_emulator::run_emulate(args))?;
    Ok(ExitCode::SUCCESS)
}
