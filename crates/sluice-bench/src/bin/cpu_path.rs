//! `cpu-path`: the SDK benchmark workload (bench/sdk/README.md) through sluice.
//!
//! ```text
//! cpu-path [EVENTS] [--mode fields|user-data] [--serde]
//!                                                timed run; prints one JSON line
//!                                                (--serde: serde_json instead of
//!                                                ServerEvent::write_json)
//! cpu-path --verify [EVENTS]                     generator check values + event 0
//! cpu-path --dump-raw K                          first K raw records (as workload.py)
//! cpu-path --dump-events K                       first K events as sluice sends them
//! cpu-path --compare-sdk FILE                    compare with `workload.* --dump-events`
//! ```
//!
//! Environment (as the SDK scripts): `SDK_BENCH_EVENTS` (default 100000),
//! `SDK_BENCH_SEED` (default 0x2545F491), `SDK_BENCH_BATCH` (1000),
//! `SDK_BENCH_DIGEST=1` (adds `body_sha256`; costs time). `SLUICE_BENCH_MODE`
//! sets the mode (`fields`, the default, or `user-data`).
//!
//! The timed region starts at the first statement of `main` and includes loading the
//! phone metadata (`sluice_normalize::warm_up`), as the SDK scripts include their
//! imports.

use std::hint::black_box;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Instant;

use serde_json::Value;
use sha2::{Digest, Sha256};
use sluice_bench::generator::{DEFAULT_SEED, RawEvent, XorShift32};
use sluice_bench::{BodyWriter, CpuPath, Mode, proc_stats};
use sluice_core::{HashedKey, UserDataValue};
use sluice_normalize::{CountryCode, NormalizeOptions, Normalized, PiiField, normalize_into};

const ACCESS_TOKEN: &str = "bench-token";
/// Dates of birth are not in the workload; the year only bounds them.
const CURRENT_YEAR: u16 = 2026;

fn main() -> ExitCode {
    let t0 = Instant::now();
    match run(t0) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cpu-path: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Config {
    events: u64,
    seed: u32,
    batch: u64,
    digest: bool,
    mode: Mode,
    /// Serialize through serde_json instead of `ServerEvent::write_json`.
    serde: bool,
}

/// An environment knob; unset or empty means the default.
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("not a number: {s:?}"))
}

fn run(t0: Instant) -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seed = parse_u64(&env_or("SDK_BENCH_SEED", "0"))?;
    let seed = u32::try_from(seed).map_err(|_| "SDK_BENCH_SEED must fit in 32 bits")?;
    let mut cfg = Config {
        events: parse_u64(&env_or("SDK_BENCH_EVENTS", "100000"))?,
        seed: if seed == 0 { DEFAULT_SEED } else { seed },
        batch: parse_u64(&env_or("SDK_BENCH_BATCH", "1000"))?.max(1),
        digest: env_or("SDK_BENCH_DIGEST", "") == "1",
        mode: Mode::parse(&env_or("SLUICE_BENCH_MODE", "fields"))
            .ok_or("SLUICE_BENCH_MODE must be fields or user-data")?,
        serde: false,
    };
    let mut command = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--mode" => {
                let m = it.next().ok_or("--mode needs a value")?;
                cfg.mode = Mode::parse(m).ok_or("--mode must be fields or user-data")?;
            }
            "--serde" => cfg.serde = true,
            "--verify" => command = Some(("verify", None)),
            "--dump-raw" | "--dump-events" | "--compare-sdk" => {
                command = Some((arg.as_str(), it.next().cloned()));
            }
            "-h" | "--help" => {
                println!(
                    "usage: cpu-path [EVENTS] [--mode fields|user-data] [--serde] | --verify [EVENTS] | \
                     --dump-raw K | --dump-events K | --compare-sdk FILE"
                );
                return Ok(());
            }
            other => cfg.events = parse_u64(other)?,
        }
    }
    match command {
        None => timed_run(&cfg, t0),
        Some(("verify", _)) => verify(&cfg),
        Some(("--dump-raw", k)) => dump(&cfg, parse_u64(k.as_deref().unwrap_or("5"))?, false),
        Some(("--dump-events", k)) => dump(&cfg, parse_u64(k.as_deref().unwrap_or("5"))?, true),
        Some((_, file)) => compare_sdk(&cfg, &file.ok_or("--compare-sdk needs a file")?),
    }
}

fn options() -> NormalizeOptions {
    NormalizeOptions::new(CURRENT_YEAR)
}

