//! `sluice send`: send events to the Graph API (or an emulator) and print
//! Meta's answer.
//!
//! Events are checked first (the same rules the gateway applies), raw personal
//! data is normalized and hashed, and the events go out in requests of at most
//! 1000. The access token comes from `SLUICE_ACCESS_TOKEN` or `--token-file`,
//! never from the command line (it would end up in shell history and `ps`).

use anyhow::{Context, bail};
use clap::Args;
use sluice_core::validate::{ValidationContext, parse_document};
use sluice_core::{MAX_EVENTS_PER_REQUEST, Secret, ServerEvent};
use sluice_delivery::{
    BatchOptions, ClientConfig, Credentials, DeliveryError, GraphClient, MetaRetryPolicy,
    RetryPolicy, Verdict,
};
use sluice_normalize::NormalizeOptions;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The pixel (dataset) id to send to.
    #[arg(long)]
    pub pixel: String,
    /// Route the events to Events Manager's Test Events tab with this code.
    #[arg(long)]
    pub test_event_code: Option<String>,
    /// Graph API base URL (default Meta's; e.g. http://127.0.0.1:4100 for `sluice emulate`).
    #[arg(long, env = "SLUICE_GRAPH_URL")]
    pub graph_url: Option<String>,
    /// Graph API version.
    #[arg(long, default_value = sluice_core::DEFAULT_GRAPH_VERSION)]
    pub graph_version: String,
    /// A file holding the access token (otherwise SLUICE_ACCESS_TOKEN is read).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// App secret file, to send appsecret_proof.
    #[arg(long)]
    pub app_secret_file: Option<PathBuf>,
    /// Region for national phone numbers when an event has no country.
    #[arg(long)]
    pub default_region: Option<String>,
    /// Request timeout in seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// The events: one event, a JSON array, NDJSON, or a Graph body {"data": [...]}.
    pub file: PathBuf,
}

fn read_secret(path: &std::path::Path) -> anyhow::Result<Secret> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Secret::new(text.trim_end()))
}

pub fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    let token = match &args.token_file {
        Some(path) => read_secret(path)?,
        None => match std::env::var("SLUICE_ACCESS_TOKEN") {
            Ok(t) if !t.trim().is_empty() => Secret::new(t.trim()),
            _ => bail!("no access token: set SLUICE_ACCESS_TOKEN or pass --token-file FILE"),
        },
    };
    let credentials = match &args.app_secret_file {
        Some(path) => Credentials::with_app_secret(token, &read_secret(path)?),
        None => Credentials::new(token),
    };
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let now = sluice_core::time::unix_secs();
    let doc = parse_document(&bytes, &ValidationContext::for_ingest(now));
    if doc.error_count() > 0 {
        for p in doc.problems.iter().filter(|p| p.is_error()) {
            eprintln!("{p}");
        }
        bail!(
            "{} problem(s) found; nothing was sent (run `sluice validate` for details)",
            doc.error_count()
        );
    }
    let region = args
        .default_region
        .as_deref()
        .map(|r| {
            sluice_normalize::CountryCode::parse(r).map_err(|_| {
                anyhow::anyhow!("--default-region {r:?} is not an ISO 3166 alpha-2 code")
            })
        })
        .transpose()?;
    let opts = NormalizeOptions::from_system_clock().with_default_region(region);
    let mut events: Vec<ServerEvent> = Vec::with_capacity(doc.events.len());
    for (path, event) in doc.events {
        let Some(mut event) = event else { continue };
        for rejected in sluice_normalize::hash_user_data(&mut event.user_data, &opts) {
            eprintln!(
                "warning {path}.user_data.{}: dropped ({})",
                rejected.field(),
                rejected.code()
            );
        }
        events.push(event);
    }
    if events.is_empty() {
        bail!("the file holds no events");
    }

    sluice_delivery::client::install_crypto_provider();
    let mut config = ClientConfig {
        version: args.graph_version.clone(),
        request_timeout: Duration::from_secs(args.timeout.max(1)),
        ..ClientConfig::default()
    };
    if let Some(url) = &args.graph_url {
        config.base_url = url.trim_end_matches('/').to_owned();
    }
    let client = GraphClient::new(&config)?;
    let options = BatchOptions {
        test_event_code: args.test_event_code.or(doc.test_event_code),
        partner_agent: doc.partner_agent.or(config.partner_agent.clone()),
        ..BatchOptions::default()
    };
    let policy = MetaRetryPolicy::default();
    let runtime = super::runtime()?;
    let mut failed = false;
    for (n, batch) in events.chunks(MAX_EVENTS_PER_REQUEST).enumerate() {
        let result =
            runtime.block_on(client.send_events(&args.pixel, &credentials, batch, &options));
        let verdict = policy.classify(&result);
        match result {
            Ok(response) => println!("{}", serde_json::to_string(&response)?),
            Err(DeliveryError::Graph { status, error, .. }) => {
                failed = true;
                println!(
                    "{}",
                    serde_json::to_string(&serde_json::json!({"error": error}))?
                );
                eprintln!(
                    "request {} (HTTP {status}) failed: {}",
                    n + 1,
                    advice(&verdict)
                );
            }
            Err(other) => {
                failed = true;
                eprintln!("request {} failed: {other} ({})", n + 1, advice(&verdict));
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn advice(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Delivered => "delivered",
        Verdict::RetryNow => "a transient error: try again",
        Verdict::RetryAfter(_) => "rate limited: wait before sending again",
        Verdict::FixCredentials => "the token, its permissions or the pixel id must be fixed",
        Verdict::Permanent => "Meta rejected the payload: fix the events",
    }
}
