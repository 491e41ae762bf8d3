//! Per-step costs of the CPU path on the SDK workload's own inputs (not a test; plain
//! timing loops, no extra dependencies):
//!
//! ```text
//! cargo bench -p sluice-bench --bench normalize [-- EVENTS]
//! ```
//!
//! For each hashed field: `hash_field` (normalize + SHA-256) over the raw values of
//! the first EVENTS generated events (default 20,000), with the event's country as
//! `hash_user_data` would set it; then the other steps of one event: generating the
//! raw inputs, filling the reused `ServerEvent` (both modes), serializing it. Each
//! figure is the best of 5 passes, in ns per value or per event.

use std::hint::black_box;
use std::time::Instant;

use sluice_bench::generator::{DEFAULT_SEED, RawEvent, XorShift32};
use sluice_bench::{BodyWriter, CpuPath, Mode};
use sluice_normalize::{CountryCode, NormalizeOptions, PiiField, hash_field, sha256};

const PASSES: usize = 5;

/// Reads one raw value of an event.
type Getter = fn(&RawEvent) -> &str;

fn best_ns_per(items: usize, mut pass: impl FnMut()) -> f64 {
    (0..PASSES)
        .map(|_| {
            let t = Instant::now();
            pass();
            t.elapsed().as_nanos() as f64 / items.max(1) as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let events: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    sluice_normalize::warm_up();
    let opts = NormalizeOptions::new(2026);

    let mut rng = XorShift32::new(DEFAULT_SEED);
    let raws: Vec<RawEvent> = (0..events as u64)
        .map(|n| {
            let mut r = RawEvent::default();
            r.fill(&mut rng, n);
            r
        })
        .collect();
    let countries: Vec<Option<CountryCode>> = raws
        .iter()
        .map(|r| CountryCode::parse(&r.country).ok())
        .collect();

    println!("sluice-bench normalize: {events} events of the SDK workload, best of {PASSES}");
    println!("{:<34} {:>10}", "step", "ns");
    let fields: [(PiiField, Getter); 9] = [
        (PiiField::Email, |r| &r.em),
        (PiiField::Phone, |r| &r.ph),
        (PiiField::FirstName, |r| &r.first_name),
        (PiiField::LastName, |r| &r.last_name),
        (PiiField::City, |r| &r.ct),
        (PiiField::State, |r| &r.st),
        (PiiField::Zip, |r| &r.zp),
        (PiiField::Country, |r| &r.country),
        (PiiField::ExternalId, |r| &r.external_id),
    ];
    let mut scratch = String::with_capacity(256);
    let mut total = 0.0;
    for (field, get) in fields {
        let ns = best_ns_per(events, || {
            for (raw, country) in raws.iter().zip(&countries) {
                let o = opts.with_event_country(*country);
                black_box(hash_field(field, black_box(get(raw)), &o, &mut scratch).ok());
            }
        });
        total += ns;
        println!("hash_field {:<23} {ns:>10.1}", field.as_str());
    }
    println!("{:<34} {total:>10.1}", "  sum of the 9 fields");
    // Phone by country: the calling code decides between the fast paths and the
    // `phonenumber` parser (10-digit national numbers are too long for AU and FR).
    for cc in ["US", "CA", "GB", "DE", "FR", "AU"] {
        let picked: Vec<(&RawEvent, Option<CountryCode>)> = raws
            .iter()
            .zip(countries.iter().copied())
            .filter(|(r, _)| r.country.trim().eq_ignore_ascii_case(cc))
            .collect();
        let ns = best_ns_per(picked.len(), || {
            for (raw, country) in &picked {
                let o = opts.with_event_country(*country);
                black_box(hash_field(PiiField::Phone, black_box(&raw.ph), &o, &mut scratch).ok());
            }
        });
        println!("  ph, country {cc:<20} {ns:>10.1}");
    }
    let ns = best_ns_per(events * 9, || {
        for raw in &raws {
            for v in [&raw.first_name, &raw.last_name, &raw.ct] {
                black_box(sha256(black_box(v)));
            }
            for v in [
                &raw.em,
                &raw.ph,
                &raw.zp,
                &raw.st,
                &raw.country,
                &raw.external_id,
            ] {
                black_box(sha256(black_box(v)));
            }
        }
    });
    println!("{:<34} {ns:>10.1}", "sha256 alone (raw value), per hash");

    let mut rng = XorShift32::new(DEFAULT_SEED);
    let mut raw = RawEvent::default();
    let ns = best_ns_per(events, || {
        for n in 0..events as u64 {
            raw.fill(&mut rng, n);
            black_box(&raw);
        }
    });
    println!("{:<34} {ns:>10.1}", "generate raw event");

    for mode in [Mode::Fields, Mode::UserData] {
        let mut path = CpuPath::new(mode, opts);
        let ns = best_ns_per(events, || {
            for raw in &raws {
                black_box(path.fill(raw));
            }
        });
        println!(
            "{:<34} {ns:>10.1}",
            format!("fill ServerEvent ({})", mode.as_str())
        );
    }

    let mut path = CpuPath::new(Mode::Fields, opts);
    let mut body = BodyWriter::new("bench-token", 2 << 20);
    let mut filled = Vec::with_capacity(1000);
    for raw in raws.iter().take(1000) {
        filled.push(path.fill(raw).clone());
    }
    let ns = best_ns_per(filled.len() * 20, || {
        for _ in 0..20 {
            body.begin();
            for ev in &filled {
                body.push(ev);
            }
            black_box(body.finish().ok());
        }
    });
    println!("{:<34} {ns:>10.1}", "serialize one event (serde_json)");
}
