//! Fault injection: scripted misbehaviour for the gateway's retry, backoff and
//! breaker tests.
//!
//! A script is an ordered list of [`FaultRule`]s. For each request to the events
//! endpoint every rule whose filters match counts the request (`seen`); a rule
//! fires once more than `after_requests` matching requests have been seen, at
//! most `times` times. `latency` rules add their delay and let evaluation go on;
//! the first other rule that fires decides the answer and later rules are not
//! consulted for that request. `random_failure` draws from its own generator
//! seeded by `seed`, so the same sequence of requests fails the same way on
//! every run.
//!
//! In a TOML config file:
//!
//! ```toml
//! [[faults]]                  # the 3rd and 4th requests are throttled
//! after_requests = 2
//! times = 2
//! fault = { kind = "rate_limit", code = 80004, regain_minutes = 5 }
//!
//! [[faults]]                  # pixel 42's token expires after 10 requests
//! pixel = "42"
//! after_requests = 10
//! fault = { kind = "token_expired" }
//! ```

use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;

use crate::rng::SplitMix64;
use crate::sync::lock;

/// One rule of a fault script.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Only requests to this pixel count and are affected; all pixels when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pixel: Option<String>,
    /// Let this many matching requests through before the rule starts firing.
    #[serde(default)]
    pub after_requests: u64,
    /// Fire at most this many times; forever when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    pub fault: Fault,
}

/// What a rule does when it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// A throttling error: HTTP 4xx (400 unless `status` says otherwise) with the
    /// code in the body: 4 (app), 17 (user), 32 (page), 341, 613, or a Business
    /// Use Case code 80000–80014, which also gets an `X-Business-Use-Case-Usage`
    /// header with `estimated_time_to_regain_access` (minutes).
    RateLimit {
        code: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// Defaults to Graph's usual subcode for the code (17 → 2446079,
        /// 613 → 1487742, 8000x → 2446079, none otherwise).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subcode: Option<i64>,
        /// Graph usually leaves `is_transient` out of throttling errors.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transient: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        regain_minutes: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        business_id: Option<String>,
    },
    /// A server failure, e.g. `status = 500` (code 1) or `status = 503` (code 2),
    /// with `is_transient: true` unless `transient = false`.
    HttpStatus {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subcode: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transient: Option<bool>,
    },
    /// The access token has expired: 400, code 190, subcode 463. With `token`,
    /// only that token expires (the rule then counts only its requests).
    TokenExpired {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Answer normally, `ms` milliseconds late. The request is processed (and its
    /// events recorded) before the wait, so a client that gives up meanwhile has
    /// still delivered them, as with a slow Meta.
    Latency { ms: u64 },
    /// Hold the request without answering until the client gives up, or until
    /// `hold_ms` (capped by the config's `max_hold_ms`) have passed; then close
    /// the connection without an answer. With `process = true` the events are
    /// checked and recorded first ("Meta got them, the answer was lost"), which
    /// is what makes a client's retry a duplicate.
    Timeout {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hold_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        process: bool,
    },
    /// Close the connection without writing any answer; with `process = true`
    /// after checking and recording the events.
    DropConnection {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        process: bool,
    },
    /// Fail this fraction of matching requests, chosen by a generator seeded with
    /// `seed`, with HTTP `status` (default 500) and `code` (default 1 for 500,
    /// 2 otherwise).
    RandomFailure {
        fraction: f64,
        seed: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i64>,
    },
    /// Answer this exact body (e.g. a proxy's HTML error page), to test how a
    /// client copes with an answer that is not Graph's JSON.
    Raw {
        status: u16,
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_type: Option<String>,
    },
}

impl Fault {
    /// Stable name, used in stats (`faults_injected`).
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::RateLimit { .. } => "rate_limit",
            Fault::HttpStatus { .. } => "http_status",
            Fault::TokenExpired { .. } => "token_expired",
            Fault::Latency { .. } => "latency",
            Fault::Timeout { .. } => "timeout",
            Fault::DropConnection { .. } => "drop_connection",
            Fault::RandomFailure { .. } => "random_failure",
            Fault::Raw { .. } => "raw",
        }
    }

    fn check(&self) -> Result<(), String> {
        let status_ok = |s: u16| (100..=599).contains(&s);
        match self {
            Fault::RateLimit { status, .. }
                if status.is_some_and(|s| !(400..=599).contains(&s)) =>
            {
                Err("rate_limit status must be 400-599".to_owned())
            }
            Fault::HttpStatus { status, .. } | Fault::Raw { status, .. } if !status_ok(*status) => {
                Err(format!("status {status} is not an HTTP status"))
            }
            Fault::RandomFailure {
                fraction, status, ..
            } => {
                if !(0.0..=1.0).contains(fraction) {
                    Err("random_failure fraction must be between 0 and 1".to_owned())
                } else if status.is_some_and(|s| !status_ok(s)) {
                    Err("random_failure status is not an HTTP status".to_owned())
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }
}

impl FaultRule {
    /// A rule that fires on every request.
    pub fn always(fault: Fault) -> Self {
        FaultRule {
            pixel: None,
            after_requests: 0,
            times: None,
            fault,
        }
    }

    pub fn for_pixel(mut self, pixel: impl Into<String>) -> Self {
        self.pixel = Some(pixel.into());
        self
    }

    pub fn after(mut self, requests: u64) -> Self {
        self.after_requests = requests;
        self
    }

    pub fn times(mut self, times: u64) -> Self {
        self.times = Some(times);
        self
    }

    /// Checks the values serde cannot (ranges, statuses).
    pub fn check(&self) -> Result<(), String> {
        self.fault.check()
    }

    fn matches(&self, pixel: &str, token: Option<&str>) -> bool {
        if self.pixel.as_deref().is_some_and(|p| p != pixel) {
            return false;
        }
        match &self.fault {
            Fault::TokenExpired { token: Some(t) } => token == Some(t.as_str()),
            _ => true,
        }
    }
}

/// A rule with its counters, as `GET /_emulator/faults` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultRuleStatus {
    #[serde(flatten)]
    pub rule: FaultRule,
    /// Matching requests seen so far.
    pub seen: u64,
    /// Times the rule fired.
    pub fired: u64,
}

/// What the script decided for one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FaultPlan {
    /// Total delay added by `latency` rules.
    pub delay: Duration,
    /// The fault that answers this request, if any.
    pub action: Option<Fault>,
}

