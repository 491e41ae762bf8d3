//! `sluice consent explain EVENT.json`: which rule decided, why, and what would
//! change the outcome.
//!
//! The input is either a bare event (as posted to `/v1/events`, with its
//! `consent` / `gdpr` / `gdpr_consent` fields), or a wrapper that also sets what
//! a real request would have carried:
//!
//! ```json
//! {
//!   "event": { "event_name": "Purchase", "consent": {"ad_user_data": "granted"}, ... },
//!   "source": "browser",
//!   "region": {"country": "US", "state": "CA"},
//!   "cookie": "euconsent-v2=...; OptanonConsent=...",
//!   "sec_gpc": "1",
//!   "store": {"ad_user_data": "denied"}
//! }
//! ```
//!
//! `store` is either an answer object or one of `"not_found"`, `"timeout"`,
//! `"invalid"`, `"unavailable"`, to see what a failing consent store does. Without
//! `region`, the event's raw `user_data.country` / `st` are used (as the server
//! does for backend events). The explanation runs the same [`decide`] the server
//! runs; nothing is counted or stored.

use crate::decision::{CheckState, ConsentState, Decision, decide, evaluate};
use crate::policy::{Check, Outcome, Policy, Source};
use crate::region::RegionHint;
use crate::signals::{ConsentFields, ConsentSignals};
use crate::store_lookup::{ConsentAnswer, LookupError};
use serde_json::Value;
use std::fmt::{self, Write as _};

/// Everything `explain` needs about one event.
#[derive(Debug, Clone)]
pub struct ExplainInput {
    /// The event object (consent fields included).
    pub event: Value,
    pub source: Source,
    pub region: RegionHint,
    /// A `Cookie` header, for browser events.
    pub cookie: Option<String>,
    /// The `Sec-GPC` header value.
    pub sec_gpc: Option<String>,
    /// A simulated consent-store result.
    pub store: Option<Result<ConsentAnswer, LookupError>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("input is not JSON: {0}")]
    Json(String),
    #[error("input must be a JSON object (an event, or {{\"event\": {{...}}, ...}})")]
    NotAnObject,
    #[error("invalid {field}: {message}")]
    Field {
        field: &'static str,
        message: String,
    },
}

impl ExplainInput {
    /// Parses the file format described in the module docs. `default_source`
    /// applies when the file does not say (the CLI passes its `--source`).
    pub fn from_json(text: &str, default_source: Source) -> Result<Self, ExplainError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| ExplainError::Json(e.to_string()))?;
        let Value::Object(mut root) = value else {
            return Err(ExplainError::NotAnObject);
        };
        let Some(event) = root.remove("event") else {
            let event = Value::Object(root);
            let region = region_from_event(&event);
            return Ok(ExplainInput {
                event,
                source: default_source,
                region,
                cookie: None,
                sec_gpc: None,
                store: None,
            });
        };
        if !event.is_object() {
            return Err(ExplainError::NotAnObject);
        }
        let field = |field: &'static str, message: &str| ExplainError::Field {
            field,
            message: message.to_owned(),
        };
        let source = match root.get("source") {
            None | Some(Value::Null) => default_source,
            Some(Value::String(s)) => s
                .parse()
                .map_err(|_| field("source", "expected browser, backend, graph or import"))?,
            Some(_) => return Err(field("source", "expected a string")),
        };
        let region = match root.get("region") {
            None | Some(Value::Null) => region_from_event(&event),
            Some(Value::String(s)) => RegionHint::new(Some(s), None),
            Some(Value::Object(r)) => RegionHint::new(
                r.get("country").and_then(Value::as_str),
                r.get("state").and_then(Value::as_str),
            ),
            Some(_) => return Err(field("region", "expected {\"country\": .., \"state\": ..}")),
        };
        let text_field = |name: &'static str| match root.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(field(name, "expected a string")),
        };
        let cookie = text_field("cookie")?;
        let sec_gpc = text_field("sec_gpc")?;
        let store = match root.get("store") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(match s.as_str() {
                "not_found" => Ok(ConsentAnswer::unknown()),
                "timeout" => Err(LookupError::Timeout),
                "invalid" => Err(LookupError::Invalid),
                "unavailable" => Err(LookupError::Unavailable),
                _ => {
                    return Err(field(
                        "store",
                        "expected an answer object or not_found, timeout, invalid, unavailable",
                    ));
                }
            }),
            Some(v) => Some(ConsentAnswer::from_json(v.to_string().as_bytes())),
        };
        Ok(ExplainInput {
            event,
            source,
            region,
            cookie,
            sec_gpc,
            store,
        })
    }

    /// The signals the server would build for this input.
    pub fn signals(&self) -> ConsentSignals {
        let mut obj = self.event.as_object().cloned().unwrap_or_default();
        let mut s = ConsentFields::take_from(&mut obj)
            .to_signals()
            .with_cookies(self.cookie.as_deref())
            .with_gpc(self.sec_gpc.as_deref());
        if let Some(store) = &self.store {
            s = s.with_store(store.clone());
        }
        s
    }
}

