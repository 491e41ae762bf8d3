//! `sluice consent explain|audit`: the consent policy's decisions, for humans.
//!
//! `explain` runs the same decision the gateway runs for one event and prints
//! which rule decided and why; nothing is counted, stored or sent. `audit` lists
//! the decisions the gateway recorded (one row per event, no personal data).

use super::dlq::StoreArgs;
use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;
use sluice_consent::{ExplainInput, Policy, Source};
use sluice_server::config::Config;
use sluice_store::{AuditEntry, AuditFilter, MAX_DLQ_LIMIT, Store};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// Show which policy rule decides an event, why, and what would change it.
    ///
    /// EVENT.json is an event as posted to /v1/events (consent, gdpr,
    /// gdpr_consent, gpc fields included; the region then comes from its raw
    /// user_data.country / st), or a wrapper that also sets what the request
    /// would carry:
    ///
    ///   {"event": {...}, "source": "browser", "region": {"country": "US", "state": "CA"},
    ///    "cookie": "OptanonConsent=...", "sec_gpc": "1", "store": {"ad_user_data": "granted"}}
    ///
    /// ("store" may also be "not_found", "timeout", "invalid" or "unavailable".)
    /// Uses the policy of --config ([consent] policy / policy_file), or --policy,
    /// or the built-in `default` preset. Exits 0 whatever the outcome.
    #[command(verbatim_doc_comment)]
    Explain(ExplainArgs),
    /// List recorded consent decisions (time, pixel, event, source, signals, rule, outcome).
    ///
    /// Rows come oldest first from --since; page on with --after-id. The gateway
    /// records one row per event, dropped or not, without personal data, and
    /// deletes rows older than consent.audit_retention_days.
    Audit(AuditArgs),
}

/// `--source`: the endpoint an event came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    /// `/v1/events` (shops, CRMs, webhooks).
    Backend,
    /// `/collect` (sluice.js in the browser).
    Browser,
    /// The Graph-compatible endpoint.
    Graph,
    /// `sluice import`.
    Import,
}

impl From<SourceArg> for Source {
    fn from(s: SourceArg) -> Source {
        match s {
            SourceArg::Backend => Source::Backend,
            SourceArg::Browser => Source::Browser,
            SourceArg::Graph => Source::Graph,
            SourceArg::Import => Source::Import,
        }
    }
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The event file (JSON), or `-` for standard input.
    #[arg(value_name = "EVENT.json")]
    pub event: PathBuf,
    /// The server's configuration file; only its [consent] section is read.
    #[arg(long, short, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// A policy file (TOML) to try instead of the configured policy.
    #[arg(long, value_name = "POLICY.toml")]
    pub policy: Option<PathBuf>,
    /// The endpoint the event came through, unless the file says ("source").
    #[arg(long, value_enum, default_value_t = SourceArg::Backend)]
    pub source: SourceArg,
    /// Print the decision as JSON (outcome, rule_id, consent, reasons, opt_out, ldu).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only decisions at or after this time: a date (2026-11-01, UTC), a
    /// date and time (2026-11-01T08:30:00Z), or an age (30m, 1h, 7d, 2w).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only this outcome.
    #[arg(long, value_parser = ["deliver", "deliver_ldu", "deliver_without_identifiers", "drop"])]
    pub outcome: Option<String>,
    /// Only this pixel.
    #[arg(long)]
    pub pixel: Option<String>,
    /// Only decisions made by this rule (e.g. eea-uk-ch-opt-in, default_deny).
    #[arg(long)]
    pub rule: Option<String>,
    /// At most this many rows.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Only rows after this id (the last id of the previous page).
    #[arg(long, value_name = "ID")]
    pub after_id: Option<i64>,
    /// JSON lines (the full audit record with its id) instead of a table.
    #[arg(long, conflicts_with = "summary")]
    pub json: bool,
    /// Count every matching decision by rule and outcome instead of listing them.
    #[arg(long)]
    pub summary: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run(command: ConsentCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConsentCommand::Explain(args) => explain(args),
        ConsentCommand::Audit(args) => super::runtime()?.block_on(audit(args)),
    }
}

// === explain ===

fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let policy = load_policy(args.config.as_deref(), args.policy.as_deref())?;
    let text = if args.event.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the event from standard input")?;
        text
    } else {
        std::fs::read_to_string(&args.event)
            .with_context(|| format!("reading {}", args.event.display()))?
    };
    let input = ExplainInput::from_json(&text, args.source.into())?;
    let explanation = sluice_consent::explain(&policy, &input);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&explanation.decision)?);
    } else {
        print!("{}", explanation.text);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--policy`, else the [consent] section of `--config` (with `SLUICE_CONSENT__*`
/// overrides), else the default preset. The rest of the configuration (pixels,
/// tokens) is not needed to explain a decision and is not read.
fn load_policy(config: Option<&Path>, policy: Option<&Path>) -> anyhow::Result<Policy> {
    if let Some(path) = policy {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return Policy::from_toml_str(&text).with_context(|| format!("policy {}", path.display()));
    }
    let mut consent_only = toml::Table::new();
    let origin = config.map(|p| p.display().to_string());
    if let Some(path) = config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut table: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if let Some(consent) = table.remove("consent") {
            consent_only.insert("consent".to_owned(), consent);
        }
    }
    let env = std::env::vars().filter(|(k, _)| k.starts_with("SLUICE_CONSENT__"));
    let config = Config::from_toml_with_env(
        &toml::to_string(&consent_only).context("re-encoding [consent]")?,
        origin.as_deref(),
        env,
    )?;
    Ok(config.consent.load_policy()?)
}

// === audit ===

async fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let now = now_ms();
    let since_ms = args
        .since
        .as_deref()
        .map(|s| parse_since(s, now))
        .transpose()?;
    check_since(since_ms, now)?;
    let store = super::dlq::open(&args.store).await?;
    let filter = AuditFilter {
        since_ms,
        pixel_id: args.pixel.clone(),
        outcome: args.outcome.clone(),
        rule_id: args.rule.clone(),
        limit: None,
        after_id: args.after_id,
    };
    if args.summary {
        let counts = summarize(&*store, filter).await?;
        print_summary(&counts);
        store.close().await?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = fetch(&*store, filter, args.limit).await?;
    store.close().await?;
    if args.json {
        for row in &rows {
            println!("{}", serde_json::to_string(&row_json(row))?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>8}  {:<24} {:<16} {:<8} {:<16} {:<24} {:<12} {:<24} signals",
        "id", "time (UTC)", "pixel", "source", "event", "event_id", "outcome", "rule"
    );
    for row in &rows {
        let r = &row.row;
        let signals = record_signals(r.record_json.as_str());
        println!(
            "{:>8}  {:<24} {:<16} {:<8} {:<16} {:<24} {:<12} {:<24} {}",
            row.id,
            format_ms(r.time_ms),
            r.pixel_id,
            r.source,
            r.event_name,
            r.event_id.as_deref().unwrap_or("-"),
            r.outcome,
            r.rule_id,
            if signals.is_empty() {
                "(none)".to_owned()
            } else {
                signals.join(" ")
            }
        );
    }
    match rows.last() {
        Some(last) if rows.len() as u32 == args.limit => eprintln!(
            "{} decision(s); more may follow: --after-id {}",
            rows.len(),
            last.id
        ),
        _ => eprintln!("{} decision(s)", rows.len()),
    }
    Ok(ExitCode::SUCCESS)
}

/// Up to `limit` rows, paging through the store's bounded pages.
async fn fetch(
    store: &dyn Store,
    mut filter: AuditFilter,
    limit: u32,
) -> anyhow::Result<Vec<AuditEntry>> {
    let mut out = Vec::new();
    while (out.len() as u32) < limit {
        filter.limit = Some((limit - out.len() as u32).min(MAX_DLQ_LIMIT));
        let page = store.audit_list(&filter).await?;
        let Some(last) = page.last() else { break };
        filter.after_id = Some(last.id);
        let full = page.len() as u32 == filter.effective_limit();
        out.extend(page);
        if !full {
            break;
        }
    }
    Ok(out)
}

/// Decisions per (rule, outcome) over every matching row.
async fn summarize(
    store: &dyn Store,
    mut filter: AuditFilter,
) -> anyhow::Result<BTreeMap<(String, String), u64>> {
    let mut counts = BTreeMap::new();
    filter.limit = Some(MAX_DLQ_LIMIT);
    loop {
        let page = store.audit_list(&filter).await?;
        for e in &page {
            *counts
                .entry((e.row.rule_id.clone(), e.row.outcome.clone()))
                .or_insert(0) += 1;
        }
        match page.last() {
            Some(last) if page.len() as u32 == MAX_DLQ_LIMIT => filter.after_id = Some(last.id),
            _ => return Ok(counts),
        }
    }
}

fn print_summary(counts: &BTreeMap<(String, String), u64>) {
    println!("{:<28} {:<28} {:>10}", "rule", "outcome", "decisions");
    for ((rule, outcome), n) in counts {
        println!("{rule:<28} {outcome:<28} {n:>10}");
    }
    println!(
        "{:<28} {:<28} {:>10}",
        "total",
        "",
        counts.values().sum::<u64>()
    );
}

/// The stored record with its id; the row's columns if the record is unreadable.
fn row_json(entry: &AuditEntry) -> Value {
    match serde_json::from_str::<Value>(&entry.row.record_json) {
        Ok(Value::Object(mut record)) => {
            record.insert("id".to_owned(), Value::from(entry.id));
            Value::Object(record)
        }
        _ => serde_json::to_value(entry).unwrap_or(Value::Null),
    }
}

fn record_signals(record_json: &str) -> Vec<String> {
    serde_json::from_str::<Value>(record_json)
        .ok()
        .and_then(|v| {
            v.get("signals_seen")?.as_array().map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
        })
        .unwrap_or_default()
}

// === time ===

fn now_ms() -> i64 {
    sluice_core::time::unix_ms()
}

/// `--since`: an age (`90s`, `30m`, `1h`, `7d`, `2w`) before `now_ms`, a UTC date
/// (`2026-11-01`) or a UTC date and time (`2026-11-01T08:30`, `…:15`, `…Z`).
pub fn parse_since(text: &str, now_ms: i64) -> anyhow::Result<i64> {
    let t = text.trim();
    let bad = || {
        anyhow::anyhow!(
            "--since {t:?}: expected an age such as 1h or 7d, a date such as 2026-11-01, \
             or a UTC time such as 2026-11-01T08:30:00Z"
        )
    };
    if let Some(unit) = t.chars().last().filter(|c| c.is_ascii_alphabetic()) {
        let digits = &t[..t.len() - 1];
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let n: i64 = digits.parse().map_err(|_| bad())?;
            let unit_ms: i64 = match unit {
                's' => 1_000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                'w' => 7 * 86_400_000,
                _ => return Err(bad()),
            };
            return Ok(now_ms.saturating_sub(n.saturating_mul(unit_ms)));
        }
    }
    let (date, time) = match t.split_once(['T', ' ']) {
        Some((d, rest)) => (d, Some(rest.strip_suffix('Z').unwrap_or(rest))),
        None => (t, None),
    };
    let num = |s: &str, len: usize| -> anyhow::Result<i64> {
        if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let (year, month, day) = (num(y, 4)?, num(m, 2)?, num(d, 2)?);
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return Err(bad());
    }
    let mut secs = days_from_civil(year, month, day) * 86_400;
    if let Some(time) = time {
        let parts: Vec<&str> = time.split(':').collect();
        let (h, mi, s) = match parts.as_slice() {
            [h, mi] => (num(h, 2)?, num(mi, 2)?, 0),
            [h, mi, s] => (num(h, 2)?, num(mi, 2)?, num(s, 2)?),
            _ => return Err(bad()),
        };
        if h > 23 || mi > 59 || s > 59 {
            return Err(bad());
        }
        secs += h * 3600 + mi * 60 + s;
    }
    Ok(secs * 1000)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Count from 0000-03-01 so that the leap day ends each 4/100/400-year cycle.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01 (inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2026-11-01T08:30:00.123Z`.
pub fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60,
        ms.rem_euclid(1000)
    )
}

