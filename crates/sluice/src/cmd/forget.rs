//! `sluice forget`: delete what sluice holds about one person.
//!
//! The queue stores no raw personal data: each event carries the lowercase-hex
//! SHA-256 of its normalized `em`, `ph` and `external_id` values as *user keys*.
//! This command normalizes and hashes the values it is given exactly as the
//! gateway does (sluice-normalize, the same field rules, the configured
//! `normalize.default_region`, `--country` standing in for the event's
//! `country`), and deletes every queued event, dead letter and dedup-ledger
//! entry carrying one of those keys. It prints counts, never the values.

use super::dlq::StoreArgs;
use anyhow::{Context, bail};
use clap::{ArgGroup, Args};
use serde_json::json;
use sluice_normalize::{CountryCode, FieldHash, NormalizeOptions, PiiField, hash_field};
use sluice_server::config::Config;
use std::io::BufRead;
use std::process::ExitCode;

/// Removes every queued, dead-lettered or dedup-ledger entry for a person.
#[derive(Args)]
#[command(group(
    ArgGroup::new("person")
        .required(true)
        .multiple(true)
        .args(["email", "phone", "external_id"])
))]
pub struct ForgetArgs {
    /// The person's e-mail address (repeatable). `-` reads it from standard
    /// input, which keeps it out of shell history and process lists.
    #[arg(long, value_name = "ADDRESS")]
    pub email: Vec<String>,
    /// The person's phone number (repeatable; `-` reads standard input). National
    /// numbers need --country or normalize.default_region, as in events.
    #[arg(long, value_name = "NUMBER")]
    pub phone: Vec<String>,
    /// The person's external_id, your own user id (repeatable; `-` reads
    /// standard input).
    #[arg(long = "external-id", value_name = "ID")]
    pub external_id: Vec<String>,
    /// The person's country (ISO 3166 alpha-2, e.g. US): how a national phone
    /// number is read, as the event's own `country` is at ingest.
    #[arg(long, value_name = "CC")]
    pub country: Option<String>,
    /// Print the counts as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Shows how many values were given, never the values.
impl std::fmt::Debug for ForgetArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForgetArgs")
            .field("email", &self.email.len())
            .field("phone", &self.phone.len())
            .field("external_id", &self.external_id.len())
            .field("country", &self.country)
            .field("json", &self.json)
            .field("store", &self.store)
            .finish()
    }
}

/// The user key (lowercase-hex SHA-256) the gateway stores for one value of
/// `field`, hashed with `opts` exactly as at ingest. The error never contains
/// the value.
pub fn person_key(field: PiiField, value: &str, opts: &NormalizeOptions) -> Result<String, String> {
    let mut scratch = String::new();
    match hash_field(field, value, opts, &mut scratch) {
        Ok(FieldHash::Sha256(digest)) => Ok(sluice_normalize::HexDigest::new(&digest)
            .as_str()
            .to_owned()),
        Ok(FieldHash::Empty) => Err("is empty once normalized".to_owned()),
        Ok(FieldHash::Md5(_) | FieldHash::Verbatim(_)) => {
            Err("is an MD5 or param-builder value; sluice keys people by SHA-256 only".to_owned())
        }
        Err(e) => Err(format!("cannot be normalized: {e} ({})", e.code())),
    }
}

/// The normalization options of the gateway for this person.
fn options(config: &Config, country: Option<&str>) -> anyhow::Result<NormalizeOptions> {
    let default_region = config
        .normalize
        .default_region
        .as_deref()
        .and_then(|r| r.parse::<CountryCode>().ok());
    let country = country
        .map(|c| {
            CountryCode::parse(c).map_err(|_| {
                anyhow::anyhow!("--country {c:?} is not an ISO 3166 alpha-2 country code")
            })
        })
        .transpose()?;
    Ok(NormalizeOptions::from_system_clock()
        .with_default_region(default_region)
        .with_event_country(country))
}

pub fn run(args: ForgetArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(args.store.config.as_deref())?;
    if let Some(dir) = &args.store.data_dir {
        config.data_dir = dir.clone();
    }
    let opts = options(&config, args.country.as_deref())?;

    let mut stdin_lines = std::io::stdin().lock().lines();
    let mut keys = Vec::new();
    let mut kinds = Vec::new();
    for (flag, kind, field, values) in [
        ("--email", "e-mail address", PiiField::Email, &args.email),
        ("--phone", "phone number", PiiField::Phone, &args.phone),
        (
            "--external-id",
            "external id",
            PiiField::ExternalId,
            &args.external_id,
        ),
    ] {
        for (i, value) in values.iter().enumerate() {
            let value = if value == "-" {
                match stdin_lines.next() {
                    Some(line) => line.context("reading standard input")?,
                    None => bail!("{flag} -: standard input has no more lines"),
                }
            } else {
                value.clone()
            };
            let key = person_key(field, &value, &opts)
                .map_err(|why| anyhow::anyhow!("{flag} #{}: the value {why}", i + 1))?;
            keys.push(key);
            kinds.push(kind);
        }
    }
    keys.sort_unstable();
    keys.dedup();

    let report = super::runtime()?.block_on(async {
        let store = super::dlq::open(&args.store).await?;
        let report = store.forget(&keys).await?;
        store.close().await?;
        anyhow::Ok(report)
    })?;

    if args.json {
        println!(
            "{}",
            json!({
                "person_keys": keys.len(),
                "queued": report.queued,
                "dead_letters": report.dead_letters,
                "ledger": report.ledger,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut given: Vec<String> = Vec::new();
    for kind in ["e-mail address", "phone number", "external id"] {
        let n = kinds.iter().filter(|k| **k == kind).count();
        if n > 0 {
            given.push(format!("{n} {kind}{}", if n == 1 { "" } else { "(s)" }));
        }
    }
    println!("forgot the person with {}:", given.join(", "));
    println!("  queued events removed         {:>8}", report.queued);
    println!("  dead letters removed          {:>8}", report.dead_letters);
    println!("  dedup-ledger entries removed  {:>8}", report.ledger);
    println!(
        "delivered events are not kept (deleted when Meta acknowledged them); consent-audit \
         rows hold no personal data. An event a delivery worker had already leased may still \
         be sent once."
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_pipelines_hashes() {
        let opts = NormalizeOptions::new(2026);
        // sluice-normalize's documented example.
        assert_eq!(
            person_key(PiiField::Email, " John_Smith@Gmail.com ", &opts).unwrap(),
            "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
        );
        // A national number is read for --country, like the event's country.
        let us = opts.with_event_country(CountryCode::from_alpha2("us"));
        assert_eq!(
            person_key(PiiField::Phone, "(650) 555-1212", &us).unwrap(),
            person_key(PiiField::Phone, "+1 650 555 1212", &opts).unwrap()
        );
        let err = person_key(PiiField::Email, "jane.secret@", &opts).unwrap_err();
        assert!(!err.contains("jane"), "{err}");
        assert!(person_key(PiiField::ExternalId, "   ", &opts).is_err());
    }

    #[test]
    fn debug_does_not_show_the_values() {
        let args = ForgetArgs {
            email: vec!["jane@example.com".into()],
            phone: vec![],
            external_id: vec!["u-1".into()],
            country: None,
            json: false,
            store: StoreArgs {
                config: None,
                data_dir: None,
            },
        };
        let dbg = format!("{args:?}");
        assert!(!dbg.contains("jane") && !dbg.contains("u-1"), "{dbg}");
    }
}
