//! Consent and privacy, enforced on the server.
//!
//! No event leaves sluice without a consent decision, the decision is made before
//! the event is stored, and every decision can be audited. The flow for one event:
//!
//! 1. **Signals** — [`ConsentSignals`] collects what arrived: the event's
//!    `consent` object (Google Consent Mode v2 flags and named categories), IAB
//!    TCF v2.2 strings (`gdpr`/`gdpr_consent` or the `euconsent-v2` cookie),
//!    `Sec-GPC`, the OneTrust and Cookiebot cookies, and a consent-store answer
//!    ([`HttpConsentStore`]). Malformed input becomes a coded [`SignalError`],
//!    never a panic and never consent.
//! 2. **Decision** — [`decide`] matches the [`Policy`]'s ordered rules on
//!    [`RegionHint`] and [`Source`] and returns one [`Decision`]: `deliver`,
//!    `deliver_ldu`, `deliver_without_identifiers` or `drop`. It is pure.
//! 3. **Apply** — [`apply()`] sets LDU codes / `opt_out` or strips identifiers;
//!    `drop` means the caller does not store the event.
//! 4. **Audit** — [`AuditRecord`] records the decision without raw PII;
//!    [`metrics::record_decision`] counts it.
//!
//! [`explain()`] renders the same decision for humans (`sluice consent explain`).

pub mod apply;
pub mod audit;
pub mod cookies;
pub mod decision;
pub mod explain;
pub mod metrics;
pub mod policy;
pub mod region;
pub mod signals;
pub mod store_lookup;
pub mod tcf;

pub use apply::{Applied, Changes, apply};
pub use audit::{AuditContext, AuditRecord};
pub use decision::{
    CheckResult, CheckState, ConsentState, Decision, Evaluation, LduCodes, decide, evaluate,
};
pub use explain::{ExplainError, ExplainInput, Explanation, explain};
pub use policy::{
    BannerMapping, Check, KeepKey, LduConfig, Outcome, Policy, PolicyError, RegionMatcher,
    RequireMode, Rule, Source, SourceMatcher, WithoutIdentifiers,
};
pub use region::{RegionHeaders, RegionHint};
pub use signals::{
    ConsentFields, ConsentMode, ConsentModeType, ConsentOrigin, ConsentSignals, CookiebotConsent,
    ErrorCode, FlagState, OneTrustConsent, SignalError, SignalSource, StoreSignal,
};
pub use store_lookup::{
    ConsentAnswer, ConsentStore, HttpConsentStore, HttpStoreConfig, LookupError, LookupWhen,
    user_key,
};
pub use tcf::TcfSummary;