struct RuleState {
    rule: FaultRule,
    seen: u64,
    fired: u64,
    rng: Option<SplitMix64>,
}

impl RuleState {
    fn new(rule: FaultRule) -> Self {
        let rng = match &rule.fault {
            Fault::RandomFailure { seed, .. } => Some(SplitMix64::new(*seed)),
            _ => None,
        };
        RuleState {
            rule,
            seen: 0,
            fired: 0,
            rng,
        }
    }
}

/// The running script. One lock: requests are evaluated one at a time, which
/// keeps counters and random draws in arrival order.
pub(crate) struct FaultEngine {
    rules: Mutex<Vec<RuleState>>,
}

impl FaultEngine {
    pub(crate) fn new(rules: Vec<FaultRule>) -> Self {
        FaultEngine {
            rules: Mutex::new(rules.into_iter().map(RuleState::new).collect()),
        }
    }

    /// Replaces the script; counters start again from zero.
    pub(crate) fn replace(&self, rules: Vec<FaultRule>) {
        *lock(&self.rules) = rules.into_iter().map(RuleState::new).collect();
    }

    pub(crate) fn status(&self) -> Vec<FaultRuleStatus> {
        lock(&self.rules)
            .iter()
            .map(|s| FaultRuleStatus {
                rule: s.rule.clone(),
                seen: s.seen,
                fired: s.fired,
            })
            .collect()
    }

