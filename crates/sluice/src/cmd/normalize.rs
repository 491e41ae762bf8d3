//! `sluice normalize` and `sluice hash`: the normalizer from the command line.
//!
//! `--jsonl` streams `{"field":…,"value":…,"country":…}` lines from stdin to one
//! output line each, in order, reusing every buffer: millions of lines go
//! through without an allocation per line beyond the JSON parse.

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use sluice_normalize::{
    CountryCode, FieldHash, HexDigest, NormalizeOptions, Normalized, PiiField, hash_field,
    normalize_into, sha256_hex,
};
use std::borrow::Cow;
use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct NormalizeArgs {
    /// The user_data key: em, ph, fn, ln, ge, db, ct, st, zp, country, external_id,
    /// f5first, f5last, fi, dobd, dobm, doby.
    #[arg(long, required_unless_present = "jsonl")]
    pub field: Option<String>,
    /// The event's country (ISO 3166 alpha-2): decides national phone numbers,
    /// US states and ZIP codes.
    #[arg(long)]
    pub country: Option<String>,
    /// Region for national phone numbers when no --country is given.
    #[arg(long, env = "SLUICE_NORMALIZE__DEFAULT_REGION")]
    pub default_region: Option<String>,
    /// Read {"field":…, "value":…, "country":…} lines on stdin; write one
    /// {"normalized":…, "hash":…} or {"error":…} line per input, in order.
    #[arg(long, conflicts_with_all = ["field", "value"])]
    pub jsonl: bool,
    /// The value to normalize.
    #[arg(required_unless_present = "jsonl")]
    pub value: Option<String>,
}

#[derive(Debug, Args)]
pub struct HashArgs {
    /// The user_data key (see `sluice normalize --help`).
    #[arg(long)]
    pub field: String,
    /// The event's country (ISO 3166 alpha-2).
    #[arg(long)]
    pub country: Option<String>,
    /// Region for national phone numbers when no --country is given.
    #[arg(long, env = "SLUICE_NORMALIZE__DEFAULT_REGION")]
    pub default_region: Option<String>,
    /// The value to hash.
    pub value: String,
}

