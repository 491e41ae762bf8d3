//! Consent signals: everything sluice saw about one event's consent, parsed.
//!
//! A [`ConsentSignals`] is built from wherever signals arrive — the event's own
//! `consent` / `gdpr` / `gdpr_consent` fields, the browser request's cookies and
//! `Sec-GPC` header, a consent-store answer — and is then judged by
//! [`crate::decide`]. Parsing never fails as a whole: anything malformed is kept as
//! a [`SignalError`] with a stable [`ErrorCode`], tagged with the
//! [`SignalSource`] it came from, and the decision treats that source as
//! *invalid* (never as consent).
//!
//! Invariants:
//! - No raw input text is ever stored in an error; error messages are codes.
//! - Category and banner-group names are kept only when they are short
//!   identifiers (`[A-Za-z0-9_.-]`, ≤ 64 bytes), so the audit trail cannot be used
//!   to smuggle arbitrary text.
//! - A source with any error is invalid as a whole: `ad_user_data: "granted"`
//!   next to `analytics_storage: "maybe"` does not count as a grant.

use crate::cookies;
use crate::store_lookup::{ConsentAnswer, LookupError};
use crate::tcf::{self, TcfSummary};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// Most keys accepted in one `consent` object (or consent-store answer).
pub const MAX_CONSENT_KEYS: usize = 64;
/// Longest category or banner-group name kept.
pub const MAX_NAME_LEN: usize = 64;

/// A consent answer for one purpose or category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagState {
    Granted,
    Denied,
}

impl FlagState {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagState::Granted => "granted",
            FlagState::Denied => "denied",
        }
    }

    fn from_bool(b: bool) -> Self {
        if b {
            FlagState::Granted
        } else {
            FlagState::Denied
        }
    }
}

/// The four Google Consent Mode v2 consent types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentModeType {
    AdStorage,
    AdUserData,
    AdPersonalization,
    AnalyticsStorage,
}

impl ConsentModeType {
    pub const ALL: [ConsentModeType; 4] = [
        ConsentModeType::AdStorage,
        ConsentModeType::AdUserData,
        ConsentModeType::AdPersonalization,
        ConsentModeType::AnalyticsStorage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentModeType::AdStorage => "ad_storage",
            ConsentModeType::AdUserData => "ad_user_data",
            ConsentModeType::AdPersonalization => "ad_personalization",
            ConsentModeType::AnalyticsStorage => "analytics_storage",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for ConsentModeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Consent Mode v2 flags; `None` = the signal was absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ConsentMode {
    pub ad_storage: Option<FlagState>,
    pub ad_user_data: Option<FlagState>,
    pub ad_personalization: Option<FlagState>,
    pub analytics_storage: Option<FlagState>,
}

impl ConsentMode {
    pub fn get(&self, t: ConsentModeType) -> Option<FlagState> {
        match t {
            ConsentModeType::AdStorage => self.ad_storage,
            ConsentModeType::AdUserData => self.ad_user_data,
            ConsentModeType::AdPersonalization => self.ad_personalization,
            ConsentModeType::AnalyticsStorage => self.analytics_storage,
        }
    }

    pub fn set(&mut self, t: ConsentModeType, v: FlagState) {
        let slot = match t {
            ConsentModeType::AdStorage => &mut self.ad_storage,
            ConsentModeType::AdUserData => &mut self.ad_user_data,
            ConsentModeType::AdPersonalization => &mut self.ad_personalization,
            ConsentModeType::AnalyticsStorage => &mut self.analytics_storage,
        };
        *slot = Some(v);
    }

    pub fn is_empty(&self) -> bool {
        ConsentModeType::ALL.iter().all(|t| self.get(*t).is_none())
    }
}

/// Where a signal came from; errors are attributed to one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalSource {
    /// The event's `consent` object (Consent Mode flags and named categories).
    ConsentObject,
    /// `gdpr` / `gdpr_consent` fields and the `euconsent-v2` cookie.
    Tcf,
    /// `Sec-GPC` request header.
    Gpc,
    /// OneTrust `OptanonConsent` cookie.
    OneTrust,
    /// Cookiebot `CookieConsent` cookie.
    Cookiebot,
    /// The consent store.
    Store,
}

impl SignalSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalSource::ConsentObject => "consent_object",
            SignalSource::Tcf => "tcf",
            SignalSource::Gpc => "gpc",
            SignalSource::OneTrust => "onetrust",
            SignalSource::Cookiebot => "cookiebot",
            SignalSource::Store => "store",
        }
    }
}

