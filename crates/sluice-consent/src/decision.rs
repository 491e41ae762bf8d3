//! The consent decision: a pure function of (policy, signals, region, source).
//!
//! [`decide`] picks the first matching rule, evaluates its checks against the
//! signals and returns one [`Decision`]: the outcome, the rule, the combined
//! consent state, reason codes, the policy version, and what [`crate::apply()`]
//! must set (`opt_out`, LDU codes). It does no I/O, reads no clock and emits no
//! metrics, so the same inputs always give the same decision — which is what
//! makes `sluice consent explain` and the audit trail trustworthy.
//!
//! How checks combine (per check across its sources, then across checks):
//! **denied > invalid > granted > missing**. A refusal anywhere wins over a grant
//! elsewhere; an unreadable signal the rule depends on blocks a grant (fail
//! closed); a rule with `require_mode = "all"` also needs every check granted.
//! `gpc` can only object: when absent it is neutral and takes no part.

use crate::policy::{Check, DEFAULT_DENY_RULE, Outcome, Policy, RequireMode, Rule, Source};
use crate::region::RegionHint;
use crate::signals::{
    ConsentModeType, ConsentSignals, ErrorCode, FlagState, SignalSource, StoreSignal,
};
use serde::{Deserialize, Serialize};
use std::fmt;

/// TCF purposes 3 (create a personalised-ads profile) and 4 (use it to select
/// ads): without both, a delivered event gets `opt_out: true`.
pub const TCF_PERSONALISATION_PURPOSES: [u8; 2] = [3, 4];

/// The combined state of the signals a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    /// The rule's checks grant consent.
    Granted,
    /// A signal the rule reads refuses.
    Denied,
    /// None of the signals the rule reads is present.
    Missing,
    /// A signal the rule reads is malformed or its lookup failed.
    Invalid,
    /// The rule needs no consent signal.
    NotRequired,
}

impl ConsentState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentState::Granted => "granted",
            ConsentState::Denied => "denied",
            ConsentState::Missing => "missing",
            ConsentState::Invalid => "invalid",
            ConsentState::NotRequired => "not_required",
        }
    }
}

impl fmt::Display for ConsentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one check. `Neutral` = the check has nothing to say (GPC absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    Granted,
    Denied,
    Missing,
    Invalid,
    Neutral,
}

impl CheckState {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Granted => "granted",
            CheckState::Denied => "denied",
            CheckState::Missing => "missing",
            CheckState::Invalid => "invalid",
            CheckState::Neutral => "neutral",
        }
    }
}

/// One check's result with the details that explain it (codes, no PII).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub check: Check,
    pub state: CheckState,
    pub details: Vec<String>,
}

/// The evaluation of one rule against the signals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    pub state: ConsentState,
    pub checks: Vec<CheckResult>,
}

/// Meta's LDU country and state codes for `data_processing_options_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LduCodes {
    /// `1` = USA, `0` = let Meta geolocate.
    pub country: i64,
    /// `1000` = California, `0` = let Meta geolocate; see [`crate::LduConfig`].
    pub state: i64,
}

/// The decision for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub outcome: Outcome,
    /// The rule that decided, or `default_deny` when none matched.
    pub rule_id: String,
    pub consent: ConsentState,
    /// Reason codes, most general first: region, source, consent state, each
    /// check, then what `apply` will do.
    pub reasons: Vec<String>,
    pub policy_version: String,
    /// `apply` sets `opt_out: true` on a delivered event: ad_personalization
    /// denied, the consent object unreadable, or TCF without purposes 3 and 4.
    pub opt_out: bool,
    /// Set for [`Outcome::DeliverLdu`].
    pub ldu: Option<LduCodes>,
}

impl Decision {
    /// True when the event may be stored and sent (in some form).
    pub fn delivers(&self) -> bool {
        self.outcome.delivers()
    }
}

