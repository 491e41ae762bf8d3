//! `sluice-loadgen`: posts realistic CAPI bodies to a local HTTP endpoint and
//! prints one JSON line of results (requests/s, events/s, latency percentiles).
//!
//! ```text
//! sluice-loadgen --url http://127.0.0.1:8080/v1/events -c 64 -d 15
//! sluice-loadgen --url ... -c 64 -d 20 --rate 5000        # fixed rate, latency from schedule
//! sluice-loadgen --url ... -c 8 -d 60 --batch 100          # {"data": [100 events]}
//! sluice-loadgen --measure-generation 200000               # cost of building bodies
//! ```

use clap::Parser;
use serde_json::json;
use sluice_loadgen::body::{BodySpec, measure_generation};
use sluice_loadgen::run::{LoadConfig, Target, run};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Parser)]
#[command(
    name = "sluice-loadgen",
    about = "HTTP load generator for sluice (loopback targets only)"
)]
struct Args {
    /// Target URL (http://, loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080/v1/events")]
    url: String,
    /// Concurrent keep-alive connections.
    #[arg(short = 'c', long, default_value_t = 64)]
    connections: usize,
    /// Measured duration, seconds.
    #[arg(short = 'd', long, default_value_t = 15.0)]
    duration: f64,
    /// Warm-up before measuring, seconds (load runs, nothing is counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Runtime worker threads of the generator.
    #[arg(short = 't', long, default_value_t = 2)]
    threads: usize,
    /// Total target rate in requests/s (fixed-rate mode); closed loop without it.
    #[arg(long)]
    rate: Option<f64>,
    /// Events per request: 1 = a bare event object, N > 1 = {"pixel_id", "data": [N events]}.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Pixel id put on the events (or the envelope).
    #[arg(long, default_value = "1234567890123456")]
    pixel: String,
    /// Stop after this many events were sent (the duration still bounds the run).
    #[arg(long)]
    max_events: Option<u64>,
    /// Per-request timeout, seconds (counted as an error).
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// A label copied into the output.
    #[arg(long, default_value = "")]
    label: String,
    /// Only measure what building N bodies costs on one thread, then exit.
    #[arg(long, value_name = "N")]
    measure_generation: Option<u64>,
    /// Print one body (as it would be sent) and exit.
    #[arg(long)]
    print_body: bool,
}

/// CPU seconds (user + system) used by this process so far.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, in clock ticks (100 per second here).
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

fn main() -> ExitCode {
    let args = Args::parse();
    let run_tag = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let spec = BodySpec {
        events_per_request: args.batch.max(1),
        pixel_id: args.pixel.clone(),
        id_prefix: format!("lg{run_tag:x}-"),
    };
    if args.print_body {
        let mut writer = sluice_loadgen::body::BodyWriter::new(spec, run_tag);
        let mut buf = Vec::new();
        writer.write(&mut buf, 0, sluice_loadgen::body::now_s());
        println!("{}", String::from_utf8_lossy(&buf));
        return ExitCode::SUCCESS;
    }
    if let Some(n) = args.measure_generation {
        let cost = measure_generation(&spec, n.max(1));
        let line = json!({
            "measure": "generation",
            "events_per_request": spec.events_per_request,
            "bodies": cost.bodies,
            "mean_body_bytes": cost.mean_bytes.round(),
            "ns_per_body": cost.ns_per_body.round(),
            "bodies_per_core_s": (1e9 / cost.ns_per_body).round(),
        });
        println!("{line}");
        return ExitCode::SUCCESS;
    }
    let target = match Target::parse(&args.url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if args.connections == 0 || args.duration <= 0.0 || args.duration > 3600.0 {
        eprintln!("error: need at least one connection and a duration in (0, 3600] s");
        return ExitCode::from(2);
    }
    let config = LoadConfig {
        target,
        connections: args.connections,
        warmup: Duration::from_secs_f64(args.warmup.max(0.0)),
        duration: Duration::from_secs_f64(args.duration),
        rate: args.rate.filter(|r| *r > 0.0),
        max_events: args.max_events,
        request_timeout: Duration::from_secs_f64(args.timeout.max(0.001)),
        body: spec,
        seed: run_tag,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let cpu_before = cpu_seconds();
    let wall = std::time::Instant::now();
    let report = runtime.block_on(run(config.clone()));
    let cpu = cpu_seconds() - cpu_before;
    let wall = wall.elapsed().as_secs_f64();
    let per_second = &report.per_second_accepted;
    // The last second may be partial when max_events stopped the run.
    let full: Vec<u64> = if report.measured_s.fract() > 0.0 && per_second.len() > 1 {
        per_second[..per_second.len() - 1].to_vec()
    } else {
        per_second.clone()
    };
    let non_2xx: serde_json::Map<String, serde_json::Value> = report
        .non_2xx
        .iter()
        .map(|(s, n)| (s.to_string(), json!(n)))
        .collect();
    let round2 = |v: f64| (v * 100.0).round() / 100.0;
    let line = json!({
        "label": args.label,
        "url": args.url,
        "connections": config.connections,
        "threads": args.threads,
        "events_per_request": config.body.events_per_request,
        "target_rps": config.rate,
        "measured_s": round2(report.measured_s),
        "requests": report.requests,
        "ok": report.ok,
        "non_2xx": non_2xx,
        "errors": report.errors,
        "rps": report.rps().round(),
        "events_sent": report.events_sent,
        "events_sent_total": report.total_events_sent,
        "events_accepted": report.events_accepted,
        "eps_accepted": report.events_accepted_per_s().round(),
        "eps_min_1s": full.iter().min().copied().unwrap_or(0),
        "eps_max_1s": full.iter().max().copied().unwrap_or(0),
        "mean_body_bytes": (report.body_bytes as f64 / report.requests.max(1) as f64).round(),
        "p50_ms": round2(report.percentile_ms(0.50)),
        "p90_ms": round2(report.percentile_ms(0.90)),
        "p99_ms": round2(report.percentile_ms(0.99)),
        "p999_ms": round2(report.percentile_ms(0.999)),
        "max_ms": round2(report.latency.max() as f64 / 1000.0),
        "mean_ms": round2(report.latency.mean() / 1000.0),
        "client_cpu_cores": round2(cpu / wall.max(1e-9)),
    });
    eprintln!(
        "{}: {:.0} req/s, {:.0} events/s accepted, p50 {:.2} ms, p99 {:.2} ms, {} errors, non-2xx {:?}, client {:.2} cores",
        if args.label.is_empty() {
            "load"
        } else {
            &args.label
        },
        report.rps(),
        report.events_accepted_per_s(),
        report.percentile_ms(0.5),
        report.percentile_ms(0.99),
        report.errors,
        report.non_2xx,
        cpu / wall.max(1e-9)
    );
    println!("{line}");
    ExitCode::SUCCESS
}