/// Raw `user_data.country` / `st` from the JSON (a string or the first of a
/// list), ignoring values that are hashes.
fn region_from_event(event: &Value) -> RegionHint {
    let pick = |key: &str| {
        let v = event.get("user_data")?.get(key)?;
        let s = match v {
            Value::String(s) => s.as_str(),
            Value::Array(a) => a.first()?.as_str()?,
            _ => return None,
        };
        (s.len() < 16).then_some(s)
    };
    RegionHint::new(pick("country"), pick("st"))
}

/// The decision plus its human-readable explanation.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub decision: Decision,
    pub text: String,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Explains the decision for one input.
pub fn explain(policy: &Policy, input: &ExplainInput) -> Explanation {
    let signals = input.signals();
    let decision = decide(policy, &signals, &input.region, input.source);
    let mut t = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = write_explanation(&mut t, policy, input, &signals, &decision);
    Explanation { decision, text: t }
}

fn write_explanation(
    t: &mut String,
    policy: &Policy,
    input: &ExplainInput,
    signals: &ConsentSignals,
    decision: &Decision,
) -> fmt::Result {
    let name = input
        .event
        .get("event_name")
        .and_then(Value::as_str)
        .unwrap_or("(no event_name)");
    let id = input
        .event
        .get("event_id")
        .and_then(Value::as_str)
        .map(|i| format!(" (event_id {i})"))
        .unwrap_or_default();
    writeln!(t, "policy {}", policy.version)?;
    writeln!(
        t,
        "event {name}{id}, source {}, region {}",
        input.source, input.region
    )?;

    writeln!(t, "\nsignals seen:")?;
    let seen = signals.summary(&policy.tcf_vendors());
    if seen.is_empty() {
        writeln!(t, "  (none)")?;
    }
    for s in &seen {
        writeln!(t, "  {s}")?;
    }

    writeln!(t, "\nrules, in order:")?;
    let mut deciding = None;
    for (i, rule) in policy.rules.iter().enumerate() {
        let n = i + 1;
        match rule.matches(&input.region, input.source) {
            Some(m) if deciding.is_none() => {
                writeln!(
                    t,
                    "  {n}. {:<24} MATCHED (region via {m}, source {})",
                    rule.id, input.source
                )?;
                deciding = Some(rule);
            }
            _ if deciding.is_some() => {
                writeln!(t, "  {n}. {:<24} not reached", rule.id)?;
            }
            _ => {
                let why = if !rule.sources.iter().any(|s| s.matches(input.source)) {
                    format!("source {} not in [{}]", input.source, join(&rule.sources))
                } else {
                    format!("region {} not in [{}]", input.region, join(&rule.regions))
                };
                writeln!(t, "  {n}. {:<24} skipped: {why}", rule.id)?;
            }
        }
    }

    let Some(rule) = deciding else {
        writeln!(
            t,
            "\ndecision: drop (no rule matched; {} denies by default)",
            decision.rule_id
        )?;
        writeln!(
            t,
            "\nwhat would change the outcome:\n  - a rule covering region {} and source {}",
            input.region, input.source
        )?;
        return Ok(());
    };

    writeln!(
        t,
        "\ndecision: {}  (rule {}, consent {})",
        decision.outcome, rule.id, decision.consent
    )?;
    if let Some(d) = &rule.description {
        writeln!(t, "  {d}")?;
    }
    let eval = evaluate(rule, policy, signals);
    if eval.checks.is_empty() {
        writeln!(
            t,
            "  the rule needs no consent signal: outcome {}",
            rule.outcome
        )?;
    } else {
        let how = match rule.require_mode {
            crate::policy::RequireMode::Any => "any one check grants",
            crate::policy::RequireMode::All => "every check must grant",
        };
        writeln!(
            t,
            "  checks ({how}; a denial, then an unreadable signal, wins over a grant):"
        )?;
        for c in &eval.checks {
            let line = format!(
                "    {:<22} {:<8} {}",
                c.check.to_string(),
                c.state.as_str(),
                c.details.join(" ")
            );
            writeln!(t, "{}", line.trim_end())?;
        }
        let mapping = match decision.consent {
            ConsentState::Granted => "consent granted -> outcome".to_owned(),
            ConsentState::Denied => "a signal refused -> on_denied".to_owned(),
            ConsentState::Missing => "no signal -> on_missing".to_owned(),
            ConsentState::Invalid => {
                "unreadable signal -> the stricter of on_missing and on_denied".to_owned()
            }
            ConsentState::NotRequired => "no consent needed -> outcome".to_owned(),
        };
        writeln!(t, "  {mapping}: {}", decision.outcome)?;
    }

    let mut effects = Vec::new();
    if let Some(l) = decision.ldu {
        effects.push(format!(
            "data_processing_options [\"LDU\"], country {}, state {}",
            l.country, l.state
        ));
    }
    if decision.opt_out {
        effects.push("opt_out: true".to_owned());
    }
    if decision.outcome == Outcome::DeliverWithoutIdentifiers {
        let keep: Vec<&str> = policy
            .without_identifiers
            .keep
            .iter()
            .map(|k| k.as_str())
            .collect();
        effects.push(format!(
            "person identifiers removed (kept: {})",
            if keep.is_empty() {
                "nothing".to_owned()
            } else {
                keep.join(", ")
            }
        ));
    }
    if decision.outcome == Outcome::Drop {
        effects.push("the event is not stored and not sent; it is counted and audited".to_owned());
    }
    if !effects.is_empty() {
        writeln!(t, "\neffects:")?;
        for e in effects {
            writeln!(t, "  {e}")?;
        }
    }

    if !eval.checks.is_empty() {
        writeln!(t, "\nwhat would change the outcome:")?;
        for (state, label) in [
            (ConsentState::Granted, "consent granted"),
            (ConsentState::Denied, "a refusal"),
            (ConsentState::Missing, "no signal"),
            (ConsentState::Invalid, "an unreadable signal"),
        ] {
            if state != decision.consent {
                writeln!(t, "  - with {label}: {}", rule.outcome_for(state))?;
            }
        }
        match decision.consent {
            ConsentState::Invalid => {
                let codes: Vec<String> = signals.errors.iter().map(ToString::to_string).collect();
                writeln!(t, "  - fix the malformed signals: {}", codes.join(", "))?;
            }
            ConsentState::Denied => {
                let denied: Vec<String> = eval
                    .checks
                    .iter()
                    .filter(|c| c.state == CheckState::Denied)
                    .map(|c| c.check.to_string())
                    .collect();
                writeln!(t, "  - the refusal came from: {}", denied.join(", "))?;
            }
            _ => {}
        }
        if decision.consent != ConsentState::Granted {
            writeln!(t, "  - signals that grant under this rule:")?;
            for c in &rule.require {
                if let Some(how) = how_to_grant(c, rule, policy) {
                    writeln!(t, "      {how}")?;
                }
            }
        }
    }
    Ok(())
}