/// Decides what happens to one event. Pure: no I/O, no clock, no metrics.
pub fn decide(
    policy: &Policy,
    signals: &ConsentSignals,
    region: &RegionHint,
    source: Source,
) -> Decision {
    let Some((rule, matcher)) = policy
        .rules
        .iter()
        .find_map(|r| r.matches(region, source).map(|m| (r, m)))
    else {
        return Decision {
            outcome: Outcome::Drop,
            rule_id: DEFAULT_DENY_RULE.to_owned(),
            consent: ConsentState::Missing,
            reasons: vec![
                "no_rule_matched".to_owned(),
                format!("source:{source}"),
                format!("region_known:{}", u8::from(!region.is_unknown())),
            ],
            policy_version: policy.version.clone(),
            opt_out: false,
            ldu: None,
        };
    };

    let evaluation = evaluate(rule, policy, signals);
    let outcome = rule.outcome_for(evaluation.state);

    let mut reasons = vec![
        format!("region:{matcher}"),
        format!("source:{source}"),
        format!("consent:{}", evaluation.state),
    ];
    for c in &evaluation.checks {
        reasons.push(format!("{}={}", c.check, c.state.as_str()));
        reasons.extend(c.details.iter().cloned());
    }

    let mut opt_out = false;
    if outcome.delivers() {
        if signals.consent_mode_flag(ConsentModeType::AdPersonalization) == Some(FlagState::Denied)
        {
            opt_out = true;
            reasons.push("opt_out:ad_personalization_denied".to_owned());
        } else if signals.has_errors_from(SignalSource::ConsentObject) {
            opt_out = true;
            reasons.push("opt_out:consent_object_invalid".to_owned());
        } else if let Some(t) = &signals.tcf
            && signals.gdpr_applies != Some(false)
            && !t.missing_purposes(&TCF_PERSONALISATION_PURPOSES).is_empty()
        {
            // TCF's analogue of ad_personalization: no personalised-ads profile
            // (3) or selection (4) means attribution only.
            opt_out = true;
            reasons.push("opt_out:tcf_personalisation_not_consented".to_owned());
        }
    }

    let ldu = (outcome == Outcome::DeliverLdu).then(|| {
        let codes = if region.country() == Some("US") {
            LduCodes {
                country: 1,
                state: policy.ldu_state_code(region.state()),
            }
        } else {
            LduCodes {
                country: 0,
                state: 0,
            }
        };
        reasons.push(format!(
            "ldu:country={};state={}",
            codes.country, codes.state
        ));
        codes
    });

    Decision {
        outcome,
        rule_id: rule.id.clone(),
        consent: evaluation.state,
        reasons,
        policy_version: policy.version.clone(),
        opt_out,
        ldu,
    }
}

/// Evaluates one rule's checks. Public so `explain` can show every rule's view.
pub fn evaluate(rule: &Rule, policy: &Policy, signals: &ConsentSignals) -> Evaluation {
    if rule.require.is_empty() {
        return Evaluation {
            state: ConsentState::NotRequired,
            checks: Vec::new(),
        };
    }
    let checks: Vec<CheckResult> = rule
        .require
        .iter()
        .map(|check| evaluate_check(check, rule, policy, signals))
        .collect();
    let states: Vec<CheckState> = checks
        .iter()
        .map(|c| c.state)
        .filter(|s| *s != CheckState::Neutral)
        .collect();
    let has = |s: CheckState| states.contains(&s);
    let state = if has(CheckState::Denied) {
        ConsentState::Denied
    } else if has(CheckState::Invalid) {
        ConsentState::Invalid
    } else {
        match rule.require_mode {
            RequireMode::Any if has(CheckState::Granted) => ConsentState::Granted,
            RequireMode::All if !states.is_empty() && !has(CheckState::Missing) => {
                ConsentState::Granted
            }
            _ => ConsentState::Missing,
        }
    };
    Evaluation { state, checks }
}

/// Collects the answers one check gets from its sources.
#[derive(Default)]
struct Answers {
    granted: bool,
    denied: bool,
    invalid: bool,
    details: Vec<String>,
}

impl Answers {
    fn flag(&mut self, v: Option<FlagState>, origin: &str, name: &str) {
        match v {
            Some(FlagState::Granted) => {
                self.granted = true;
                self.details.push(format!("{origin}:{name}=granted"));
            }
            Some(FlagState::Denied) => {
                self.denied = true;
                self.details.push(format!("{origin}:{name}=denied"));
            }
            None => {}
        }
    }

    fn errors(&mut self, codes: Vec<ErrorCode>) {
        if !codes.is_empty() {
            self.invalid = true;
            self.details
                .extend(codes.into_iter().map(|c| format!("error:{c}")));
        }
    }

    fn state(&self) -> CheckState {
        if self.denied {
            CheckState::Denied
        } else if self.invalid {
            CheckState::Invalid
        } else if self.granted {
            CheckState::Granted
        } else {
            CheckState::Missing
        }
    }
}

