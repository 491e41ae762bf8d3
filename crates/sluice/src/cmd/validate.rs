//! `sluice validate [FILE|-]`.

use anyhow::Context;
use clap::Args;
use sluice_core::validate::{ValidationContext, parse_document};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A file with one event, a JSON array of events, NDJSON (one event per
    /// line) or a Graph request body {"data": [...]}; `-` or nothing reads stdin.
    pub file: Option<PathBuf>,
    /// Check events as they arrive at sluice's ingest API (raw personal data
    /// allowed, sluice hashes it) instead of as Meta receives them (hashes only).
    #[arg(long)]
    pub ingest: bool,
    /// Print the problems as JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut bytes = Vec::new();
    match args.file.as_deref() {
        None => std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading stdin")?,
        Some(p) if p.as_os_str() == "-" => std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading stdin")?,
        Some(p) => {
            bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            bytes.len()
        }
    };
    let now = sluice_core::time::unix_secs();
    let ctx = if args.ingest {
        ValidationContext::for_ingest(now)
    } else {
        ValidationContext::for_wire(now)
    };
    let doc = parse_document(&bytes, &ctx);
    for problem in &doc.problems {
        if args.json {
            println!("{}", serde_json::to_string(problem)?);
        } else {
            println!("{problem}");
        }
    }
    let errors = doc.error_count();
    let warnings = doc.problems.len() - errors;
    eprintln!(
        "{} event(s) checked: {errors} error(s), {warnings} warning(s)",
        doc.events.len()
    );
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