/// Stable codes for malformed or failed signals. They appear in audit records,
/// metrics labels and API responses; renaming one is a breaking change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// `consent` is not a JSON object.
    ConsentObjectInvalid,
    /// A Consent Mode or category value other than granted/denied/true/false/1/0.
    ConsentValueUnknown,
    /// A category name that is not a short identifier.
    ConsentCategoryNameInvalid,
    /// More than [`MAX_CONSENT_KEYS`] keys.
    ConsentTooManyKeys,
    /// `consent_source` is not one of sluice.js's values.
    ConsentSourceUnknown,
    /// `gdpr` is not 0/1/true/false.
    GdprFlagInvalid,
    /// `gdpr_consent` is not a string.
    TcfNotAString,
    TcfEmpty,
    TcfTooLong,
    TcfInvalidCharacter,
    TcfUnsupportedVersion,
    TcfTruncated,
    TcfInvalidSegment,
    /// Range entries that expand to an implausible number of vendor ids.
    TcfTooComplex,
    TcfDecodeFailed,
    TcfDecoderPanic,
    /// `Sec-GPC` with a value other than `1`, or a `gpc` field that is not a boolean.
    GpcInvalid,
    OnetrustInvalid,
    OnetrustGroupsMissing,
    OnetrustGroupInvalid,
    CookiebotInvalid,
    /// The same consent cookie twice with different values.
    CookieConflict,
    ConsentStoreTimeout,
    ConsentStoreInvalid,
    ConsentStoreUnavailable,
    /// The user key handed to the store was not a SHA-256 hex digest.
    ConsentStoreKeyInvalid,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 26] = [
        ErrorCode::ConsentObjectInvalid,
        ErrorCode::ConsentValueUnknown,
        ErrorCode::ConsentCategoryNameInvalid,
        ErrorCode::ConsentTooManyKeys,
        ErrorCode::ConsentSourceUnknown,
        ErrorCode::GdprFlagInvalid,
        ErrorCode::TcfNotAString,
        ErrorCode::TcfEmpty,
        ErrorCode::TcfTooLong,
        ErrorCode::TcfInvalidCharacter,
        ErrorCode::TcfUnsupportedVersion,
        ErrorCode::TcfTruncated,
        ErrorCode::TcfInvalidSegment,
        ErrorCode::TcfTooComplex,
        ErrorCode::TcfDecodeFailed,
        ErrorCode::TcfDecoderPanic,
        ErrorCode::GpcInvalid,
        ErrorCode::OnetrustInvalid,
        ErrorCode::OnetrustGroupsMissing,
        ErrorCode::OnetrustGroupInvalid,
        ErrorCode::CookiebotInvalid,
        ErrorCode::CookieConflict,
        ErrorCode::ConsentStoreTimeout,
        ErrorCode::ConsentStoreInvalid,
        ErrorCode::ConsentStoreUnavailable,
        ErrorCode::ConsentStoreKeyInvalid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ConsentObjectInvalid => "consent_object_invalid",
            ErrorCode::ConsentValueUnknown => "consent_value_unknown",
            ErrorCode::ConsentCategoryNameInvalid => "consent_category_name_invalid",
            ErrorCode::ConsentTooManyKeys => "consent_too_many_keys",
            ErrorCode::ConsentSourceUnknown => "consent_source_unknown",
            ErrorCode::GdprFlagInvalid => "gdpr_flag_invalid",
            ErrorCode::TcfNotAString => "tcf_not_a_string",
            ErrorCode::TcfEmpty => "tcf_empty",
            ErrorCode::TcfTooLong => "tcf_too_long",
            ErrorCode::TcfInvalidCharacter => "tcf_invalid_character",
            ErrorCode::TcfUnsupportedVersion => "tcf_unsupported_version",
            ErrorCode::TcfTruncated => "tcf_truncated",
            ErrorCode::TcfInvalidSegment => "tcf_invalid_segment",
            ErrorCode::TcfTooComplex => "tcf_too_complex",
            ErrorCode::TcfDecodeFailed => "tcf_decode_failed",
            ErrorCode::TcfDecoderPanic => "tcf_decoder_panic",
            ErrorCode::GpcInvalid => "gpc_invalid",
            ErrorCode::OnetrustInvalid => "onetrust_invalid",
            ErrorCode::OnetrustGroupsMissing => "onetrust_groups_missing",
            ErrorCode::OnetrustGroupInvalid => "onetrust_group_invalid",
            ErrorCode::CookiebotInvalid => "cookiebot_invalid",
            ErrorCode::CookieConflict => "cookie_conflict",
            ErrorCode::ConsentStoreTimeout => "consent_store_timeout",
            ErrorCode::ConsentStoreInvalid => "consent_store_invalid",
            ErrorCode::ConsentStoreUnavailable => "consent_store_unavailable",
            ErrorCode::ConsentStoreKeyInvalid => "consent_store_key_invalid",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One malformed or failed signal: where, and a code. Never the input text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct SignalError {
    pub source: SignalSource,
    pub code: ErrorCode,
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source.as_str(), self.code.as_str())
    }
}

