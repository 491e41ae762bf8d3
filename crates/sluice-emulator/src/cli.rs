//! `sluice emulate`: the command-line face of the emulator. The `sluice` binary
//! owns the command tree and wires its `emulate` subcommand to [`EmulateArgs`] and
//! [`run_emulate`]; everything the user reads in `--help` is written here.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::EmulatorConfig;
use crate::{Emulator, EmulatorError};

/// Where `sluice emulate` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4100";

/// Text shown after the options in `sluice emulate --help`.
pub const EMULATE_LONG_HELP: &str = "\
WHAT IT DOES
  Serves POST /{version}/{pixel_id}/events and answers like Meta's Graph API as far
  as sluice's CAPI reference documents it. Point sluice's sandbox or an official SDK
  at it by changing only the base URL (e.g. http://127.0.0.1:4100).

  Accepted encodings: JSON body (Node SDK); form-encoded with data as a JSON array of
  JSON-encoded strings (Python SDK) or of objects; multipart form fields (Meta's curl
  example). access_token and appsecret_proof may be in the query string or the body.

  Success: 200 {\"events_received\": N, \"messages\": [], \"fbtrace_id\": \"...\"}.
  Failure: Graph's {\"error\": {message, type, code, error_subcode, is_transient,
  error_user_title, error_user_msg, fbtrace_id}}. One invalid event rejects the whole
  request. Checks, in order:
    no access token                      400  code 104
    token not in the token list          400  code 190
    wrong appsecret_proof                400  code 100 (GraphMethodException)
    pixel not in the pixel list          400  code 100 subcode 33
    body not JSON / data missing / not an array / empty / over 1000 events
                                         400  code 100
    body over the size limit             413  code 100
    missing event_name, event_time, action_source or user_data, unknown key at
    event level, wrong type              400  code 100
    event_time older than 7 days (62 for physical_store)
                                         400  code 100 subcode 2804003
    event_time in the future, website event without event_source_url or
    client_user_agent, malformed fbc/fbp, bad currency, bad IP
                                         400  code 100 subcode 2804014
    unhashed em/ph/fn/ln/ge/db/ct/st/zp/country
                                         400  code 100 subcode 2804016
    Purchase without value or currency   400  code 100 subcode 2804009
    too little customer information      400  code 100 subcode 2804050
    inconsistent LDU options             400  code 100 subcode 2804030
  Duplicates (same event_name + event_id for the pixel within 48 h) are accepted and
  counted in events_received, as Meta does, and reported in the stats. Events sent with
  test_event_code are kept apart (the Test Events tab).

