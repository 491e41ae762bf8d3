//! `sluice dedup report`: where events came from and how they were
//! deduplicated, from the dedup ledger (the same report as `GET /admin/dedup`).
//!
//! Opens the same store as the running server (read-only queries). The ledger
//! remembers each event for the dedup window (48 h by default), so the report
//! reaches back at most that far.

use clap::{Args, Subcommand};
use sluice_server::config::Config;
use sluice_server::routes::admin::parse_period_ms;
use sluice_store::{DedupReport, DedupReportQuery, Store};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use super::dlq::StoreArgs;

#[derive(Debug, Subcommand)]
pub enum DedupCommand {
    /// Per pixel and event name: events seen from the browser only, the server
    /// only, both (deduplicated), merged; duplicates suppressed; and the
    /// suspicious cases (one order id under several event ids, one event id
    /// under several event names, events without an event id).
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// How far back: 90s, 30m, 24h, 2d (at most the dedup window).
    #[arg(long, default_value = "24h", value_parser = parse_period_ms)]
    pub since: i64,
    /// Only this pixel.
    #[arg(long)]
    pub pixel: Option<String>,
    /// At most this many entries per list of suspicious ids.
    #[arg(long, default_value_t = sluice_store::DEFAULT_REPORT_EXAMPLES)]
    pub limit: u32,
    /// The report as one JSON object (the shape of GET /admin/dedup).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run(command: DedupCommand) -> anyhow::Result<ExitCode> {
    let DedupCommand::Report(args) = command;
    super::runtime()?.block_on(report(args))
}

async fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let merge_window_secs = Config::load(args.store.config.as_deref())
        .map(|c| c.dedup.merge_window_secs)
        .unwrap_or(0);
    let store = super::dlq::open(&args.store).await?.into_dyn();
    let now_ms = now_ms();
    let query = DedupReportQuery {
        pixel_id: args.pixel,
        since_ms: Some(now_ms.saturating_sub(args.since)),
        max_examples: Some(args.limit),
    };
    let report = store.dedup_report(&query, now_ms).await?;
    store.close().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report, merge_window_secs));
    }
    Ok(ExitCode::SUCCESS)
}

/// Whatever `dlq::open` hands out, as the trait object.
trait IntoDynStore {
    fn into_dyn(self) -> Arc<dyn Store>;
}

impl IntoDynStore for Arc<dyn Store> {
    fn into_dyn(self) -> Arc<dyn Store> {
        self
    }
}

impl IntoDynStore for sluice_store::SqliteStore {
    fn into_dyn(self) -> Arc<dyn Store> {
        Arc::new(self)
    }
}

fn now_ms() -> i64 {
    sluice_core::time::unix_ms()
}