/// OneTrust `OptanonConsent`: group id → consented.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OneTrustConsent {
    pub groups: BTreeMap<String, bool>,
}

/// Cookiebot `CookieConsent`: category → consented.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CookiebotConsent {
    pub categories: BTreeMap<String, bool>,
    /// The cookie was `-1`: Cookiebot decided consent is not required in the
    /// visitor's region. sluice's own region rule decides that instead, so this
    /// is recorded but grants nothing.
    pub consent_not_required: bool,
}

/// What the consent store said, if it was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreSignal {
    Answer(ConsentAnswer),
    /// The lookup failed; the store counts as invalid (fail-closed).
    Failed(ErrorCode),
}

/// Who set the event's `consent` object (sluice.js's `consent_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentOrigin {
    /// The site declared that it needs no consent (`consentRequired: false`): the
    /// flags are defaults, not the person's answer. Their grants count for
    /// nothing; their denials still count.
    Default,
    /// The page's `init({consent})`.
    Init,
    /// The page's `sluice('consent', …)`, i.e. its consent banner.
    Page,
    /// Derived in the browser from the TCF CMP (the gateway decodes the TC string
    /// itself as well).
    Tcf,
}

impl ConsentOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentOrigin::Default => "default",
            ConsentOrigin::Init => "init",
            ConsentOrigin::Page => "page",
            ConsentOrigin::Tcf => "tcf",
        }
    }
}

/// All consent signals seen for one event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentSignals {
    /// Google Consent Mode v2 flags from the event's `consent` object.
    pub consent_mode: ConsentMode,
    /// Named categories from the event's `consent` object (`marketing: true`),
    /// lower-cased.
    pub categories: BTreeMap<String, FlagState>,
    /// Who set the `consent` object, when the sender says (`consent_source`).
    pub consent_origin: Option<ConsentOrigin>,
    /// The `gdpr` field: whether the sender says GDPR applies.
    pub gdpr_applies: Option<bool>,
    /// Decoded TC string (field and/or cookie; intersected when both differ).
    pub tcf: Option<TcfSummary>,
    /// `Sec-GPC: 1`, a `gpc: true` field, or OneTrust's own GPC detection.
    pub gpc: bool,
    pub onetrust: Option<OneTrustConsent>,
    pub cookiebot: Option<CookiebotConsent>,
    pub store: Option<StoreSignal>,
    /// Every malformed or failed signal, in the order seen.
    pub errors: Vec<SignalError>,
}

/// The consent-related fields of an incoming event, taken out of the JSON object
/// before the rest is parsed as a [`sluice_core::ServerEvent`] (which refuses
/// unknown keys, as Graph does).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsentFields {
    pub consent: Option<Value>,
    /// sluice.js: `default`, `init`, `page` or `tcf`.
    pub consent_source: Option<Value>,
    pub gdpr: Option<Value>,
    pub gdpr_consent: Option<Value>,
    /// sluice.js: `true` when `navigator.globalPrivacyControl` is on.
    pub gpc: Option<Value>,
}

