//! The load loop: N HTTP/1.1 keep-alive connections posting bodies from
//! [`crate::body`], for a warm-up and then a fixed measured duration.
//!
//! - Closed loop (no `rate`): each connection sends its next request as soon
//!   as the previous answer has been read; latency is send → last byte of
//!   the answer.
//! - Fixed rate: the total rate is split evenly over the connections, each
//!   with its own schedule (staggered). Latency is measured from the
//!   *scheduled* send time, so a server that stalls is charged for the
//!   requests that queued up behind the stall (no coordinated omission).
//!
//! Only requests that complete inside the measured window count. Targets
//! must be loopback addresses: this tool never loads anything else.

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::{BodySpec, BodyWriter, now_s};

/// Where to send: a loopback `http://host:port/path`.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
    pub path: String,
}

impl Target {
    /// Parses `http://127.0.0.1:8080/v1/events`; refuses non-loopback hosts.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = host
            .to_socket_addrs()
            .map_err(|e| format!("{host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}: no address"))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "{host} resolves to {}, which is not a loopback address; this tool only loads local servers",
                addr.ip()
            ));
        }
        Ok(Target {
            addr,
            host: host.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// One run's settings.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub target: Target,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Total requests per second over all connections; `None` = closed loop.
    pub rate: Option<f64>,
    /// Stop after this many events have been sent (the duration still bounds the run).
    pub max_events: Option<u64>,
    /// A request that takes longer is counted as an error and its connection replaced.
    pub request_timeout: Duration,
    pub body: BodySpec,
    pub seed: u64,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Seconds of the measured window actually used (shorter when
    /// `max_events` stopped the run early).
    pub measured_s: f64,
    pub requests: u64,
    pub ok: u64,
    pub non_2xx: BTreeMap<u16, u64>,
    pub errors: u64,
    pub events_sent: u64,
    /// Sum of `"accepted": N` in 2xx answers.
    pub events_accepted: u64,
    pub body_bytes: u64,
    /// Latency in microseconds (2xx and non-2xx answers; not errors).
    pub latency: Histogram<u64>,
    /// Accepted events per second of the measured window.
    pub per_second_accepted: Vec<u64>,
    /// Requests sent during the warm-up and the measured window, all counted.
    pub total_events_sent: u64,
}

impl Report {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.measured_s.max(1e-9)
    }

    pub fn events_accepted_per_s(&self) -> f64 {
        self.events_accepted as f64 / self.measured_s.max(1e-9)
    }

    pub fn percentile_ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

struct Shared {
    config: LoadConfig,
    next_event: AtomicU64,
    stop: AtomicBool,
    stopped_at: std::sync::Mutex<Option<Instant>>,
    measure_start: Instant,
    end: Instant,
    per_second: Vec<AtomicU64>,
}

struct ConnStats {
    requests: u64,
    ok: u64,
    non_2xx: BTreeMap<u16, u64>,
    errors: u64,
    events_sent: u64,
    total_events_sent: u64,
    events_accepted: u64,
    body_bytes: u64,
    latency: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    // 1 us .. 120 s, 3 significant digits.
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> std::io::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// The `N` of `"accepted":N` (or `"accepted": N`) in an answer, if any.
pub fn accepted_count(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"accepted\":";
    let at = body.windows(KEY.len()).position(|w| w == KEY)?;
    let digits = body[at + KEY.len()..]
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| b.is_ascii_digit());
    let mut n: u64 = 0;
    let mut any = false;
    for d in digits {
        n = n.saturating_mul(10).saturating_add(u64::from(d - b'0'));
        any = true;
    }
    any.then_some(n)
}

async fn connection(index: usize, shared: Arc<Shared>) -> ConnStats {
    let config = &shared.config;
    let per_request = config.body.events_per_request.max(1) as u64;
    let mut stats = ConnStats {
        requests: 0,
        ok: 0,
        non_2xx: BTreeMap::new(),
        errors: 0,
        events_sent: 0,
        total_events_sent: 0,
        events_accepted: 0,
        body_bytes: 0,
        latency: histogram(),
    };
    let mut writer = BodyWriter::new(
        config.body.clone(),
        config.seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let mut buf = Vec::with_capacity(2048 * per_request as usize);
    let started = Instant::now();
    let interval = config
        .rate
        .map(|r| Duration::from_secs_f64(config.connections as f64 / r.max(1e-3)));
    let offset = interval.map(|i| i.mul_f64(index as f64 / config.connections as f64));
    let mut sender: Option<Sender> = None;
    let mut scheduled_k: u64 = 0;
    loop {
        let scheduled = match (interval, offset) {
            (Some(i), Some(o)) => {
                let at = started + o + i.mul_f64(scheduled_k as f64);
                scheduled_k += 1;
                Some(at)
            }
            _ => None,
        };
        if let Some(at) = scheduled {
            if at >= shared.end {
                break;
            }
            tokio::time::sleep_until(at).await;
        }
        if shared.stop.load(Ordering::Relaxed) || Instant::now() >= shared.end {
            break;
        }
        let s = match sender.take() {
            Some(s) => s,
            None => match connect(config.target.addr).await {
                Ok(s) => s,
                Err(_) => {
                    stats.errors += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let first = shared.next_event.fetch_add(per_request, Ordering::Relaxed);
        if let Some(max) = config.max_events
            && first >= max
        {
            if !shared.stop.swap(true, Ordering::Relaxed)
                && let Ok(mut at) = shared.stopped_at.lock()
            {
                *at = Some(Instant::now());
            }
            break;
        }
        writer.write(&mut buf, first, now_s());
        let bytes = buf.len() as u64;
        let request = Request::post(config.target.path.as_str())
            .header(HOST, config.target.host.as_str())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::copy_from_slice(&buf)))
            .expect("valid request");
        let mut s = s;
        let sent_at = Instant::now();
        let outcome = tokio::time::timeout(config.request_timeout, async {
            s.ready().await?;
            let response = s.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        })
        .await;
        let done = Instant::now();
        stats.total_events_sent += per_request;
        let counted = done >= shared.measure_start && done < shared.end;
        match outcome {
            Ok(Ok((status, body))) => {
                sender = Some(s);
                if counted {
                    stats.requests += 1;
                    stats.events_sent += per_request;
                    stats.body_bytes += bytes;
                    let from = scheduled.unwrap_or(sent_at);
                    let us = done.saturating_duration_since(from).as_micros();
                    let _ = stats
                        .latency
                        .record(u64::try_from(us).unwrap_or(u64::MAX).max(1));
                    if (200..300).contains(&status) {
                        stats.ok += 1;
                        let accepted = accepted_count(&body).unwrap_or(0);
                        stats.events_accepted += accepted;
                        let second = done.duration_since(shared.measure_start).as_secs() as usize;
                        if let Some(slot) = shared.per_second.get(second) {
                            slot.fetch_add(accepted, Ordering::Relaxed);
                        }
                    } else {
                        *stats.non_2xx.entry(status).or_default() += 1;
                    }
                }
            }
            _ => {
                // Timed out or the connection broke: a new one next time.
                if counted {
                    stats.errors += 1;
                }
            }
        }
    }
    stats
}

/// Runs the load described by `config` and returns what it measured.
pub async fn run(config: LoadConfig) -> Report {
    let now = Instant::now();
    let measure_start = now + config.warmup;
    let end = measure_start + config.duration;
    let seconds = config.duration.as_secs() as usize + 1;
    let shared = Arc::new(Shared {
        per_second: (0..seconds).map(|_| AtomicU64::new(0)).collect(),
        next_event: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        stopped_at: std::sync::Mutex::new(None),
        measure_start,
        end,
        config,
    });
    let tasks: Vec<_> = (0..shared.config.connections)
        .map(|i| tokio::spawn(connection(i, shared.clone())))
        .collect();
    let mut report = Report {
        measured_s: shared.config.duration.as_secs_f64(),
        requests: 0,
        ok: 0,
        non_2xx: BTreeMap::new(),
        errors: 0,
        events_sent: 0,
        events_accepted: 0,
        body_bytes: 0,
        latency: histogram(),
        per_second_accepted: Vec::new(),
        total_events_sent: 0,
    };
    for task in tasks {
        let Ok(stats) = task.await else {
            report.errors += 1;
            continue;
        };
        report.requests += stats.requests;
        report.ok += stats.ok;
        report.errors += stats.errors;
        report.events_sent += stats.events_sent;
        report.total_events_sent += stats.total_events_sent;
        report.events_accepted += stats.events_accepted;
        report.body_bytes += stats.body_bytes;
        for (status, n) in stats.non_2xx {
            *report.non_2xx.entry(status).or_default() += n;
        }
        let _ = report.latency.add(&stats.latency);
    }
    let stopped_at = shared.stopped_at.lock().ok().and_then(|g| *g);
    if let Some(at) = stopped_at
        && at < end
    {
        report.measured_s = at
            .saturating_duration_since(measure_start)
            .as_secs_f64()
            .max(1e-3);
    }
    let used = report.measured_s.ceil() as usize;
    report.per_second_accepted = shared
        .per_second
        .iter()
        .take(used.min(seconds))
        .map(|s| s.load(Ordering::Relaxed))
        .collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_accepted_counts() {
        assert_eq!(
            accepted_count(br#"{"received":1,"accepted":1,"duplicates":0}"#),
            Some(1)
        );
        assert_eq!(accepted_count(br#"{"accepted": 100}"#), Some(100));
        assert_eq!(accepted_count(br#"{"ok":true}"#), None);
    }

    #[test]
    fn refuses_non_loopback_targets() {
        assert!(Target::parse("http://127.0.0.1:8080/v1/events").is_ok());
        assert!(Target::parse("http://192.0.2.1:80/").is_err());
        assert!(Target::parse("https://127.0.0.1/").is_err());
        let t = Target::parse("http://127.0.0.1:9/v1/events").unwrap();
        assert_eq!(t.path, "/v1/events");
        assert_eq!(t.host, "127.0.0.1:9");
    }
}