fn timed_run(cfg: &Config, t0: Instant) -> Result<(), String> {
    sluice_normalize::warm_up();
    let startup = t0.elapsed().as_secs_f64();
    let mut rng = XorShift32::new(cfg.seed);
    let mut raw = RawEvent::default();
    let mut path = CpuPath::new(cfg.mode, options());
    let mut body = BodyWriter::new(ACCESS_TOKEN, 2 << 20);
    let mut digest = cfg.digest.then(Sha256::new);
    let (mut n, mut bytes, mut requests, mut hashed) = (0u64, 0u64, 0u64, 0u64);
    while n < cfg.events {
        let size = cfg.batch.min(cfg.events - n);
        body.begin();
        for i in 0..size {
            raw.fill(&mut rng, n + i);
            let event = path.fill(&raw);
            hashed += HashedKey::ALL
                .iter()
                .map(|k| event.user_data.hashed(*k).values.len() as u64)
                .sum::<u64>();
            if cfg.serde {
                body.push_serde(event).map_err(|e| e.to_string())?;
            } else {
                body.push(event);
            }
        }
        n += size;
        let out = body.finish().map_err(|e| e.to_string())?;
        bytes += out.len() as u64;
        requests += 1;
        if let Some(d) = digest.as_mut() {
            d.update(out);
        }
        black_box(out);
    }
    let seconds = t0.elapsed().as_secs_f64();
    let line = RunLine {
        r#impl: "sluice",
        events: cfg.events,
        seconds: round(seconds, 4),
        startup_seconds: round(startup, 4),
        events_per_sec: round(cfg.events as f64 / seconds, 1),
        bytes,
        max_rss_kb: proc_stats::max_rss_kb(),
        cpu_seconds: proc_stats::cpu_seconds().map(|s| round(s, 4)),
        requests,
        mode: cfg.mode.as_str(),
        writer: if cfg.serde { "serde" } else { "write_json" },
        hashes_per_event: round(hashed as f64 / cfg.events.max(1) as f64, 3),
        rejected_values: path.rejected_values,
        rejected_currencies: path.rejected_currencies,
        seed: cfg.seed,
        body_sha256: digest.map(|d| const_hex::encode(d.finalize())),
    };
    let line = serde_json::to_string(&line).map_err(|e| e.to_string())?;
    println!("{line}");
    Ok(())
}