impl ConsentFields {
    /// The keys [`ConsentFields::take_from`] removes.
    pub const KEYS: [&'static str; 5] =
        ["consent", "consent_source", "gdpr", "gdpr_consent", "gpc"];

    /// Removes the consent keys (`consent`, `consent_source`, `gdpr`,
    /// `gdpr_consent`, `gpc`) from an event object.
    pub fn take_from(event: &mut Map<String, Value>) -> Self {
        ConsentFields {
            consent: event.remove("consent"),
            consent_source: event.remove("consent_source"),
            gdpr: event.remove("gdpr"),
            gdpr_consent: event.remove("gdpr_consent"),
            gpc: event.remove("gpc"),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.consent.is_none()
            && self.consent_source.is_none()
            && self.gdpr.is_none()
            && self.gdpr_consent.is_none()
            && self.gpc.is_none()
    }

    /// Parses the fields; a non-string `gdpr_consent` is a `tcf_not_a_string` error.
    pub fn to_signals(&self) -> ConsentSignals {
        let (tc, not_a_string) = match &self.gdpr_consent {
            None | Some(Value::Null) => (None, false),
            Some(Value::String(s)) => (Some(s.as_str()), false),
            Some(_) => (None, true),
        };
        let mut signals =
            ConsentSignals::from_event_fields(self.consent.as_ref(), self.gdpr.as_ref(), tc);
        if not_a_string {
            signals.error(SignalSource::Tcf, ErrorCode::TcfNotAString);
        }
        signals
            .with_consent_source(self.consent_source.as_ref())
            .with_gpc_field(self.gpc.as_ref())
    }
}

// === impl ConsentSignals ===

impl ConsentSignals {
    /// Reads the event's own fields: the `consent` object (Consent Mode v2 names
    /// and named categories), the `gdpr` flag and the `gdpr_consent` TC string.
    pub fn from_event_fields(
        consent: Option<&Value>,
        gdpr: Option<&Value>,
        gdpr_consent: Option<&str>,
    ) -> Self {
        let mut s = ConsentSignals::default();
        match consent {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                let parsed = parse_consent_map(map);
                s.consent_mode = parsed.consent_mode;
                s.categories = parsed.categories;
                for code in parsed.errors {
                    s.error(SignalSource::ConsentObject, code);
                }
            }
            Some(_) => s.error(SignalSource::ConsentObject, ErrorCode::ConsentObjectInvalid),
        }
        match gdpr.map(parse_gdpr_flag) {
            None | Some(Ok(None)) => {}
            Some(Ok(Some(applies))) => s.gdpr_applies = Some(applies),
            Some(Err(code)) => s.error(SignalSource::Tcf, code),
        }
        if let Some(tc) = gdpr_consent.filter(|t| !t.trim().is_empty()) {
            s.add_tc_string(tc);
        }
        s
    }

    /// Reads the consent cookies from a `Cookie` request header: `euconsent-v2`
    /// (TC string), `OptanonConsent` (OneTrust) and `CookieConsent` (Cookiebot).
    /// Other cookies are not looked at.
    pub fn with_cookies(mut self, cookie_header: Option<&str>) -> Self {
        let Some(header) = cookie_header else {
            return self;
        };
        match cookies::single_value(header, cookies::EUCONSENT_V2) {
            Ok(None) => {}
            Ok(Some(tc)) => {
                if !tc.trim().is_empty() {
                    self.add_tc_string(tc);
                }
            }
            Err(code) => self.error(SignalSource::Tcf, code),
        }
        match cookies::single_value(header, cookies::ONETRUST) {
            Ok(None) => {}
            Ok(Some(v)) => match cookies::parse_onetrust(v) {
                Ok(parsed) => {
                    self.gpc |= parsed.gpc;
                    self.onetrust = Some(parsed.consent);
                }
                Err(code) => self.error(SignalSource::OneTrust, code),
            },
            Err(code) => self.error(SignalSource::OneTrust, code),
        }
        match cookies::single_value(header, cookies::COOKIEBOT) {
            Ok(None) => {}
            Ok(Some(v)) => match cookies::parse_cookiebot(v) {
                Ok(parsed) => self.cookiebot = Some(parsed),
                Err(code) => self.error(SignalSource::Cookiebot, code),
            },
            Err(code) => self.error(SignalSource::Cookiebot, code),
        }
        self
    }

    /// Reads the `Sec-GPC` header. The specification defines only the value `1`;
    /// anything else is recorded as `gpc_invalid`, which the policy then treats
    /// like an opt-out it could not read (never as "no objection").
    pub fn with_gpc(mut self, header: Option<&str>) -> Self {
        match header.map(str::trim) {
            None => {}
            Some("1") => self.gpc = true,
            Some(_) => self.error(SignalSource::Gpc, ErrorCode::GpcInvalid),
        }
        self
    }

    /// Reads a `gpc` body field (sluice.js sends `true`). `false`/`0`/`null`
    /// mean nothing; any other value is `gpc_invalid`.
    pub fn with_gpc_field(mut self, value: Option<&Value>) -> Self {
        match value {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => self.gpc = true,
            Some(Value::Number(n)) if n.as_u64() == Some(1) => self.gpc = true,
            Some(Value::Number(n)) if n.as_u64() == Some(0) => {}
            Some(_) => self.error(SignalSource::Gpc, ErrorCode::GpcInvalid),
        }
        self
    }

    /// Reads `consent_source`. An unknown value makes the consent object invalid:
    /// we cannot tell whether its flags are the person's answer.
    pub fn with_consent_source(mut self, value: Option<&Value>) -> Self {
        let origin = match value {
            None | Some(Value::Null) => return self,
            Some(Value::String(s)) => match s.as_str() {
                "default" => Some(ConsentOrigin::Default),
                "init" => Some(ConsentOrigin::Init),
                "page" => Some(ConsentOrigin::Page),
                "tcf" => Some(ConsentOrigin::Tcf),
                _ => None,
            },
            Some(_) => None,
        };
        match origin {
            Some(o) => self.consent_origin = Some(o),
            None => self.error(SignalSource::ConsentObject, ErrorCode::ConsentSourceUnknown),
        }
        self
    }

    /// True when the event's own grants count as the person's answer (they do
    /// not when the site marked them as defaults).
    pub fn event_grants_count(&self) -> bool {
        self.consent_origin != Some(ConsentOrigin::Default)
    }

    /// Adds the result of a consent-store lookup; a failure makes the store an
    /// invalid source (fail-closed).
    pub fn with_store(mut self, result: Result<ConsentAnswer, LookupError>) -> Self {
        match result {
            Ok(answer) => self.store = Some(StoreSignal::Answer(answer)),
            Err(e) => {
                let code = e.code();
                self.store = Some(StoreSignal::Failed(code));
                self.error(SignalSource::Store, code);
            }
        }
        self
    }

    /// True when nothing at all was seen (no signal and no error).
    pub fn is_empty(&self) -> bool {
        self.consent_mode.is_empty()
            && self.categories.is_empty()
            && self.consent_origin.is_none()
            && self.gdpr_applies.is_none()
            && self.tcf.is_none()
            && !self.gpc
            && self.onetrust.is_none()
            && self.cookiebot.is_none()
            && self.store.is_none()
            && self.errors.is_empty()
    }

    /// True when a signal from `source` was malformed or failed.
    pub fn has_errors_from(&self, source: SignalSource) -> bool {
        self.errors.iter().any(|e| e.source == source)
    }

    /// The error codes of one source, deduplicated.
    pub fn error_codes_from(&self, source: SignalSource) -> Vec<ErrorCode> {
        let mut codes: Vec<ErrorCode> = self
            .errors
            .iter()
            .filter(|e| e.source == source)
            .map(|e| e.code)
            .collect();
        codes.sort_unstable();
        codes.dedup();
        codes
    }

    /// The store's answer when the lookup succeeded and found a record.
    pub fn store_answer(&self) -> Option<&ConsentAnswer> {
        match &self.store {
            Some(StoreSignal::Answer(a)) if a.known => Some(a),
            _ => None,
        }
    }

    /// Consent Mode flag combined across the event and the store; a denial in
    /// either wins.
    pub fn consent_mode_flag(&self, t: ConsentModeType) -> Option<FlagState> {
        let event = self
            .consent_mode
            .get(t)
            .filter(|v| *v == FlagState::Denied || self.event_grants_count());
        let store = self.store_answer().and_then(|a| a.consent_mode.get(t));
        combine_flags([event, store])
    }

    /// The signals as short `name=value` strings for audit records and the
    /// explain output: never PII, never raw consent strings. TCF vendor consents
    /// are listed only for `vendors` (those the policy asks about).
    pub fn summary(&self, vendors: &[u16]) -> Vec<String> {
        let mut out = Vec::new();
        for t in ConsentModeType::ALL {
            if let Some(v) = self.consent_mode.get(t) {
                out.push(format!("{}={}", t.as_str(), v.as_str()));
            }
        }
        for (name, v) in &self.categories {
            out.push(format!("category:{name}={}", v.as_str()));
        }
        if let Some(o) = self.consent_origin {
            out.push(format!("consent_source={}", o.as_str()));
        }
        if let Some(applies) = self.gdpr_applies {
            out.push(format!("gdpr={}", u8::from(applies)));
        }
        if let Some(t) = &self.tcf {
            out.push(format!(
                "tcf=purposes:{};policy:{}",
                join(t.purpose_consents.iter()),
                t.policy_version
            ));
            if !t.purpose_legitimate_interests.is_empty() {
                out.push(format!(
                    "tcf_li=purposes:{}",
                    join(t.purpose_legitimate_interests.iter())
                ));
            }
            for v in vendors {
                out.push(format!(
                    "tcf_vendor:{v}={}",
                    u8::from(t.vendor_consents.contains(v))
                ));
            }
        }
        if self.gpc {
            out.push("gpc=1".to_owned());
        }
        if let Some(ot) = &self.onetrust {
            let groups: Vec<String> = ot
                .groups
                .iter()
                .map(|(g, v)| format!("{g}:{}", u8::from(*v)))
                .collect();
            out.push(format!("onetrust={}", groups.join(",")));
        }
        if let Some(cb) = &self.cookiebot {
            if cb.consent_not_required {
                out.push("cookiebot=not_required".to_owned());
            } else {
                let cats: Vec<String> = cb
                    .categories
                    .iter()
                    .map(|(c, v)| format!("{c}:{}", u8::from(*v)))
                    .collect();
                out.push(format!("cookiebot={}", cats.join(",")));
            }
        }
        match &self.store {
            None => {}
            Some(StoreSignal::Answer(a)) if !a.known => out.push("store=not_found".to_owned()),
            Some(StoreSignal::Answer(a)) => {
                let mut parts = Vec::new();
                for t in ConsentModeType::ALL {
                    if let Some(v) = a.consent_mode.get(t) {
                        parts.push(format!("{}:{}", t.as_str(), v.as_str()));
                    }
                }
                for (name, v) in &a.categories {
                    parts.push(format!("{name}:{}", v.as_str()));
                }
                out.push(format!("store={}", parts.join(",")));
            }
            Some(StoreSignal::Failed(code)) => out.push(format!("store=failed:{code}")),
        }
        for e in &self.errors {
            out.push(format!("error={e}"));
        }
        out
    }

    pub(crate) fn error(&mut self, source: SignalSource, code: ErrorCode) {
        self.errors.push(SignalError { source, code });
    }

    fn add_tc_string(&mut self, tc: &str) {
        match tcf::decode(tc) {
            Ok(summary) => {
                self.tcf = Some(match self.tcf.take() {
                    Some(existing) if existing != summary => existing.intersect(&summary),
                    _ => summary,
                });
            }
            Err(code) => self.error(SignalSource::Tcf, code),
        }
    }
}

fn join<'a, T: fmt::Display + 'a>(items: impl Iterator<Item = &'a T>) -> String {
    items.map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// Combines answers about the same thing from several places: any denial wins,
/// otherwise any grant, otherwise absent.
pub(crate) fn combine_flags<const N: usize>(flags: [Option<FlagState>; N]) -> Option<FlagState> {
    if flags.contains(&Some(FlagState::Denied)) {
        Some(FlagState::Denied)
    } else if flags.contains(&Some(FlagState::Granted)) {
        Some(FlagState::Granted)
    } else {
        None
    }
}

/// The result of parsing a `consent`-shaped object (the event's or the store's).
#[derive(Debug, Default)]
pub(crate) struct ParsedConsentMap {
    pub consent_mode: ConsentMode,
    pub categories: BTreeMap<String, FlagState>,
    pub errors: Vec<ErrorCode>,
}

/// Consent Mode parameters that are settings, not consent answers
/// (`gtag('consent', 'default', {wait_for_update: 500, region: [...]})`).
const CONSENT_MODE_SETTINGS: [&str; 4] = [
    "wait_for_update",
    "region",
    "url_passthrough",
    "ads_data_redaction",
];

pub(crate) fn parse_consent_map(map: &Map<String, Value>) -> ParsedConsentMap {
    let mut out = ParsedConsentMap::default();
    if map.len() > MAX_CONSENT_KEYS {
        out.errors.push(ErrorCode::ConsentTooManyKeys);
        return out;
    }
    for (key, value) in map {
        let name = key.trim().to_ascii_lowercase();
        if CONSENT_MODE_SETTINGS.contains(&name.as_str()) {
            continue;
        }
        if !is_identifier(&name) {
            out.errors.push(ErrorCode::ConsentCategoryNameInvalid);
            continue;
        }
        let Some(state) = parse_flag_value(value) else {
            out.errors.push(ErrorCode::ConsentValueUnknown);
            continue;
        };
        match ConsentModeType::parse(&name) {
            Some(t) => {
                let merged = combine_flags([out.consent_mode.get(t), Some(state)]);
                if let Some(m) = merged {
                    out.consent_mode.set(t, m);
                }
            }
            None => {
                let merged = combine_flags([out.categories.get(&name).copied(), Some(state)]);
                if let Some(m) = merged {
                    out.categories.insert(name, m);
                }
            }
        }
    }
    out
}

/// `granted`/`denied` (Consent Mode), booleans, `true`/`false`, `yes`/`no`,
/// `1`/`0` (as numbers or strings). Anything else is unknown.
fn parse_flag_value(value: &Value) -> Option<FlagState> {
    match value {
        Value::Bool(b) => Some(FlagState::from_bool(*b)),
        Value::Number(n) => match n.as_u64() {
            Some(1) => Some(FlagState::Granted),
            Some(0) => Some(FlagState::Denied),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "granted" | "true" | "yes" | "1" => Some(FlagState::Granted),
            "denied" | "false" | "no" | "0" => Some(FlagState::Denied),
            _ => None,
        },
        _ => None,
    }
}

/// `gdpr`: `1`/`0`, `"1"`/`"0"`, `true`/`false`; `null` = absent.
fn parse_gdpr_flag(value: &Value) -> Result<Option<bool>, ErrorCode> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Number(n) => match n.as_u64() {
            Some(1) => Ok(Some(true)),
            Some(0) => Ok(Some(false)),
            _ => Err(ErrorCode::GdprFlagInvalid),
        },
        Value::String(s) => match s.trim() {
            "1" | "true" => Ok(Some(true)),
            "0" | "false" => Ok(Some(false)),
            _ => Err(ErrorCode::GdprFlagInvalid),
        },
        _ => Err(ErrorCode::GdprFlagInvalid),
    }
}