/// The report as text: a table, then the suspicious cases.
pub fn render(report: &DedupReport, merge_window_secs: u64) -> String {
    let mut out = String::new();
    let merge = match merge_window_secs {
        0 => "identity merge off".to_owned(),
        s => format!("identity merge window {s} s"),
    };
    let _ = writeln!(
        out,
        "dedup report {} .. {} ({merge})\n",
        utc(report.since_ms),
        utc(report.until_ms)
    );
    if report.rows.is_empty() {
        let _ = writeln!(out, "no events in this period");
    } else {
        let pixel_w = report
            .rows
            .iter()
            .map(|r| r.pixel_id.len())
            .max()
            .unwrap_or(0)
            .max(5);
        let name_w = report
            .rows
            .iter()
            .map(|r| r.event_name.chars().count())
            .max()
            .unwrap_or(0)
            .max(10);
        let _ = writeln!(
            out,
            "{:<pixel_w$}  {:<name_w$}  {:>7}  {:>7}  {:>7}  {:>7}  {:>7}  {:>10}  {:>11}",
            "pixel",
            "event_name",
            "events",
            "browser",
            "server",
            "both",
            "merged",
            "duplicates",
            "no event_id"
        );
        for r in &report.rows {
            let _ = writeln!(
                out,
                "{:<pixel_w$}  {:<name_w$}  {:>7}  {:>7}  {:>7}  {:>7}  {:>7}  {:>10}  {:>11}",
                r.pixel_id,
                r.event_name,
                r.events,
                r.browser_only,
                r.server_only,
                r.both,
                r.merged,
                r.duplicates,
                r.without_event_id
            );
        }
        let _ = writeln!(
            out,
            "\nbrowser/server: seen from that side only; both: from both, one sent, the other \
             suppressed;\nmerged: from both, merged into one event; duplicates: copies suppressed \
             (all sources)."
        );
    }

    let _ = writeln!(out, "\nsuspicious:");
    let mut clean = true;
    if !report.order_ids_with_several_event_ids.is_empty() {
        clean = false;
        let _ = writeln!(
            out,
            "  the same order_id under different event_ids (not deduplicated: use \
             event_id \"order-<order_id>\" on both sides):"
        );
        for c in &report.order_ids_with_several_event_ids {
            let more = if c.event_id_count > c.event_ids.len() as u64 {
                ", …"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    {} {} order_id {:?}: {} event_ids: {}{more}",
                c.pixel_id,
                c.event_name,
                c.order_id,
                c.event_id_count,
                c.event_ids.join(", ")
            );
        }
    }
    if !report.event_ids_with_several_event_names.is_empty() {
        clean = false;
        let _ = writeln!(
            out,
            "  the same event_id under different event_names (Meta deduplicates only equal names):"
        );
        for c in &report.event_ids_with_several_event_names {
            let _ = writeln!(
                out,
                "    {} event_id {:?}: {}",
                c.pixel_id,
                c.event_id,
                c.event_names.join(", ")
            );
        }
    }
    let missing: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.without_event_id > 0)
        .collect();
    if !missing.is_empty() {
        clean = false;
        let _ = writeln!(
            out,
            "  events without an event_id (the gateway made one; a random one matches no other copy):"
        );
        for r in missing {
            let _ = writeln!(
                out,
                "    {} {}: {} ({} random, {} from order_id)",
                r.pixel_id,
                r.event_name,
                r.without_event_id,
                r.random_event_id,
                r.without_event_id - r.random_event_id
            );
        }
    }
    if clean {
        let _ = writeln!(out, "  none");
    }
    if report.truncated {
        let _ = writeln!(out, "  (lists cut; raise --limit to see more)");
    }
    out
}

/// `2026-11-28 13:05:09 UTC` from Unix ms (proleptic Gregorian calendar).
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_store::{DedupReportRow, EventIdConflict, OrderIdConflict};

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn renders_rows_and_suspicious_cases() {
        let report = DedupReport {
            since_ms: 1_700_000_000_000,
            until_ms: 1_700_086_400_000,
            rows: vec![DedupReportRow {
                pixel_id: "1234567890123456".into(),
                event_name: "Purchase".into(),
                events: 10,
                browser_only: 2,
                server_only: 1,
                both: 3,
                merged: 4,
                duplicates: 7,
                without_event_id: 1,
                random_event_id: 1,
            }],
            order_ids_with_several_event_ids: vec![OrderIdConflict {
                pixel_id: "1234567890123456".into(),
                event_name: "Purchase".into(),
                order_id: "7731".into(),
                event_id_count: 2,
                event_ids: vec!["3f2a".into(), "order-7731".into()],
            }],
            event_ids_with_several_event_names: vec![EventIdConflict {
                pixel_id: "1234567890123456".into(),
                event_id: "order-7731".into(),
                event_names: vec!["Purchase".into(), "purchase".into()],
            }],
            truncated: false,
        };
        let text = render(&report, 30);
        assert!(text.contains("identity merge window 30 s"), "{text}");
        assert!(text.contains("2023-11-14 22:13:20 UTC"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("1234567890123456  Purchase")
                    && l.split_whitespace().collect::<Vec<_>>()[2..]
                        == ["10", "2", "1", "3", "4", "7", "1"]),
            "{text}"
        );
        assert!(
            text.contains("order_id \"7731\": 2 event_ids: 3f2a, order-7731"),
            "{text}"
        );
        assert!(
            text.contains("event_id \"order-7731\": Purchase, purchase"),
            "{text}"
        );
        assert!(
            text.contains("Purchase: 1 (1 random, 0 from order_id)"),
            "{text}"
        );
        let empty = render(&DedupReport::default(), 0);
        assert!(
            empty.contains("no events") && empty.contains("none"),
            "{empty}"
        );
    }
}
