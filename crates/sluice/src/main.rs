//! `sluice`: the command-line entry point.
//!
//! Every subcommand lives in `cmd/`; this file only parses arguments, sets up
//! logging and maps errors to exit codes. `anyhow` stops here: the libraries
//! return typed errors.

mod cmd;
mod malloc;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// sluice: a self-hosted, server-side gateway for Meta's Conversions API.
///
/// Receives events from browsers, backends and existing CAPI code, checks them,
/// hashes personal data as Meta expects, stores each event durably and delivers
/// it to Meta in batches with retries and a dead-letter queue.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (zero-config: a local sandbox, nothing goes to Meta).
    Serve(cmd::serve::ServeArgs),
    /// Run a local emulator of Meta's Conversions API endpoint.
    Emulate(sluice_emulator::EmulateArgs),
    /// Print the normalized form of a personal-data value, as sluice hashes it.
    Normalize(cmd::normalize::NormalizeArgs),
    /// Print the SHA-256 an event would carry for a personal-data value.
    Hash(cmd::normalize::HashArgs),
    /// Check events (one, an array, NDJSON or a Graph request body) and list every problem.
    Validate(cmd::validate::ValidateArgs),
    /// Send events to the Graph API (or an emulator) and print Meta's answer.
    Send(cmd::send::SendArgs),
    /// Check a configuration file (and the SLUICE_* environment) without starting.
    CheckConfig(cmd::serve::CheckConfigArgs),
    /// Apply the PostgreSQL schema migrations (for several nodes on one database).
    Migrate(cmd::serve::MigrateArgs),
    /// Inspect and replay the dead-letter queue.
    #[command(subcommand)]
    Dlq(cmd::dlq::DlqCommand),
    /// Deduplication you can see: browser vs server copies, merges, suspicious ids.
    #[command(subcommand)]
    Dedup(cmd::dedup::DedupCommand),
    /// Consent decisions: explain one event's, list the recorded ones.
    #[command(subcommand)]
    Consent(cmd::consent::ConsentCommand),
    /// Delete every queued or dead-lettered event of one person (by e-mail, phone or external id).
    Forget(cmd::forget::ForgetArgs),
}

fn main() -> ExitCode {
    // Before any thread starts: the settings decide how many arenas exist.
    let _accepted = malloc::tune();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            malloc::spawn_idle_trimmer();
            cmd::serve::run(args)
        }
        Command::Emulate(args) => cmd::emulate(args),
        Command::Normalize(args) => cmd::normalize::run_normalize(args),
        Command::Hash(args) => cmd::normalize::run_hash(args),
        Command::Validate(args) => cmd::validate::run(args),
        Command::Send(args) => cmd::send::run(args),
        Command::CheckConfig(args) => cmd::serve::check_config(args),
        Command::Migrate(args) => cmd::serve::migrate(args),
        Command::Dlq(command) => cmd::dlq::run(command),
        Command::Dedup(command) => cmd::dedup::run(command),
        Command::Consent(command) => cmd::consent::run(command),
        Command::Forget(args) => cmd::forget::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