/// A short identifier: what category names and banner group ids look like.
pub(crate) fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn consent_mode_and_categories_are_split() {
        let v = json!({"ad_storage": "granted", "ad_user_data": "DENIED", "Marketing": true,
                       "statistics": 0, "wait_for_update": 500});
        let s = ConsentSignals::from_event_fields(Some(&v), None, None);
        assert_eq!(s.consent_mode.ad_storage, Some(FlagState::Granted));
        assert_eq!(s.consent_mode.ad_user_data, Some(FlagState::Denied));
        assert_eq!(s.consent_mode.ad_personalization, None);
        assert_eq!(s.categories.get("marketing"), Some(&FlagState::Granted));
        assert_eq!(s.categories.get("statistics"), Some(&FlagState::Denied));
        assert!(s.errors.is_empty());
    }

    #[test]
    fn unknown_values_and_bad_names_are_errors_without_the_text() {
        let v = json!({"ad_user_data": "maybe", "bad name<script>": true, "x": [1]});
        let s = ConsentSignals::from_event_fields(Some(&v), None, None);
        assert_eq!(s.consent_mode.ad_user_data, None);
        assert_eq!(
            s.error_codes_from(SignalSource::ConsentObject),
            vec![
                ErrorCode::ConsentValueUnknown,
                ErrorCode::ConsentCategoryNameInvalid
            ]
        );
        let text = format!("{:?} {}", s.errors, s.summary(&[]).join(" "));
        assert!(!text.contains("maybe") && !text.contains("script"));
    }

    #[test]
    fn non_object_consent_and_bad_gdpr_flags_are_errors() {
        let s = ConsentSignals::from_event_fields(Some(&json!("granted")), Some(&json!(2)), None);
        assert_eq!(
            s.errors,
            vec![
                SignalError {
                    source: SignalSource::ConsentObject,
                    code: ErrorCode::ConsentObjectInvalid
                },
                SignalError {
                    source: SignalSource::Tcf,
                    code: ErrorCode::GdprFlagInvalid
                },
            ]
        );
        for (v, want) in [
            (json!(1), Some(true)),
            (json!("0"), Some(false)),
            (json!(true), Some(true)),
            (json!(null), None),
        ] {
            let s = ConsentSignals::from_event_fields(None, Some(&v), None);
            assert_eq!(s.gdpr_applies, want);
            assert!(s.errors.is_empty());
        }
    }

    #[test]
    fn too_many_keys_is_one_error() {
        let mut m = Map::new();
        for i in 0..=MAX_CONSENT_KEYS {
            m.insert(format!("c{i}"), json!(true));
        }
        let s = ConsentSignals::from_event_fields(Some(&Value::Object(m)), None, None);
        assert!(s.categories.is_empty());
        assert_eq!(
            s.error_codes_from(SignalSource::ConsentObject),
            vec![ErrorCode::ConsentTooManyKeys]
        );
    }

    #[test]
    fn gpc_header_values() {
        assert!(ConsentSignals::default().with_gpc(Some("1")).gpc);
        assert!(ConsentSignals::default().with_gpc(Some(" 1 ")).gpc);
        let bad = ConsentSignals::default().with_gpc(Some("0"));
        assert!(!bad.gpc);
        assert_eq!(
            bad.error_codes_from(SignalSource::Gpc),
            vec![ErrorCode::GpcInvalid]
        );
        assert!(ConsentSignals::default().with_gpc(None).is_empty());
    }

    #[test]
    fn gpc_field_and_consent_source() {
        let fields = ConsentFields {
            consent: Some(json!({"ad_user_data": "granted"})),
            consent_source: Some(json!("default")),
            gpc: Some(json!(true)),
            ..ConsentFields::default()
        };
        let s = fields.to_signals();
        assert!(s.gpc);
        assert_eq!(s.consent_origin, Some(ConsentOrigin::Default));
        assert_eq!(s.consent_mode_flag(ConsentModeType::AdUserData), None);
        let bad = ConsentFields {
            consent_source: Some(json!("cmp")),
            gpc: Some(json!("yes")),
            ..ConsentFields::default()
        }
        .to_signals();
        assert!(!bad.gpc);
        assert!(bad.has_errors_from(SignalSource::ConsentObject));
        assert_eq!(
            bad.error_codes_from(SignalSource::Gpc),
            vec![ErrorCode::GpcInvalid]
        );
    }

    #[test]
    fn consent_fields_are_taken_out_of_the_event() {
        let mut obj = json!({"event_name": "Purchase", "consent": {"marketing": true},
                             "gdpr": 1, "gdpr_consent": 5})
        .as_object()
        .cloned()
        .unwrap();
        let fields = ConsentFields::take_from(&mut obj);
        assert_eq!(obj.len(), 1);
        let s = fields.to_signals();
        assert_eq!(s.gdpr_applies, Some(true));
        assert_eq!(
            s.error_codes_from(SignalSource::Tcf),
            vec![ErrorCode::TcfNotAString]
        );
    }
}