INSPECTION API
  GET    /_emulator/events?pixel=ID[&kind=all|live|test][&test_event_code=C]
                              [&after_seq=N][&limit=N]
         every accepted event, in arrival order, as received, with seq, pixel_id,
         test_event_code, received_at and a duplicate flag
  GET    /_emulator/test_events?pixel=ID   only events sent with test_event_code
  DELETE /_emulator/events                 forget events, dedup history and counters
  GET    /_emulator/stats                  requests, events, rejections by code,
                                           duplicates, injected faults
  GET    /_emulator/faults                 the fault script and its counters
  POST   /_emulator/faults                 replace it: {\"faults\": [rule, ...]}
  DELETE /_emulator/faults                 remove every rule

FAULT INJECTION
  Rules are matched in order; each counts the requests that match its filters, lets
  the first after_requests through, then fires at most times times. Kinds:
    rate_limit      {code = 4|17|32|341|613|80000-80014, status?, subcode?,
                     regain_minutes?, business_id?}  4xx with the code in the body;
                     BUC codes add X-Business-Use-Case-Usage (minutes)
    http_status     {status = 500|503|..., code?, subcode?, message?, transient?}
    token_expired   {token?}           400 code 190 subcode 463
    latency         {ms}               process, then answer late
    timeout         {hold_ms?, process?}  hold the request (default: max_hold_ms),
                                       then close without an answer (process =
                                       true: record the events first, so a
                                       retry is a duplicate)
    drop_connection {process?}         close the socket without an answer
    random_failure  {fraction, seed, status?, code?}   reproducible from the seed
    raw             {status, body, content_type?}      a non-Graph answer

  Rules can also be replaced while the emulator runs (JSON; counters restart):
    curl -X POST localhost:4100/_emulator/faults \\
      -d '{\"faults\": [{\"times\": 1, \"fault\": {\"kind\": \"drop_connection\"}}]}'

CONFIG FILE (--config; TOML, or JSON when the name ends in .json)
  tokens = [..]                  accepted tokens (absent: any non-empty token)
  pixels = [..]                  existing pixels (absent: every pixel exists)
  app_secret = \"..\"              check appsecret_proof when one is sent
  require_appsecret_proof = false  also refuse requests without a proof
  max_stored_events = 1000000    events kept for the inspection API
  max_body_bytes = 33554432      larger bodies get 413
  max_future_skew_s = 60         how far in the future event_time may be
  dedup_window_s = 172800        deduplication window (48 h)
  max_hold_ms = 120000           upper bound (and default) of the timeout fault
  [[faults]] ...                 the fault script, see above

  Example:
    tokens = [\"sandbox-token\"]
    pixels = [\"1234567890\"]
    max_stored_events = 100000
    [[faults]]
    after_requests = 5
    times = 2
    fault = { kind = \"rate_limit\", code = 80004, regain_minutes = 3 }
    [[faults]]
    pixel = \"1234567890\"
    fault = { kind = \"random_failure\", fraction = 0.1, seed = 7, status = 503 }
";

/// Run a local emulator of Meta's Conversions API endpoint (no real token needed).
#[derive(Clone, clap::Args)]
#[command(after_long_help = EMULATE_LONG_HELP)]
pub struct EmulateArgs {
    /// Address to listen on (use port 0 for any free port).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN, env = "SLUICE_EMULATE_LISTEN")]
    pub listen: SocketAddr,

    /// TOML or JSON file with tokens, pixels, app secret, limits and the fault script.
    /// Options given on the command line override the file.
    #[arg(long, value_name = "FILE", env = "SLUICE_EMULATE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Accept this access token (repeatable; env: comma-separated). Without any
    /// token list, every non-empty token is accepted.
    #[arg(
        long = "token",
        value_name = "TOKEN",
        env = "SLUICE_EMULATE_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub tokens: Vec<String>,

    /// This pixel (dataset) exists (repeatable). Without any pixel list, every pixel
    /// exists; others get code 100 subcode 33.
    #[arg(long = "pixel", value_name = "ID", value_delimiter = ',')]
    pub pixels: Vec<String>,

    /// Keep at most N events for the inspection API; older ones are dropped and
    /// counted in the stats [default: 1000000].
    #[arg(long, value_name = "N")]
    pub max_events: Option<usize>,

    /// App secret: requests that send appsecret_proof must sign the token with it.
    #[arg(
        long,
        value_name = "SECRET",
        env = "SLUICE_EMULATE_APP_SECRET",
        hide_env_values = true
    )]
    pub app_secret: Option<String>,
}

/// Tokens and the app secret are counted or masked, never shown.
impl std::fmt::Debug for EmulateArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulateArgs")
            .field("listen", &self.listen)
            .field("config", &self.config)
            .field("tokens", &format!("<{} tokens>", self.tokens.len()))
            .field("pixels", &self.pixels)
            .field("max_events", &self.max_events)
            .field(
                "app_secret",
                &self.app_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl EmulateArgs {
    /// The configuration these arguments describe: the file (if any), then the
    /// command-line overrides.
    pub fn to_config(&self) -> Result<EmulatorConfig, EmulatorError> {
        let mut config = match &self.config {
            Some(path) => EmulatorConfig::load(path)?,
            None => EmulatorConfig::default(),
        };
        if !self.tokens.is_empty() {
            config.tokens = Some(self.tokens.clone());
        }
        if !self.pixels.is_empty() {
            config.pixels = Some(self.pixels.clone());
        }
        if let Some(n) = self.max_events {
            config.max_stored_events = n;
        }
        if let Some(secret) = &self.app_secret {
            config.app_secret = Some(secret.clone());
        }
        config.check()?;
        Ok(config)
    }
}

/// Runs `sluice emulate` until Ctrl-C or SIGTERM.
pub async fn run_emulate(args: EmulateArgs) -> Result<(), EmulatorError> {
    let config = args.to_config()?;
    let emulator = Emulator::new(config)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| EmulatorError::Bind {
            addr: args.listen,
            source,
        })?;
    let running = emulator.spawn(listener)?;
    eprintln!(
        "sluice emulate: Conversions API emulator on {base}  (POST {base}/v26.0/PIXEL_ID/events; inspect {base}/_emulator/events)",
        base = running.base_url()
    );
    wait_for_stop_signal().await;
    eprintln!("sluice emulate: stopping");
    running.shutdown().await;
    Ok(())
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command, FromArgMatches};

    fn command() -> Command {
        EmulateArgs::augment_args(Command::new("emulate"))
    }

    fn parse(argv: &[&str]) -> EmulateArgs {
        let matches = command().try_get_matches_from(argv).unwrap();
        EmulateArgs::from_arg_matches(&matches).unwrap()
    }

    #[test]
    fn long_help_explains_everything() {
        let help = command().render_long_help().to_string();
        for needle in [
            "--listen",
            "--config",
            "--token",
            "--pixel",
            "--max-events",
            "/_emulator/events",
            "/_emulator/stats",
            "/_emulator/faults",
            "rate_limit",
            "drop_connection",
            "random_failure",
            "2804003",
            "2804016",
            "test_event_code",
        ] {
            assert!(help.contains(needle), "help lacks {needle}:\n{help}");
        }
    }

    #[test]
    fn the_example_in_the_help_is_a_valid_config() {
        let example: String = EMULATE_LONG_HELP
            .split("  Example:\n")
            .nth(1)
            .unwrap()
            .lines()
            .map_while(|l| l.strip_prefix("    "))
            .map(|l| format!("{l}\n"))
            .collect();
        let config = EmulatorConfig::from_toml_str(&example).unwrap();
        assert_eq!(config.faults.len(), 2);
        assert_eq!(config.max_stored_events, 100_000);
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("emu.toml");
        std::fs::write(&path, "tokens = [\"file\"]\nmax_stored_events = 5\n").unwrap();
        let args = parse(&[
            "emulate",
            "--listen",
            "127.0.0.1:0",
            "--config",
            path.to_str().unwrap(),
            "--pixel",
            "1",
            "--pixel",
            "2",
        ]);
        let config = args.to_config().unwrap();
        assert_eq!(config.tokens, Some(vec!["file".to_owned()]));
        assert_eq!(config.pixels, Some(vec!["1".to_owned(), "2".to_owned()]));
        assert_eq!(config.max_stored_events, 5);
        let args = parse(&[
            "emulate",
            "--token",
            "tok-a",
            "--token",
            "tok-b",
            "--max-events",
            "9",
            "--app-secret",
            "shh-secret",
        ]);
        let debug = format!("{args:?}");
        assert!(
            !debug.contains("tok-a") && !debug.contains("shh-secret"),
            "{debug}"
        );
        let config = args.to_config().unwrap();
        assert_eq!(
            config.tokens,
            Some(vec!["tok-a".to_owned(), "tok-b".to_owned()])
        );
        assert_eq!(config.max_stored_events, 9);
        assert_eq!(args.listen.to_string(), DEFAULT_LISTEN);
    }
}