fn parse_field(name: &str) -> anyhow::Result<PiiField> {
    name.parse().map_err(|_| {
        anyhow::anyhow!(
            "unknown field {name:?}; use one of: {}",
            PiiField::ALL
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn parse_region(flag: &str, code: Option<&str>) -> anyhow::Result<Option<CountryCode>> {
    code.map(|c| {
        CountryCode::parse(c)
            .map_err(|_| anyhow::anyhow!("{flag} {c:?} is not an ISO 3166 alpha-2 country code"))
    })
    .transpose()
}

fn options(
    country: Option<&str>,
    default_region: Option<&str>,
) -> anyhow::Result<NormalizeOptions> {
    Ok(NormalizeOptions::from_system_clock()
        .with_default_region(parse_region("--default-region", default_region)?)
        .with_event_country(parse_region("--country", country)?))
}

pub fn run_normalize(args: NormalizeArgs) -> anyhow::Result<ExitCode> {
    let opts = options(args.country.as_deref(), args.default_region.as_deref())?;
    if args.jsonl {
        return run_jsonl(opts);
    }
    let field = parse_field(args.field.as_deref().unwrap_or_default())?;
    let value = args.value.unwrap_or_default();
    let mut out = String::new();
    match normalize_into(field, &value, &opts, &mut out) {
        Ok(Normalized::Text(t)) => println!("{t}"),
        Ok(Normalized::Sha256(d)) => println!("{}", HexDigest::new(&d)),
        Ok(Normalized::Md5(d)) => println!("{}", HexDigest::new(&d)),
        Ok(Normalized::Verbatim(v)) => println!("{v}"),
        Ok(Normalized::Empty) => {
            eprintln!(
                "{field}: the value is empty after normalization; sluice drops it (nothing is hashed)"
            );
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            eprintln!("{field}: cannot normalize: {e} ({})", e.code());
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_hash(args: HashArgs) -> anyhow::Result<ExitCode> {
    let opts = options(args.country.as_deref(), args.default_region.as_deref())?;
    let field = parse_field(&args.field)?;
    let mut scratch = String::new();
    match hash_field(field, &args.value, &opts, &mut scratch) {
        Ok(FieldHash::Empty) => {
            eprintln!(
                "{field}: the value is empty after normalization; sluice sends nothing for it"
            );
            Ok(ExitCode::from(1))
        }
        Ok(hash) => {
            let mut line = String::new();
            hash.write_wire(&mut line);
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{field}: cannot normalize: {e} ({})", e.code());
            Ok(ExitCode::from(1))
        }
    }
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    field: Cow<'a, str>,
    #[serde(borrow)]
    value: Cow<'a, str>,
    #[serde(borrow, default)]
    country: Option<Cow<'a, str>>,
}

fn run_jsonl(base: NormalizeOptions) -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut output = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut line = String::new();
    let mut normalized = String::new();
    let mut wire = String::new();
    let mut failures = 0u64;
    loop {
        line.clear();
        if input.read_line(&mut line).context("reading stdin")? == 0 {
            break;
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        match normalize_line(text, &base, &mut normalized, &mut wire) {
            Ok(true) => {
                output.write_all(b"{\"normalized\":")?;
                serde_json::to_writer(&mut output, normalized.as_str())?;
                output.write_all(b",\"hash\":")?;
                serde_json::to_writer(&mut output, wire.as_str())?;
                output.write_all(b"}\n")?;
            }
            Ok(false) => {
                output.write_all(b"{\"normalized\":\"\",\"hash\":null}\n")?;
            }
            Err(message) => {
                failures += 1;
                output.write_all(b"{\"error\":")?;
                serde_json::to_writer(&mut output, &message)?;
                output.write_all(b"}\n")?;
            }
        }
    }
    output.flush()?;
    if failures > 0 {
        eprintln!("{failures} line(s) could not be normalized");
    }
    Ok(ExitCode::SUCCESS)
}

/// One input line → the normalized text in `normalized` and what goes on the
/// wire in `wire` (the hash, or a passthrough value as is); `false` when the
/// value normalizes to nothing. Errors are messages without the value.
fn normalize_line(
    text: &str,
    base: &NormalizeOptions,
    normalized: &mut String,
    wire: &mut String,
) -> Result<bool, String> {
    let parsed: Line<'_> = serde_json::from_str(text).map_err(|e| {
        format!(
            "invalid_line: expected {{\"field\",\"value\",\"country\"?}} (column {})",
            e.column()
        )
    })?;
    let field: PiiField = parsed
        .field
        .parse()
        .map_err(|_| "unknown_field: not a hashed user_data key".to_owned())?;
    let opts = match parsed.country.as_deref() {
        Some(c) => base
            .with_event_country(Some(CountryCode::parse(c).map_err(|_| {
                "invalid_country: country is not ISO 3166 alpha-2".to_owned()
            })?)),
        None => *base,
    };
    wire.clear();
    match normalize_into(field, &parsed.value, &opts, normalized) {
        Ok(Normalized::Text(t)) => wire.push_str(sha256_hex(t).as_str()),
        Ok(Normalized::Sha256(d)) => wire.push_str(HexDigest::new(&d).as_str()),
        Ok(Normalized::Md5(d)) => wire.push_str(HexDigest::new(&d).as_str()),
        Ok(Normalized::Verbatim(v)) => wire.push_str(v),
        Ok(Normalized::Empty) => return Ok(false),
        Err(e) => return Err(format!("{}: {e}", e.code())),
    }
    if normalized.is_empty() {
        // Passthrough values have no separate normalized form.
        normalized.push_str(wire);
    }
    Ok(true)
}
