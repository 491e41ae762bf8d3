//! Audit records: one per decision, without raw personal data.
//!
//! A record says when, for which pixel and event, through which source, what
//! signals were seen (as `name=value` codes from [`ConsentSignals::summary`]: no
//! TC strings, no cookie values, no identifiers), which rule decided, the
//! outcome, the reason codes and the policy version. It is serializable; the
//! store persists it. Free-text fields that come from the sender (`event_name`,
//! `event_id`) are cut to [`MAX_TEXT_LEN`] characters to bound record size.

use crate::decision::{ConsentState, Decision};
use crate::policy::{Outcome, Policy, Source};
use crate::signals::ConsentSignals;
use serde::{Deserialize, Serialize};
use sluice_core::ServerEvent;

/// Longest `event_name` / `event_id` kept in a record.
pub const MAX_TEXT_LEN: usize = 256;

/// One audited consent decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the decision was made, Unix milliseconds.
    pub time_ms: i64,
    pub pixel_id: String,
    pub event_name: String,
    pub event_id: Option<String>,
    pub source: Source,
    /// Signal codes, e.g. `ad_user_data=granted`, `tcf=purposes:1,3,4,7;policy:4`,
    /// `gpc=1`, `error=tcf:tcf_truncated`.
    pub signals_seen: Vec<String>,
    pub rule_id: String,
    pub outcome: Outcome,
    pub consent: ConsentState,
    pub reasons: Vec<String>,
    pub policy_version: String,
}

/// The facts about the event that the decision itself does not carry.
#[derive(Debug, Clone, Copy)]
pub struct AuditContext<'a> {
    pub time_ms: i64,
    pub pixel_id: &'a str,
    pub event_name: &'a str,
    pub event_id: Option<&'a str>,
    pub source: Source,
}

impl AuditRecord {
    pub fn new(
        ctx: AuditContext<'_>,
        decision: &Decision,
        signals: &ConsentSignals,
        policy: &Policy,
    ) -> Self {
        AuditRecord {
            time_ms: ctx.time_ms,
            pixel_id: cut(ctx.pixel_id),
            event_name: cut(ctx.event_name),
            event_id: ctx.event_id.map(cut),
            source: ctx.source,
            signals_seen: signals.summary(&policy.tcf_vendors()),
            rule_id: decision.rule_id.clone(),
            outcome: decision.outcome,
            consent: decision.consent,
            reasons: decision.reasons.clone(),
            policy_version: decision.policy_version.clone(),
        }
    }

    /// Convenience for the usual case: the facts come from the event itself.
    pub fn for_event(
        time_ms: i64,
        pixel_id: &str,
        event: &ServerEvent,
        source: Source,
        decision: &Decision,
        signals: &ConsentSignals,
        policy: &Policy,
    ) -> Self {
        AuditRecord::new(
            AuditContext {
                time_ms,
                pixel_id,
                event_name: &event.event_name,
                event_id: event.event_id.as_deref(),
                source,
            },
            decision,
            signals,
            policy,
        )
    }
}

fn cut(s: &str) -> String {
    s.chars().take(MAX_TEXT_LEN).collect()
}