    pub(crate) fn plan(&self, pixel: &str, token: Option<&str>) -> FaultPlan {
        let mut plan = FaultPlan::default();
        let mut rules = lock(&self.rules);
        for state in rules.iter_mut() {
            if !state.rule.matches(pixel, token) {
                continue;
            }
            state.seen += 1;
            if plan.action.is_some()
                || state.seen <= state.rule.after_requests
                || state.rule.times.is_some_and(|t| state.fired >= t)
            {
                continue;
            }
            match &state.rule.fault {
                Fault::Latency { ms } => {
                    state.fired += 1;
                    plan.delay += Duration::from_millis(*ms);
                }
                Fault::RandomFailure { fraction, .. } => {
                    let draw = state.rng.as_mut().map_or(1.0, SplitMix64::next_f64);
                    if draw < *fraction {
                        state.fired += 1;
                        plan.action = Some(state.rule.fault.clone());
                    }
                }
                other => {
                    state.fired += 1;
                    plan.action = Some(other.clone());
                }
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16) -> Fault {
        Fault::HttpStatus {
            status,
            code: None,
            subcode: None,
            message: None,
            transient: None,
        }
    }

    #[test]
    fn after_and_times_bound_a_rule() {
        let engine = FaultEngine::new(vec![FaultRule::always(http(503)).after(2).times(2)]);
        let fired: Vec<bool> = (0..6)
            .map(|_| engine.plan("1", Some("t")).action.is_some())
            .collect();
        assert_eq!(fired, [false, false, true, true, false, false]);
        let status = engine.status();
        assert_eq!((status[0].seen, status[0].fired), (6, 2));
    }

    #[test]
    fn pixel_and_token_filters() {
        let engine = FaultEngine::new(vec![
            FaultRule::always(http(500)).for_pixel("7"),
            FaultRule::always(Fault::TokenExpired {
                token: Some("old".to_owned()),
            }),
        ]);
        assert_eq!(engine.plan("8", Some("new")).action, None);
        assert_eq!(engine.plan("7", Some("new")).action, Some(http(500)));
        assert!(matches!(
            engine.plan("8", Some("old")).action,
            Some(Fault::TokenExpired { .. })
        ));
    }

    #[test]
    fn latency_adds_up_and_first_terminal_rule_wins() {
        let engine = FaultEngine::new(vec![
            FaultRule::always(Fault::Latency { ms: 5 }),
            FaultRule::always(Fault::Latency { ms: 7 }),
            FaultRule::always(Fault::DropConnection { process: false }).times(1),
            FaultRule::always(http(503)),
        ]);
        let first = engine.plan("1", None);
        assert_eq!(first.delay, Duration::from_millis(12));
        assert_eq!(first.action, Some(Fault::DropConnection { process: false }));
        assert_eq!(engine.plan("1", None).action, Some(http(503)));
        // The 503 rule saw both requests but fired only once.
        assert_eq!(engine.status()[3].seen, 2);
        assert_eq!(engine.status()[3].fired, 1);
    }

    #[test]
    fn random_failure_is_reproducible_from_its_seed() {
        let rule = FaultRule::always(Fault::RandomFailure {
            fraction: 0.3,
            seed: 99,
            status: None,
            code: None,
        });
        let run = || {
            let engine = FaultEngine::new(vec![rule.clone()]);
            (0..200)
                .map(|_| engine.plan("1", None).action.is_some())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let failures = a.iter().filter(|f| **f).count();
        assert!((35..=85).contains(&failures), "{failures} of 200");
    }

    #[test]
    fn rules_parse_from_toml_and_reject_unknown_keys() {
        #[derive(Deserialize)]
        struct Doc {
            faults: Vec<FaultRule>,
        }
        let doc: Doc = toml::from_str(
            r#"
            [[faults]]
            after_requests = 2
            times = 1
            fault = { kind = "rate_limit", code = 80004, regain_minutes = 5 }
            [[faults]]
            pixel = "42"
            fault = { kind = "drop_connection" }
            "#,
        )
        .unwrap();
        assert_eq!(doc.faults.len(), 2);
        assert_eq!(
            doc.faults[1].fault,
            Fault::DropConnection { process: false }
        );
        let bad = toml::from_str::<Doc>(
            r#"
            [[faults]]
            fault = { kind = "latency", ms = 5, typo = 1 }
            "#,
        );
        assert!(bad.is_err());
        let bad = toml::from_str::<Doc>(
            r#"
            [[faults]]
            fault = { kind = "latency", ms = 5 }
            afterrequests = 1
            "#,
        );
        assert!(bad.is_err());
        let out_of_range = FaultRule::always(Fault::RandomFailure {
            fraction: 1.5,
            seed: 1,
            status: None,
            code: None,
        });
        assert!(out_of_range.check().is_err());
    }
}
