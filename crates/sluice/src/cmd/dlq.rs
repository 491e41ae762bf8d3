//! `sluice dlq list|show|replay|delete`: the dead-letter queue, offline.
//!
//! Opens the same store file as the running server (SQLite allows a second
//! process; writes wait for the server's commits).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sluice_server::config::Config;
use sluice_server::routes::admin::dead_letter_json;
use sluice_store::{DeadLetterId, DlqFilter, Store};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters (newest last), with the reason Meta or sluice gave.
    List(ListArgs),
    /// Show one dead letter: the hashed event as stored and the full error.
    Show {
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Put dead letters back in the queue (all that match the filter, or --id).
    Replay(ReplayArgs),
    /// Delete dead letters for good.
    Delete {
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The server's configuration file (to find the store).
    #[arg(long, short, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (overrides data_dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only this pixel.
    #[arg(long)]
    pub pixel: Option<String>,
    /// Only this event name.
    #[arg(long)]
    pub event_name: Option<String>,
    /// Only this reason code, as `dlq list` shows it: Meta's code/subcode
    /// (e.g. 100/2804003, 190/463) or sluice's (event_too_old, max_attempts).
    #[arg(long)]
    pub code: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Replay only these ids.
    #[arg(long = "id")]
    pub ids: Vec<String>,
    /// Send the replayed events to Meta's Test Events tool with this code.
    #[arg(long)]
    pub test_event_code: Option<String>,
    /// Show what would be replayed, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub(crate) async fn open(args: &StoreArgs) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if !config.uses_postgres() && !config.store_path().exists() {
        bail!(
            "no queue at {} (start `sluice serve` first, or pass --config/--data-dir)",
            config.store_path().display()
        );
    }
    Ok(sluice_server::app::open_store(&config).await?)
}

fn parse_ids(ids: &[String]) -> anyhow::Result<Vec<DeadLetterId>> {
    ids.iter()
        .map(|i| {
            i.parse()
                .with_context(|| format!("{i:?} is not a dead-letter id"))
        })
        .collect()
}

fn now_ms() -> i64 {
    sluice_core::time::unix_ms()
}

pub fn run(command: DlqCommand) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async move {
        match command {
            DlqCommand::List(args) => list(args).await,
            DlqCommand::Show { id, store } => {
                let store = open(&store).await?;
                let id = parse_ids(&[id])?[0];
                match store.dlq_get(id).await? {
                    Some(d) => {
                        println!("{}", serde_json::to_string_pretty(&dead_letter_json(&d))?);
                        Ok(ExitCode::SUCCESS)
                    }
                    None => {
                        eprintln!("no dead letter {id}");
                        Ok(ExitCode::from(1))
                    }
                }
            }
            DlqCommand::Replay(args) => replay(args).await,
            DlqCommand::Delete { ids, store } => {
                let store = open(&store).await?;
                let deleted = store.dlq_delete(&parse_ids(&ids)?).await?;
                store.close().await?;
                println!("deleted {deleted} dead letter(s)");
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args.store).await?;
    let filter = DlqFilter {
        pixel_id: args.filter.pixel,
        event_name: args.filter.event_name,
        code: args.filter.code,
        limit: Some(args.limit),
        ..DlqFilter::default()
    };
    let items = store.dlq_list(&filter).await?;
    if args.json {
        for d in &items {
            println!("{}", serde_json::to_string(&dead_letter_json(d))?);
        }
    } else {
        println!(
            "{:<24} {:<18} {:<22} {:<26} {:>8}  reason",
            "id", "pixel", "event", "code", "attempts"
        );
        for d in &items {
            println!(
                "{:<24} {:<18} {:<22} {:<26} {:>8}  {}",
                d.id.to_string(),
                d.pixel_id,
                d.event_name,
                d.code,
                d.attempts,
                d.message
            );
        }
        eprintln!("{} dead letter(s)", items.len());
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args.store).await?;
    let ids = if args.ids.is_empty() {
        let filter = DlqFilter {
            pixel_id: args.filter.pixel,
            event_name: args.filter.event_name,
            code: args.filter.code,
            ..DlqFilter::default()
        };
        sluice_server::dlq::matching_ids(&*store, filter).await?
    } else {
        parse_ids(&args.ids)?
    };
    if args.dry_run {
        println!("would replay {} dead letter(s)", ids.len());
        return Ok(ExitCode::SUCCESS);
    }
    let bar = ProgressBar::new(ids.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("replaying {bar:40} {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut replayed = 0;
    for chunk in ids.chunks(500) {
        replayed += store
            .dlq_replay(chunk, args.test_event_code.clone(), now_ms())
            .await?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    store.close().await?;
    println!("replayed {replayed} dead letter(s); the running server delivers them");
    Ok(ExitCode::SUCCESS)
}