/// The one output line, in the SDK scripts' key order.
#[derive(serde::Serialize)]
struct RunLine {
    r#impl: &'static str,
    events: u64,
    seconds: f64,
    /// Of `seconds`: start-up (`warm_up`: loading the phone metadata), before event 0.
    startup_seconds: f64,
    events_per_sec: f64,
    bytes: u64,
    max_rss_kb: Option<u64>,
    cpu_seconds: Option<f64>,
    requests: u64,
    mode: &'static str,
    /// How events were serialized: `write_json` (default) or `serde`.
    writer: &'static str,
    /// Hashed `user_data` values per event (9 when nothing is refused).
    hashes_per_event: f64,
    rejected_values: u64,
    rejected_currencies: u64,
    seed: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_sha256: Option<String>,
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

fn dump(cfg: &Config, k: u64, events: bool) -> Result<(), String> {
    let mut rng = XorShift32::new(cfg.seed);
    let mut raw = RawEvent::default();
    let mut path = CpuPath::new(cfg.mode, options());
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for n in 0..k {
        raw.fill(&mut rng, n);
        let line = if events {
            serde_json::to_string(path.fill(&raw))
        } else {
            serde_json::to_string(&raw)
        }
        .map_err(|e| e.to_string())?;
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// --verify: the README's check values
// ---------------------------------------------------------------------------

const FIRST_OUTPUTS: [u32; 5] = [
    3_777_279_546,
    2_342_155_435,
    1_692_513_196,
    1_525_286,
    4_071_472_047,
];
const STATE_AFTER_EVENT_0: u32 = 767_136_652;
const STATE_AFTER_100K: u32 = 2_377_677_632;
const VALUE_CENTS_100K: u64 = 15_082_217_626;
const RAW_SHA256_100K: &str = "59dec737bba813f9cf5ee217234d1ecded78f794bd7a7f2b3a88eb522b8fa97a";

/// Event 0: (key, SDK plaintext, SDK hash, sluice plaintext). sluice's plaintext
/// differs only for `ln` (names drop ASCII punctuation: the param builder's rule).
const EVENT_0: [(HashedKey, &str, &str, &str); 8] = [
    (
        HashedKey::Em,
        "user.0@example0.com",
        "efcd3d94fb55529a58b2d42a26fa1ac567cb38addc3e83ccf4c17f48ee2ad60e",
        "user.0@example0.com",
    ),
    (
        HashedKey::Ph,
        "12176612433",
        "455e3ec2037ff3722d8db08c9d382c2a187f64a07c14d9f251118486a8811cd8",
        "12176612433",
    ),
    (
        HashedKey::Fn,
        "karen",
        "904294d8c54b1c63e40832fa1d95bcde534b310df6d42882ce4baf28f3e0184a",
        "karen",
    ),
    (
        HashedKey::Ln,
        "o'brien",
        "65b87174be3b1b122e2b0929f0b84888637d31a4a83bb96a860bcff411f5e668",
        "obrien",
    ),
    (
        HashedKey::Ct,
        "toronto",
        "141256c5c1405ee342242e7937a27643cc87da3a54a0fb5cf6a703015ba9b0a5",
        "toronto",
    ),
    (
        HashedKey::St,
        "on",
        "b8d31e852725afb1e26d53bab6095b2bff1749c9275be13ed1c05a56ed31ec09",
        "on",
    ),
    (
        HashedKey::Zp,
        "40766",
        "e2572ccfd78a79a9f1b5dfbf0ab1db990d87d1605147759bd8f6a6a2a1f2064c",
        "40766",
    ),
    (
        HashedKey::Country,
        "ca",
        "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126",
        "ca",
    ),
];

const RAW_EVENT_0: &str = r#"{"n":0,"event_name":"Purchase","event_time":1795860000,"event_id":"evt-0","event_source_url":"https://shop0.example.com/checkout?order=0","action_source":"website","em":"  USER.0@EXAMPLE0.COM ","ph":"+1 (217) 661-2433","fn":"  Karen ","ln":"  O'Brien ","ct":"toronto","st":"on","zp":"40766","country":"CA","external_id":"ext-0","client_ip_address":"2001:db8:922::9d31","client_user_agent":"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0","fbc":"fb.1.1795810033701.IwAR78d703d9","fbp":"fb.1.1793492209297.1667760697","currency":"EUR","value_cents":79740,"contents":[{"id":"SKU-75246","quantity":2,"item_price_cents":27196},{"id":"SKU-85602","quantity":3,"item_price_cents":432},{"id":"SKU-48195","quantity":1,"item_price_cents":24052}],"order_id":"order-0"}"#;

fn first_hex(event_value: &UserDataValue) -> Option<String> {
    event_value.hashed_text()
}

/// Check the generator against the README and event 0's hashes; `Err` lists every
/// mismatch. The whole-run values are only checked for the default seed and
/// `EVENTS == 100000`.
fn verify(cfg: &Config) -> Result<(), String> {
    let mut failures = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            failures.push(what);
        }
    };
    let mut rng = XorShift32::new(DEFAULT_SEED);
    let first: Vec<u32> = (0..5).map(|_| rng.next()).collect();
    check(first == FIRST_OUTPUTS, format!("first outputs {first:?}"));

    let mut rng = XorShift32::new(cfg.seed);
    let mut raw = RawEvent::default();
    let mut path = CpuPath::new(cfg.mode, options());
    let mut raw_sha = Sha256::new();
    let mut value_cents = 0u64;
    let mut line = Vec::with_capacity(1024);
    let full = cfg.seed == DEFAULT_SEED && cfg.events == 100_000;
    let mut lines = Vec::new();
    for n in 0..cfg.events.max(1) {
        raw.fill(&mut rng, n);
        value_cents += raw.value_cents;
        line.clear();
        serde_json::to_writer(&mut line, &raw).map_err(|e| e.to_string())?;
        line.push(b'\n');
        raw_sha.update(&line);
        if n == 0 && cfg.seed == DEFAULT_SEED {
            check(
                rng.state() == STATE_AFTER_EVENT_0,
                format!("state after event 0: {}", rng.state()),
            );
            check(
                line.strip_suffix(b"\n") == Some(RAW_EVENT_0.as_bytes()),
                format!("raw event 0: {}", String::from_utf8_lossy(&line)),
            );
            let event = path.fill(&raw);
            for (key, sdk_text, sdk_hash, sluice_text) in EVENT_0 {
                let ours = event
                    .user_data
                    .hashed(key)
                    .values
                    .first()
                    .and_then(first_hex);
                let want = sluice_normalize::sha256_hex(sluice_text);
                check(
                    sluice_normalize::sha256_hex(sdk_text).as_str() == sdk_hash,
                    format!("README hash of {key} {sdk_text:?}"),
                );
                check(
                    ours.as_deref() == Some(want.as_str()),
                    format!("event 0 {key}: {ours:?}, want sha256({sluice_text:?})"),
                );
                lines.push(format!(
                    "  {:<8} SDK {:<22} sluice {:<22} {}",
                    key.as_str(),
                    format!("{sdk_text:?}"),
                    format!("{sluice_text:?}"),
                    if sluice_text == sdk_text {
                        "same hash"
                    } else {
                        "differs (documented rule)"
                    }
                ));
            }
            let ext = event
                .user_data
                .external_id
                .values
                .first()
                .and_then(first_hex);
            check(
                ext.as_deref() == Some(sluice_normalize::sha256_hex("ext-0").as_str()),
                format!("event 0 external_id {ext:?}"),
            );
            lines.push(
                "  external_id SDK sends \"ext-0\" unhashed; sluice sends sha256(\"ext-0\")"
                    .to_owned(),
            );
        }
    }
    let raw_hex = const_hex::encode(raw_sha.finalize());
    if full {
        check(
            rng.state() == STATE_AFTER_100K,
            format!("state after 100,000 events: {}", rng.state()),
        );
        check(
            value_cents == VALUE_CENTS_100K,
            format!("sum of value_cents: {value_cents}"),
        );
        check(
            raw_hex == RAW_SHA256_100K,
            format!("SHA-256 of the raw records: {raw_hex}"),
        );
    }
    if !failures.is_empty() {
        return Err(format!("verify FAILED:\n  {}", failures.join("\n  ")));
    }
    println!(
        "verify ok: first outputs, state after event 0{}, raw event 0, event 0 hashes",
        if full {
            ", state after 100,000 events, sum of value_cents, SHA-256 of the raw records"
        } else {
            " (whole-run values need the default seed and 100000 events)"
        }
    );
    println!(
        "  state={} value_cents={value_cents} raw_sha256={raw_hex}",
        rng.state()
    );
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// --compare-sdk: sluice's output against an SDK's `--dump-events K` output
// ---------------------------------------------------------------------------

/// The SDKs' documented rules (bench/sdk/README.md), to show which plaintext the
/// SDK hashed when it differs from sluice's.
fn sdk_plaintext(key: HashedKey, raw: &str) -> String {
    let t = raw.trim().to_lowercase();
    match key {
        HashedKey::Ct | HashedKey::St => t
            .chars()
            .filter(|c| !(c.is_ascii_digit() || c.is_whitespace() || ".-()".contains(*c)))
            .collect(),
        HashedKey::Zp => t
            .split('-')
            .next()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect(),
        HashedKey::Ph => {
            let d: String = t.chars().filter(|c| !" -()".contains(*c)).collect();
            let d = d.strip_prefix('+').unwrap_or(&d);
            let d = d.strip_prefix('0').unwrap_or(d);
            d.strip_prefix('0').unwrap_or(d).to_owned()
        }
        _ => t,
    }
}

#[derive(Default)]
struct FieldStats {
    same: u64,
    differ: u64,
    rejected: u64,
    examples: Vec<String>,
}

fn compare_sdk(cfg: &Config, file: &str) -> Result<(), String> {
    let f = std::fs::File::open(file).map_err(|e| format!("{file}: {e}"))?;
    let keys = [
        HashedKey::Em,
        HashedKey::Ph,
        HashedKey::Fn,
        HashedKey::Ln,
        HashedKey::Ct,
        HashedKey::St,
        HashedKey::Zp,
        HashedKey::Country,
    ];
    let mut stats: Vec<(&str, FieldStats)> = keys
        .iter()
        .map(|k| (k.as_str(), FieldStats::default()))
        .chain(
            [
                "external_id",
                "client_ip_address/ua/fbc/fbp",
                "event fields",
                "currency (ignoring case)",
                "value/contents/order_id",
            ]
            .map(|k| (k, FieldStats::default())),
        )
        .collect();
    let mut rng = XorShift32::new(cfg.seed);
    let mut raw = RawEvent::default();
    let mut path = CpuPath::new(cfg.mode, options());
    let mut scratch = String::new();
    let mut events = 0u64;
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        let sdk: Value = serde_json::from_str(&line).map_err(|e| format!("line {n}: {e}"))?;
        raw.fill(&mut rng, n as u64);
        let ours = serde_json::to_value(path.fill(&raw)).map_err(|e| e.to_string())?;
        events += 1;
        let country = CountryCode::parse(&raw.country).ok();
        let opts = options().with_event_country(country);
        let ud_sdk = &sdk["user_data"];
        let ud_ours = &ours["user_data"];
        for (i, key) in keys.iter().enumerate() {
            let st = &mut stats[i].1;
            let theirs = ud_sdk[key.as_str()][0].as_str();
            let mine = ud_ours[key.as_str()][0].as_str();
            let raw_value = match key {
                HashedKey::Em => &raw.em,
                HashedKey::Ph => &raw.ph,
                HashedKey::Fn => &raw.first_name,
                HashedKey::Ln => &raw.last_name,
                HashedKey::Ct => &raw.ct,
                HashedKey::St => &raw.st,
                HashedKey::Zp => &raw.zp,
                _ => &raw.country,
            };
            if mine.is_some() && mine == theirs {
                st.same += 1;
                continue;
            }
            if mine.is_none() {
                st.rejected += 1;
            } else {
                st.differ += 1;
            }
            if st.examples.len() < 4 {
                let guess = sdk_plaintext(*key, raw_value);
                let sdk_text = if theirs == Some(sluice_normalize::sha256_hex(&guess).as_str()) {
                    format!("{guess:?}")
                } else {
                    "?".to_owned()
                };
                let field = PiiField::ALL
                    .into_iter()
                    .find(|f| f.as_str() == key.as_str())
                    .unwrap_or(PiiField::Email);
                let ours_text = match normalize_into(field, raw_value, &opts, &mut scratch) {
                    Ok(Normalized::Text(t)) => format!("{t:?}"),
                    Ok(other) => format!("{other:?}"),
                    Err(e) => format!("refused: {}", e.code()),
                };
                st.examples.push(format!(
                    "event {n} ({}): raw {raw_value:?} -> SDK {sdk_text}, sluice {ours_text}",
                    raw.country.trim()
                ));
            }
        }
        // external_id: the SDKs send it as is; sluice hashes it.
        let st = &mut stats[keys.len()].1;
        let sdk_ext = ud_sdk["external_id"][0].as_str().unwrap_or("");
        let want = sluice_normalize::sha256_hex(&sdk_ext.to_lowercase());
        if ud_ours["external_id"][0].as_str() == Some(want.as_str()) {
            st.same += 1;
        } else {
            st.differ += 1;
        }
        let mut same_or = |slot: usize, ok: bool, what: String| {
            let st = &mut stats[keys.len() + slot].1;
            if ok {
                st.same += 1;
            } else {
                st.differ += 1;
                if st.examples.len() < 4 {
                    st.examples.push(format!("event {n}: {what}"));
                }
            }
        };
        let unhashed = ["client_ip_address", "client_user_agent", "fbc", "fbp"];
        let bad: Vec<&str> = unhashed
            .into_iter()
            .filter(|k| ud_sdk[k] != ud_ours[k])
            .collect();
        same_or(1, bad.is_empty(), format!("{bad:?}"));
        let top = [
            "event_name",
            "event_time",
            "event_id",
            "event_source_url",
            "action_source",
        ];
        let bad: Vec<&str> = top.into_iter().filter(|k| sdk[k] != ours[k]).collect();
        same_or(2, bad.is_empty(), format!("{bad:?}"));
        let (cd_sdk, cd_ours) = (&sdk["custom_data"], &ours["custom_data"]);
        let cur = (cd_sdk["currency"].as_str(), cd_ours["currency"].as_str());
        same_or(
            3,
            cur.0
                .zip(cur.1)
                .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b)),
            format!(
                "raw {:?}: SDK {:?}, sluice {:?}",
                raw.currency, cur.0, cur.1
            ),
        );
        let num_eq = |a: &Value, b: &Value| a.as_f64().is_some() && a.as_f64() == b.as_f64();
        let contents_ok = (0..3).all(|i| {
            let (a, b) = (&cd_sdk["contents"][i], &cd_ours["contents"][i]);
            a["id"] == b["id"]
                && num_eq(&a["quantity"], &b["quantity"])
                && num_eq(&a["item_price"], &b["item_price"])
        });
        same_or(
            4,
            num_eq(&cd_sdk["value"], &cd_ours["value"])
                && contents_ok
                && cd_sdk["order_id"] == cd_ours["order_id"],
            "value/contents/order_id".to_owned(),
        );
    }
    println!("compared {events} events with {file}");
    println!(
        "{:<30} {:>8} {:>8} {:>16}",
        "field", "same", "differ", "sluice refused"
    );
    for (name, st) in &stats {
        let label = if *name == "external_id" {
            "external_id (sluice hashes)"
        } else {
            name
        };
        println!(
            "{label:<30} {:>8} {:>8} {:>16}",
            st.same, st.differ, st.rejected
        );
        for e in &st.examples {
            println!("    {e}");
        }
    }
    Ok(())
}
