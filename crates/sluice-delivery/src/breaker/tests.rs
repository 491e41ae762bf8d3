use std::time::Duration;

use tokio::time::Instant;

use super::*;

const S: Duration = Duration::from_secs(1);

fn config() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: 3,
        cooldown: 10 * S,
        auth_cooldown: 100 * S,
        max_cooldown: 300 * S,
        max_transient_cooldown: 300 * S,
    }
}

fn send(breaker: &mut CircuitBreaker, now: Instant) -> Ticket {
    match breaker.admit(now) {
        Admission::Send(ticket) => ticket,
        other => panic!("expected to send, got {other:?} in {:?}", breaker.state()),
    }
}

#[test]
fn closed_lets_everything_through_and_successes_reset_the_count() {
    let t0 = Instant::now();
    let mut b = CircuitBreaker::new(config());
    for _ in 0..2 {
        let t = send(&mut b, t0);
        assert!(!t.is_probe());
        assert!(!b.record(t, Verdict::RetryNow, t0));
    }
    assert_eq!(b.consecutive_failures(), 2);
    let t = send(&mut b, t0);
    b.record(t, Verdict::Delivered, t0);
    assert_eq!(b.consecutive_failures(), 0);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn trips_after_n_consecutive_transient_failures_then_probes() {
    let t0 = Instant::now();
    let mut b = CircuitBreaker::new(config());
    let mut tripped = false;
    for _ in 0..3 {
        let t = send(&mut b, t0);
        tripped = b.record(t, Verdict::RetryNow, t0);
    }
    assert!(tripped, "the third failure trips");
    assert_eq!(
        b.state(),
        BreakerState::Open {
            until: t0 + 10 * S,
            cause: TripCause::Transient
        }
    );
    assert!(b.state().is_tripped());
    // While open: no sends.
    assert_eq!(b.admit(t0 + 5 * S), Admission::Wait(Some(t0 + 10 * S)));
    // After the cooldown: exactly one probe.
    let probe = send(&mut b, t0 + 10 * S);
    assert!(probe.is_probe());
    assert_eq!(b.state().as_str(), "half_open");
    assert_eq!(b.admit(t0 + 10 * S), Admission::Wait(None));
    // The probe succeeds: closed again.
    assert!(!b.record(probe, Verdict::Delivered, t0 + 11 * S));
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn a_failed_probe_reopens_with_a_doubled_cooldown_capped_at_max() {
    let t0 = Instant::now();
    let mut b = CircuitBreaker::new(config());
    for _ in 0..3 {
        let t = send(&mut b, t0);
        b.record(t, Verdict::RetryNow, t0);
    }
    let mut now = t0;
    let mut expected = 10 * S;
    for _ in 0..8 {
        let BreakerState::Open { until, .. } = b.state() else {
            panic!("{:?}", b.state())
        };
        assert_eq!(until - now, expected);
        now = until;
        let probe = send(&mut b, now);
        assert!(probe.is_probe());
        assert!(
            b.record(probe, Verdict::RetryNow, now),
            "a failed probe trips"
        );
        expected = (expected * 2).min(300 * S);
    }
    assert_eq!(expected, 300 * S);
}

#[test]
fn credentials_errors_trip_at_once() {
    let t0 = Instant::now();
    let mut b = CircuitBreaker::new(config());
    let t = send(&mut b, t0);
    assert!(b.record(t, Verdict::FixCredentials, t0));
    assert_eq!(
        b.state(),
        BreakerState::Open {
            until: t0 + 100 * S,
            cause: TripCause::Credentials
        }
    );
    // The token is still bad at the probe: twice as long.
    let probe = send(&mut b, t0 + 100 * S);
    assert!(b.record(probe, Verdict::FixCredentials, t0 + 100 * S));
    assert_eq!(
        b.state(),
        BreakerState::Open {
            until: t0 + 300 * S,
            cause: TripCause::Credentials
        }
    );
}

#[test]
fn throttling_opens_for_exactly_the_requested_wait() {
    let t0 = Instant::now();
    let mut b = CircuitBreaker::new(config());
    let t = send(&mut b, t0);
    assert!(b.record(t, Verdict::RetryAfter(42 * S), t0));
    assert_eq!(
        b.state(),
        BreakerState::Open {
            until: t0 + 42 * S,
            cause: TripCause::RateLimited
        }
    );
    // Throttling again at the probe: again exactly the wait, no doubling.
    let probe = send(&mut b, t0 + 42 * S);
    b.record(probe, Verdict::RetryAfter(7 * S), t0 + 42 * S);
    assert_eq!(
        b.state(),
        BreakerState::Open {
            until: t0 + 49 * S,
            cause: TripCause::RateLimited
        }
    );
}

#[test]
fn a_payload_error_at_the_probe_closes_the_breaker() {
    let t0 = Instant::now();
    let mut b = CircuitBreaker::new(config());
    let t = send(&mut b, t0);
    b.record(t, Verdict::FixCredentials, t0);
    let probe = send(&mut b, t0 + 100 * S);
    b.record(probe, Verdict::Permanent, t0 + 100 * S);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn stale_results_from_before_a_trip_are_ignored() {
    let t0 = Instant::now();
    let mut b = CircuitBreaker::new(config());
    let early = send(&mut b, t0);
    let t = send(&mut b, t0);
    b.record(t, Verdict::FixCredentials, t0);
    // The older request comes back with a success: still open.
    assert!(!b.record(early, Verdict::Delivered, t0 + S));
    assert!(matches!(b.state(), BreakerState::Open { .. }));
}

#[test]
fn a_cancelled_probe_lets_the_next_caller_probe() {
    let t0 = Instant::now();
    let mut b = CircuitBreaker::new(config());
    let t = send(&mut b, t0);
    b.record(t, Verdict::RetryAfter(S), t0);
    let probe = send(&mut b, t0 + S);
    assert_eq!(b.admit(t0 + S), Admission::Wait(None));
    b.cancel(probe);
    let again = send(&mut b, t0 + S);
    assert!(again.is_probe());
    // Cancelling a non-probe ticket changes nothing.
    let mut closed = CircuitBreaker::new(config());
    let t = send(&mut closed, t0);
    closed.cancel(t);
    assert_eq!(closed.state(), BreakerState::Closed);
}

#[test]
fn new_credentials_lift_a_credentials_pause_at_once_and_start_over() {
    let t0 = Instant::now();
    let mut b = CircuitBreaker::new(config());
    let old = send(&mut b, t0);
    assert!(b.record(old, Verdict::FixCredentials, t0));
    assert_eq!(b.admit(t0 + S), Admission::Wait(Some(t0 + 100 * S)));

    b.credentials_changed();
    // One probe now, well before the cooldown ends.
    let probe = send(&mut b, t0 + S);
    assert!(probe.is_probe());
    assert_eq!(b.admit(t0 + S), Admission::Wait(None));
    // A late answer to a send with the old token says nothing.
    assert!(!b.record(old, Verdict::FixCredentials, t0 + S));
    b.record(probe, Verdict::Delivered, t0 + S);
    assert_eq!(b.state(), BreakerState::Closed);

    // A refused new token pauses for the base cooldown, not a doubled one.
    let t = send(&mut b, t0 + 2 * S);
    b.record(t, Verdict::FixCredentials, t0 + 2 * S);
    b.credentials_changed();
    let t = send(&mut b, t0 + 3 * S);
    b.record(t, Verdict::FixCredentials, t0 + 3 * S);
    assert_eq!(
        b.state(),
        BreakerState::Open {
            until: t0 + 103 * S,
            cause: TripCause::Credentials
        }
    );
}

#[test]
fn new_credentials_do_not_lift_a_throttling_or_transient_pause() {
    let t0 = Instant::now();
    let mut b = CircuitBreaker::new(config());
    let t = send(&mut b, t0);
    b.record(t, Verdict::RetryAfter(50 * S), t0);
    b.credentials_changed();
    assert_eq!(b.admit(t0 + S), Admission::Wait(Some(t0 + 50 * S)));
}

/// Drives a breaker the way a lane worker does, on Tokio's clock: send
/// when admitted (each request takes 10 ms and fails until `outage` has
/// passed), sleep until the time the breaker names otherwise. Returns how
/// long after the destination recovered the first request went out.
async fn resume_delay_after(outage: Duration, config: BreakerConfig) -> Duration {
    let start = Instant::now();
    let recovered = start + outage;
    let mut breaker = CircuitBreaker::new(config);
    loop {
        match breaker.admit(Instant::now()) {
            Admission::Send(ticket) => {
                let sent = Instant::now();
                tokio::time::sleep(Duration::from_millis(10)).await;
                if sent >= recovered {
                    breaker.record(ticket, Verdict::Delivered, Instant::now());
                    return sent - recovered;
                }
                breaker.record(ticket, Verdict::RetryNow, Instant::now());
            }
            Admission::Wait(Some(until)) => tokio::time::sleep_until(until).await,
            Admission::Wait(None) => unreachable!("one worker: no probe of another is out"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn after_an_outage_a_lane_probes_within_the_transient_cap() {
    let defaults = BreakerConfig::default();
    assert_eq!(defaults.max_transient_cooldown, 30 * S);
    // The bench run that found it: a 95 s outage, cooldowns 30, 60, 120 s,
    // and the first delivery came about two minutes after the recovery.
    let uncapped = BreakerConfig {
        max_transient_cooldown: defaults.max_cooldown,
        ..defaults
    };
    assert!(resume_delay_after(95 * S, uncapped).await > 100 * S);
    for outage in [95 * S, 10 * 60 * S, 3 * 3600 * S] {
        let delay = resume_delay_after(outage, defaults).await;
        assert!(
            delay <= 30 * S,
            "{outage:?} outage: resumed {delay:?} after"
        );
    }
    // Configurable: a 5 s cap probes at least every 5 s.
    let tight = BreakerConfig {
        cooldown: S,
        max_transient_cooldown: 5 * S,
        ..defaults
    };
    for outage in [7 * S, 95 * S, 3600 * S] {
        let delay = resume_delay_after(outage, tight).await;
        assert!(delay <= 5 * S, "{outage:?} outage: resumed {delay:?} after");
    }
}

#[test]
fn the_transient_cap_does_not_shorten_credentials_pauses() {
    let t0 = Instant::now();
    let mut b = CircuitBreaker::new(BreakerConfig {
        max_transient_cooldown: 5 * S,
        ..config()
    });
    let t = send(&mut b, t0);
    b.record(t, Verdict::FixCredentials, t0);
    assert_eq!(b.admit(t0), Admission::Wait(Some(t0 + 100 * S)));
}