fn store_answers(
    a: &mut Answers,
    signals: &ConsentSignals,
    read: impl Fn(&crate::ConsentAnswer) -> Option<FlagState>,
    name: &str,
) {
    match &signals.store {
        None => {}
        Some(StoreSignal::Failed(code)) => a.errors(vec![*code]),
        Some(StoreSignal::Answer(ans)) if !ans.known => {
            a.details.push("store:not_found".to_owned())
        }
        Some(StoreSignal::Answer(ans)) => a.flag(read(ans), "store", name),
    }
}

fn evaluate_check(
    check: &Check,
    rule: &Rule,
    policy: &Policy,
    signals: &ConsentSignals,
) -> CheckResult {
    let mut a = Answers::default();
    match check {
        Check::ConsentMode(t) => {
            a.errors(signals.error_codes_from(SignalSource::ConsentObject));
            event_flag(&mut a, signals, signals.consent_mode.get(*t), t.as_str());
            store_answers(&mut a, signals, |ans| ans.consent_mode.get(*t), t.as_str());
        }
        Check::Category(name) => {
            a.errors(signals.error_codes_from(SignalSource::ConsentObject));
            event_flag(&mut a, signals, signals.categories.get(name).copied(), name);

            a.errors(signals.error_codes_from(SignalSource::OneTrust));
            if let Some(ot) = &signals.onetrust {
                for (group, mapped) in &policy.banners.onetrust {
                    if mapped == name {
                        let v = ot.groups.get(group).map(|b| flag_from(*b));
                        a.flag(v, "onetrust", group);
                    }
                }
            }

            a.errors(signals.error_codes_from(SignalSource::Cookiebot));
            if let Some(cb) = &signals.cookiebot {
                if cb.consent_not_required {
                    a.details.push("cookiebot:not_required_ignored".to_owned());
                }
                for (cat, mapped) in &policy.banners.cookiebot {
                    if mapped == name {
                        let v = cb.categories.get(cat).map(|b| flag_from(*b));
                        a.flag(v, "cookiebot", cat);
                    }
                }
            }

            store_answers(
                &mut a,
                signals,
                |ans| ans.categories.get(name).copied(),
                name,
            );
        }
        Check::Tcf => {
            a.errors(signals.error_codes_from(SignalSource::Tcf));
            if signals.gdpr_applies == Some(false) {
                a.details.push("tcf:gdpr_flag_0_ignored".to_owned());
            }
            match &signals.tcf {
                None => {
                    if signals.gdpr_applies == Some(true) {
                        a.details.push("tcf:gdpr_applies_without_string".to_owned());
                    }
                }
                Some(t) => {
                    let missing = t.missing_purposes(&rule.tcf_purposes);
                    if !missing.is_empty() {
                        a.denied = true;
                        let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
                        a.details
                            .push(format!("tcf:purposes_not_consented:{}", list.join(",")));
                    }
                    if let Some(vendor) = rule.tcf_vendor
                        && !t.vendor_may_use_consent_for(vendor, &rule.tcf_purposes)
                    {
                        a.denied = true;
                        a.details.push(format!("tcf:vendor_not_consented:{vendor}"));
                    }
                    if !a.denied {
                        a.granted = true;
                        let list: Vec<String> =
                            rule.tcf_purposes.iter().map(ToString::to_string).collect();
                        a.details
                            .push(format!("tcf:purposes_consented:{}", list.join(",")));
                    }
                }
            }
        }
        Check::Gpc => {
            a.errors(signals.error_codes_from(SignalSource::Gpc));
            if signals.gpc {
                a.denied = true;
                a.details.push("gpc=1".to_owned());
            }
            if !a.denied && !a.invalid {
                return CheckResult {
                    check: check.clone(),
                    state: CheckState::Neutral,
                    details: a.details,
                };
            }
        }
    }
    CheckResult {
        check: check.clone(),
        state: a.state(),
        details: a.details,
    }
}

/// An answer from the event's own `consent` object; grants the site marked as
/// defaults (`consent_source: "default"`) are not the person's answer.
fn event_flag(a: &mut Answers, signals: &ConsentSignals, v: Option<FlagState>, name: &str) {
    if v == Some(FlagState::Granted) && !signals.event_grants_count() {
        a.details
            .push(format!("event:{name}=granted_by_default_ignored"));
        return;
    }
    a.flag(v, "event", name);
}

fn flag_from(b: bool) -> FlagState {
    if b {
        FlagState::Granted
    } else {
        FlagState::Denied
    }
}