/// Refuses a `--since` in the future, which would list nothing.
pub fn check_since(since_ms: Option<i64>, now_ms: i64) -> anyhow::Result<()> {
    if since_ms.is_some_and(|s| s > now_ms + 60_000) {
        bail!("--since is in the future");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_793_491_200_000; // 2026-11-01T00:00:00Z

    #[test]
    fn since_accepts_ages_dates_and_times() {
        assert_eq!(parse_since("1h", NOW).unwrap(), NOW - 3_600_000);
        assert_eq!(parse_since("7d", NOW).unwrap(), NOW - 7 * 86_400_000);
        assert_eq!(parse_since("30m", NOW).unwrap(), NOW - 1_800_000);
        assert_eq!(parse_since("2026-11-01", 0).unwrap(), NOW);
        assert_eq!(
            parse_since("2026-11-01T08:30:15Z", 0).unwrap(),
            NOW + (8 * 3600 + 30 * 60 + 15) * 1000
        );
        assert_eq!(
            parse_since("2026-11-01T08:30", 0).unwrap(),
            NOW + (8 * 3600 + 30 * 60) * 1000
        );
        assert_eq!(parse_since("1970-01-01", 0).unwrap(), 0);
        assert_eq!(parse_since("2024-02-29", 0).unwrap(), 1_709_164_800_000);
        for bad in [
            "",
            "1y",
            "h",
            "-1h",
            "2026-13-01",
            "2026-02-30",
            "2025-02-29",
            "26-11-01",
            "2026-11-01T25:00",
            "yesterday",
        ] {
            assert!(parse_since(bad, NOW).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn times_print_in_utc_and_round_trip() {
        assert_eq!(format_ms(NOW + 123), "2026-11-01T00:00:00.123Z");
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        for days in [-1000, 0, 59, 60, 365, 10_957, 20_000, 60_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn future_since_is_refused() {
        assert!(check_since(Some(NOW + 3_600_000), NOW).is_err());
        assert!(check_since(Some(NOW), NOW).is_ok());
        assert!(check_since(None, NOW).is_ok());
    }
}