fn how_to_grant(check: &Check, rule: &crate::policy::Rule, policy: &Policy) -> Option<String> {
    Some(match check {
        Check::ConsentMode(t) => {
            format!("{t}: \"granted\" in the event's consent object or the consent store")
        }
        Check::Tcf => {
            let purposes: Vec<String> = rule.tcf_purposes.iter().map(ToString::to_string).collect();
            let vendor = rule
                .tcf_vendor
                .map(|v| format!(" and vendor {v}"))
                .unwrap_or_default();
            format!(
                "tcf: a TC string (gdpr_consent or euconsent-v2) with consent for purposes {}{vendor}",
                purposes.join(",")
            )
        }
        Check::Gpc => return None,
        Check::Category(name) => {
            let groups: Vec<&str> = policy
                .banners
                .onetrust
                .iter()
                .filter(|(_, m)| *m == name)
                .map(|(g, _)| g.as_str())
                .collect();
            let cats: Vec<&str> = policy
                .banners
                .cookiebot
                .iter()
                .filter(|(_, m)| *m == name)
                .map(|(c, _)| c.as_str())
                .collect();
            format!(
                "category:{name}: true in the consent object or the store; OneTrust groups [{}]; Cookiebot [{}]",
                groups.join(","),
                cats.join(",")
            )
        }
    })
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
