//! Consent policy as code: ordered rules, each resolving to one [`Outcome`].
//!
//! A policy is TOML (see the crate README for the format and
//! `presets/default.toml` for the shipped preset). Rules are tried in order; the
//! first whose `regions` and `sources` both match decides. A rule with no
//! `require` list applies its `outcome` unconditionally; otherwise its checks are
//! evaluated ([`crate::decision`]) and the result picks `outcome` (consent
//! given), `on_denied` or `on_missing` (both `drop` unless set). An event that
//! matches no rule is dropped (`default_deny`).
//!
//! Parsing is strict (`deny_unknown_fields`, known region groups, TCF purposes
//! 1–11, unique rule ids): a typo in a privacy policy must stop the server from
//! starting, not silently change what is sent.

use crate::signals::{ConsentModeType, is_identifier};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// The default preset, as TOML: it doubles as a worked example of the format.
pub const DEFAULT_PRESET_TOML: &str = include_str!("../presets/default.toml");

/// Names accepted by [`Policy::preset`] and by `extends`.
pub const PRESETS: [&str; 1] = ["default"];

/// Rule id reported when no rule matched.
pub const DEFAULT_DENY_RULE: &str = "default_deny";

/// TCF v2.2 defines purposes 1–11.
pub const MAX_TCF_PURPOSE: u8 = 11;

/// US states where Meta applies Limited Data Use to Business Tools
/// (capi-reference.md §10).
pub const US_LDU_STATES: [&str; 14] = [
    "CA", "CO", "CT", "FL", "OR", "TX", "MT", "DE", "NE", "NH", "NJ", "MN", "MD", "RI",
];

/// EU member states plus Iceland, Liechtenstein and Norway.
pub const EEA_COUNTRIES: [&str; 30] = [
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
];

/// Which sluice endpoint an event came in through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `/collect`, from sluice.js in the browser.
    Browser,
    /// `/v1/events`, from shop/CRM backends and webhooks.
    Backend,
    /// The Graph-compatible endpoint, from existing CAPI code.
    Graph,
    /// `sluice import`.
    Import,
}

impl Source {
    pub const ALL: [Source; 4] = [
        Source::Browser,
        Source::Backend,
        Source::Graph,
        Source::Import,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Browser => "browser",
            Source::Backend => "backend",
            Source::Graph => "graph",
            Source::Import => "import",
        }
    }
}

impl FromStr for Source {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Source::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| PolicyError::invalid("source", format!("unknown source {s:?}")))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Send as is (sender's own `opt_out`/LDU fields are kept).
    Deliver,
    /// Send with Meta's Limited Data Use flag and country/state codes.
    DeliverLdu,
    /// Send with every person identifier removed (see [`crate::apply()`]).
    DeliverWithoutIdentifiers,
    /// Do not store, do not send.
    Drop,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Deliver,
        Outcome::DeliverLdu,
        Outcome::DeliverWithoutIdentifiers,
        Outcome::Drop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Deliver => "deliver",
            Outcome::DeliverLdu => "deliver_ldu",
            Outcome::DeliverWithoutIdentifiers => "deliver_without_identifiers",
            Outcome::Drop => "drop",
        }
    }

    /// How much an outcome withholds; used to pick the stricter of two.
    pub fn restrictiveness(self) -> u8 {
        match self {
            Outcome::Deliver => 0,
            Outcome::DeliverLdu => 1,
            Outcome::DeliverWithoutIdentifiers => 2,
            Outcome::Drop => 3,
        }
    }

    /// The stricter of two outcomes.
    pub fn stricter(self, other: Outcome) -> Outcome {
        if other.restrictiveness() > self.restrictiveness() {
            other
        } else {
            self
        }
    }

    pub fn delivers(self) -> bool {
        self != Outcome::Drop
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a rule's `regions` list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RegionMatcher {
    /// `*`: everything, including an unknown region.
    Any,
    /// `UNKNOWN`: no country could be determined.
    Unknown,
    /// `EEA`: EU + IS, LI, NO.
    Eea,
    /// `EU`: the 27 member states.
    Eu,
    /// `US_LDU_STATES`: the US states in [`US_LDU_STATES`].
    UsLduStates,
    /// A country code (`DE`; `UK` is read as `GB`).
    Country(String),
    /// A US (or other) subdivision: `US-CA`.
    Subdivision { country: String, code: String },
}

impl RegionMatcher {
    pub fn matches(&self, region: &crate::RegionHint) -> bool {
        let country = region.country();
        match self {
            RegionMatcher::Any => true,
            RegionMatcher::Unknown => country.is_none(),
            RegionMatcher::Eea => country.is_some_and(|c| EEA_COUNTRIES.contains(&c)),
            RegionMatcher::Eu => country
                .is_some_and(|c| EEA_COUNTRIES.contains(&c) && !matches!(c, "IS" | "LI" | "NO")),
            RegionMatcher::UsLduStates => {
                country == Some("US") && region.state().is_some_and(|s| US_LDU_STATES.contains(&s))
            }
            RegionMatcher::Country(c) => country == Some(c.as_str()),
            RegionMatcher::Subdivision { country: c, code } => {
                country == Some(c.as_str()) && region.state() == Some(code.as_str())
            }
        }
    }
}

impl FromStr for RegionMatcher {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PolicyError::invalid("regions", format!("unknown region {s:?}"));
        Ok(match s {
            "*" => RegionMatcher::Any,
            "UNKNOWN" => RegionMatcher::Unknown,
            "EEA" => RegionMatcher::Eea,
            "EU" => RegionMatcher::Eu,
            "US_LDU_STATES" => RegionMatcher::UsLduStates,
            "UK" => RegionMatcher::Country("GB".to_owned()),
            _ => {
                let upper = |t: &str, n: std::ops::RangeInclusive<usize>| {
                    n.contains(&t.len())
                        && t.bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                };
                match s.split_once('-') {
                    None if s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()) => {
                        RegionMatcher::Country(s.to_owned())
                    }
                    Some((c, code)) if c.len() == 2 && upper(c, 2..=2) && upper(code, 1..=3) => {
                        RegionMatcher::Subdivision {
                            country: c.to_owned(),
                            code: code.to_owned(),
                        }
                    }
                    _ => return Err(bad()),
                }
            }
        })
    }
}

impl fmt::Display for RegionMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegionMatcher::Any => f.write_str("*"),
            RegionMatcher::Unknown => f.write_str("UNKNOWN"),
            RegionMatcher::Eea => f.write_str("EEA"),
            RegionMatcher::Eu => f.write_str("EU"),
            RegionMatcher::UsLduStates => f.write_str("US_LDU_STATES"),
            RegionMatcher::Country(c) if c == "GB" => f.write_str("UK"),
            RegionMatcher::Country(c) => f.write_str(c),
            RegionMatcher::Subdivision { country, code } => write!(f, "{country}-{code}"),
        }
    }
}

/// One entry of a rule's `sources` list: `*` or a source name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceMatcher {
    Any,
    Only(Source),
}

impl SourceMatcher {
    pub fn matches(self, source: Source) -> bool {
        match self {
            SourceMatcher::Any => true,
            SourceMatcher::Only(s) => s == source,
        }
    }
}

impl FromStr for SourceMatcher {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "*" {
            Ok(SourceMatcher::Any)
        } else {
            s.parse().map(SourceMatcher::Only)
        }
    }
}

impl fmt::Display for SourceMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceMatcher::Any => f.write_str("*"),
            SourceMatcher::Only(s) => f.write_str(s.as_str()),
        }
    }
}

/// One signal a rule looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Check {
    /// A Consent Mode v2 flag (`ad_user_data`, …), from the event or the store.
    ConsentMode(ConsentModeType),
    /// TCF: the rule's `tcf_purposes` consented (and `tcf_vendor`, if set).
    Tcf,
    /// Global Privacy Control. Can only object, never grant: `Sec-GPC: 1` counts as
    /// a denial, its absence counts as nothing.
    Gpc,
    /// A named category (`category:marketing`) from the `consent` object, the
    /// mapped banner cookies or the store.
    Category(String),
}

impl FromStr for Check {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(t) = ConsentModeType::parse(s) {
            return Ok(Check::ConsentMode(t));
        }
        match s {
            "tcf" => Ok(Check::Tcf),
            "gpc" => Ok(Check::Gpc),
            _ => match s.strip_prefix("category:") {
                Some(name) if is_identifier(name) => Ok(Check::Category(name.to_ascii_lowercase())),
                _ => Err(PolicyError::invalid(
                    "require",
                    format!(
                        "unknown check {s:?} (expected ad_storage, ad_user_data, ad_personalization, \
                         analytics_storage, tcf, gpc or category:<name>)"
                    ),
                )),
            },
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::ConsentMode(t) => f.write_str(t.as_str()),
            Check::Tcf => f.write_str("tcf"),
            Check::Gpc => f.write_str("gpc"),
            Check::Category(c) => write!(f, "category:{c}"),
        }
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(|e: PolicyError| de::Error::custom(e))
            }
        }
    };
}
string_serde!(RegionMatcher);
string_serde!(SourceMatcher);
string_serde!(Check);

/// How a rule combines its checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequireMode {
    /// One granting check is enough (any denial still wins).
    #[default]
    Any,
    /// Every check must grant.
    All,
}

/// One policy rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable id; appears in decisions, audit records and metrics.
    pub id: String,
    /// Free text for humans; shown by `explain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the person is; default `["*"]`.
    #[serde(default = "any_region")]
    pub regions: Vec<RegionMatcher>,
    /// Which endpoint the event came through; default `["*"]`.
    #[serde(default = "any_source")]
    pub sources: Vec<SourceMatcher>,
    /// Signals that decide; empty = no consent needed, `outcome` always applies.
    #[serde(default)]
    pub require: Vec<Check>,
    #[serde(default)]
    pub require_mode: RequireMode,
    /// TCF purposes the `tcf` check needs consent for; default 1, 3, 4, 7
    /// (store/access, personalised-ads profile, personalised ads, measurement).
    #[serde(default = "default_tcf_purposes")]
    pub tcf_purposes: Vec<u8>,
    /// A TCF vendor id that must also have consent (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcf_vendor: Option<u16>,
    /// Outcome when consent is given (or not needed).
    pub outcome: Outcome,
    /// Outcome when no signal the rule reads is present; default `drop`.
    #[serde(default = "default_drop")]
    pub on_missing: Outcome,
    /// Outcome when a signal refuses; default `drop`.
    #[serde(default = "default_drop")]
    pub on_denied: Outcome,
}

fn any_region() -> Vec<RegionMatcher> {
    vec![RegionMatcher::Any]
}
fn any_source() -> Vec<SourceMatcher> {
    vec![SourceMatcher::Any]
}
fn default_tcf_purposes() -> Vec<u8> {
    vec![1, 3, 4, 7]
}
fn default_drop() -> Outcome {
    Outcome::Drop
}

impl Rule {
    /// The region matcher that matched, when both region and source match.
    pub fn matches(&self, region: &crate::RegionHint, source: Source) -> Option<&RegionMatcher> {
        if !self.sources.iter().any(|s| s.matches(source)) {
            return None;
        }
        self.regions.iter().find(|r| r.matches(region))
    }

    /// The checks' combined result picks the outcome; an unreadable signal gets
    /// the stricter of `on_missing` and `on_denied` (never the consent outcome).
    pub fn outcome_for(&self, state: crate::ConsentState) -> Outcome {
        use crate::ConsentState as S;
        match state {
            S::Granted | S::NotRequired => self.outcome,
            S::Denied => self.on_denied,
            S::Missing => self.on_missing,
            S::Invalid => self.on_missing.stricter(self.on_denied),
        }
    }
}

/// Banner cookie → sluice category names. An empty name ignores that group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BannerMapping {
    /// OneTrust group id (`C0004`) → category (`marketing`).
    pub onetrust: BTreeMap<String, String>,
    /// Cookiebot category (`marketing`) → category.
    pub cookiebot: BTreeMap<String, String>,
}

impl Default for BannerMapping {
    /// OneTrust's standard groups and Cookiebot's four categories, mapped onto
    /// the same names: necessary, preferences, statistics, marketing.
    fn default() -> Self {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        BannerMapping {
            onetrust: map(&[
                ("C0001", "necessary"),
                ("C0002", "statistics"),
                ("C0003", "preferences"),
                ("C0004", "marketing"),
                ("C0005", "social_media"),
            ]),
            cookiebot: map(&[
                ("necessary", "necessary"),
                ("preferences", "preferences"),
                ("statistics", "statistics"),
                ("marketing", "marketing"),
            ]),
        }
    }
}

/// Limited Data Use codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LduConfig {
    /// US state → Meta's `data_processing_options_state` code. States not listed
    /// get `0` (Meta geolocates from the IP). Only California's `1000` is
    /// confirmed in Meta's documentation; the `1001`–`1013` codes seen elsewhere
    /// are unverified (capi-reference.md §10), so they are not in the default.
    pub state_codes: BTreeMap<String, i64>,
}

impl Default for LduConfig {
    fn default() -> Self {
        LduConfig {
            state_codes: BTreeMap::from([("CA".to_owned(), 1000)]),
        }
    }
}

/// `user_data` keys that may stay under `deliver_without_identifiers`: coarse
/// attributes that do not single out a person on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepKey {
    ClientUserAgent,
    Country,
    St,
    Ct,
    Zp,
    Ge,
}

impl KeepKey {
    pub fn as_str(self) -> &'static str {
        match self {
            KeepKey::ClientUserAgent => "client_user_agent",
            KeepKey::Country => "country",
            KeepKey::St => "st",
            KeepKey::Ct => "ct",
            KeepKey::Zp => "zp",
            KeepKey::Ge => "ge",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WithoutIdentifiers {
    /// Keys kept; default `["client_user_agent"]` (Meta requires it on website
    /// events and it does not identify a person by itself).
    pub keep: BTreeSet<KeepKey>,
}

impl Default for WithoutIdentifiers {
    fn default() -> Self {
        WithoutIdentifiers {
            keep: BTreeSet::from([KeepKey::ClientUserAgent]),
        }
    }
}

/// A validated consent policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Recorded in every decision and audit record.
    pub version: String,
    pub banners: BannerMapping,
    pub ldu: LduConfig,
    pub without_identifiers: WithoutIdentifiers,
    pub rules: Vec<Rule>,
}

/// The file format; `extends` pulls in a preset behind the file's own rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: String,
    #[serde(default)]
    extends: Option<String>,
    #[serde(default)]
    banners: Option<PartialBanners>,
    #[serde(default)]
    ldu: Option<PartialLdu>,
    #[serde(default)]
    without_identifiers: Option<WithoutIdentifiers>,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialBanners {
    #[serde(default)]
    onetrust: BTreeMap<String, String>,
    #[serde(default)]
    cookiebot: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialLdu {
    #[serde(default)]
    state_codes: BTreeMap<String, i64>,
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is not valid TOML for this format: {0}")]
    Toml(String),
    #[error("unknown preset {0:?} (known: default)")]
    UnknownPreset(String),
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
}

impl PolicyError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        PolicyError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

// === impl Policy ===

impl Policy {
    /// A shipped preset by name (`default`).
    pub fn preset(name: &str) -> Result<Policy, PolicyError> {
        match name {
            "default" => Policy::from_toml_str(DEFAULT_PRESET_TOML),
            other => Err(PolicyError::UnknownPreset(other.to_owned())),
        }
    }

    /// Parses and validates a policy file. With `extends = "default"`, the
    /// file's rules are tried first, then the preset's; its `banners` and
    /// `ldu.state_codes` entries are merged over the preset's.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| PolicyError::Toml(e.to_string()))?;
        let base = match &file.extends {
            Some(name) => Policy::preset(name)?,
            None => Policy {
                version: String::new(),
                banners: BannerMapping::default(),
                ldu: LduConfig::default(),
                without_identifiers: WithoutIdentifiers::default(),
                rules: Vec::new(),
            },
        };
        let mut banners = base.banners;
        if let Some(b) = file.banners {
            banners.onetrust.extend(b.onetrust);
            banners.cookiebot.extend(b.cookiebot);
        }
        let mut ldu = base.ldu;
        if let Some(l) = file.ldu {
            ldu.state_codes.extend(l.state_codes);
        }
        let mut rules = file.rules;
        rules.extend(base.rules);
        let policy = Policy {
            version: file.version,
            banners,
            ldu,
            without_identifiers: file.without_identifiers.unwrap_or(base.without_identifiers),
            rules,
        };
        policy.validate()?;
        Ok(policy)
    }

    /// Checks everything serde cannot: ids, purposes, codes, names.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let v = self.version.trim();
        if v.is_empty() || v.len() > 64 {
            return Err(PolicyError::invalid(
                "version",
                "must be 1 to 64 characters",
            ));
        }
        if self.rules.is_empty() {
            return Err(PolicyError::invalid(
                "rules",
                "a policy needs at least one rule",
            ));
        }
        let mut ids = BTreeSet::new();
        for rule in &self.rules {
            let at = |m: &str| PolicyError::invalid(format!("rules[{}]", rule.id), m.to_owned());
            if !is_identifier(&rule.id) || rule.id == DEFAULT_DENY_RULE {
                return Err(PolicyError::invalid(
                    "rules.id",
                    format!("{:?} is not a usable rule id", rule.id),
                ));
            }
            if !ids.insert(rule.id.as_str()) {
                return Err(PolicyError::invalid(
                    "rules.id",
                    format!("duplicate rule id {:?}", rule.id),
                ));
            }
            if rule.regions.is_empty() {
                return Err(at("regions must not be empty"));
            }
            if rule.sources.is_empty() {
                return Err(at("sources must not be empty"));
            }
            if rule.require.contains(&Check::Tcf) && rule.tcf_purposes.is_empty() {
                return Err(at("the tcf check needs tcf_purposes"));
            }
            if rule
                .tcf_purposes
                .iter()
                .any(|p| *p == 0 || *p > MAX_TCF_PURPOSE)
            {
                return Err(at("tcf_purposes must be between 1 and 11"));
            }
            if rule.tcf_vendor == Some(0) {
                return Err(at("tcf_vendor must be a vendor id (1 or more)"));
            }
            if rule.tcf_vendor.is_some() && !rule.require.contains(&Check::Tcf) {
                return Err(at("tcf_vendor is set but the rule does not require tcf"));
            }
            if rule.require.len() == 1
                && rule.require[0] == Check::Gpc
                && rule.require_mode == RequireMode::All
            {
                return Err(at(
                    "gpc can only object; require_mode = \"all\" with only gpc never grants",
                ));
            }
        }
        for (state, code) in &self.ldu.state_codes {
            if state.len() != 2 || !state.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(PolicyError::invalid(
                    "ldu.state_codes",
                    format!("{state:?} is not a two-letter state code"),
                ));
            }
            if *code < 0 {
                return Err(PolicyError::invalid(
                    "ldu.state_codes",
                    "codes are 0 or more",
                ));
            }
        }
        for (field, map) in [
            ("banners.onetrust", &self.banners.onetrust),
            ("banners.cookiebot", &self.banners.cookiebot),
        ] {
            for (k, v) in map {
                if !is_identifier(k) || !(v.is_empty() || is_identifier(v)) {
                    return Err(PolicyError::invalid(
                        field,
                        format!("{k:?} = {v:?} is not a name mapping"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Things that are allowed but probably not meant.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let catch_all = self.rules.iter().any(|r| {
            r.regions.contains(&RegionMatcher::Any) && r.sources.contains(&SourceMatcher::Any)
        });
        if !catch_all {
            out.push(format!(
                "no rule matches every region and source; unmatched events are dropped by {DEFAULT_DENY_RULE}"
            ));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let shadowed = self.rules[..i].iter().any(|earlier| {
                earlier.regions.contains(&RegionMatcher::Any)
                    && earlier.sources.contains(&SourceMatcher::Any)
            });
            if shadowed {
                out.push(format!(
                    "rule {:?} can never match: an earlier rule matches every region and source",
                    rule.id
                ));
            }
        }
        out
    }

    /// Every TCF vendor id any rule asks about (for audit summaries).
    pub fn tcf_vendors(&self) -> Vec<u16> {
        let set: BTreeSet<u16> = self.rules.iter().filter_map(|r| r.tcf_vendor).collect();
        set.into_iter().collect()
    }

    /// Meta's state code for LDU: configured, else 0 (geolocate).
    pub fn ldu_state_code(&self, state: Option<&str>) -> i64 {
        state
            .and_then(|s| self.ldu.state_codes.get(s).copied())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RegionHint;

    #[test]
    fn default_preset_loads_and_has_no_warnings() {
        let p = Policy::preset("default").unwrap();
        assert!(p.warnings().is_empty(), "{:?}", p.warnings());
        assert_eq!(
            p.rules.first().map(|r| r.id.as_str()),
            Some("graph-as-sent")
        );
        assert!(matches!(
            Policy::preset("nope"),
            Err(PolicyError::UnknownPreset(_))
        ));
    }

    #[test]
    fn region_matchers_parse_and_match() {
        let de = RegionHint::new(Some("DE"), None);
        let no = RegionHint::new(Some("NO"), None);
        let ca = RegionHint::new(Some("US"), Some("CA"));
        let wa = RegionHint::new(Some("US"), Some("WA"));
        let gb = RegionHint::new(Some("GB"), None);
        let unknown = RegionHint::unknown();
        let m = |s: &str| s.parse::<RegionMatcher>().unwrap();
        assert!(m("EEA").matches(&de) && m("EEA").matches(&no) && !m("EU").matches(&no));
        assert!(m("UK").matches(&gb) && m("GB").matches(&gb));
        assert!(m("US_LDU_STATES").matches(&ca) && !m("US_LDU_STATES").matches(&wa));
        assert!(m("US-CA").matches(&ca) && !m("US-CA").matches(&wa) && m("US").matches(&wa));
        assert!(m("UNKNOWN").matches(&unknown) && !m("UNKNOWN").matches(&de));
        assert!(m("*").matches(&unknown));
        for bad in ["eea", "Germany", "US-", "D", "US-CALIF", ""] {
            assert!(bad.parse::<RegionMatcher>().is_err(), "{bad}");
        }
        assert_eq!(m("UK").to_string(), "UK");
        assert_eq!(m("US-CA").to_string(), "US-CA");
    }

    #[test]
    fn checks_parse() {
        assert_eq!(
            "ad_user_data".parse::<Check>().unwrap(),
            Check::ConsentMode(ConsentModeType::AdUserData)
        );
        assert_eq!(
            "category:Marketing".parse::<Check>().unwrap(),
            Check::Category("marketing".into())
        );
        for bad in ["ad_user", "category:", "category:a b", "TCF"] {
            assert!(bad.parse::<Check>().is_err(), "{bad}");
        }
    }

    #[test]
    fn strict_parsing_rejects_mistakes() {
        let cases = [
            ("version = \"1\"\n", "at least one rule"),
            (
                "version = \"1\"\n[[rules]]\nid = \"a\"\noutcome = \"deliver\"\nregion = [\"*\"]\n",
                "unknown field",
            ),
            (
                "version = \"1\"\n[[rules]]\nid = \"a\"\noutcome = \"send\"\n",
                "unknown variant",
            ),
            (
                "version = \"1\"\n[[rules]]\nid = \"a\"\noutcome = \"deliver\"\nrequire = [\"tcf\"]\ntcf_purposes = [12]\n",
                "between 1 and 11",
            ),
            (
                "version = \"1\"\n[[rules]]\nid = \"a\"\noutcome = \"deliver\"\n[[rules]]\nid = \"a\"\noutcome = \"drop\"\n",
                "duplicate rule id",
            ),
            (
                "version = \"1\"\n[[rules]]\nid = \"a\"\noutcome = \"deliver\"\nregions = [\"Europe\"]\n",
                "unknown region",
            ),
            (
                "version = \"1\"\n[[rules]]\nid = \"a\"\noutcome = \"deliver\"\ntcf_vendor = 5\n",
                "does not require tcf",
            ),
            (
                "version = \"1\"\n[ldu.state_codes]\nCalifornia = 1000\n[[rules]]\nid = \"a\"\noutcome = \"deliver\"\n",
                "two-letter",
            ),
            (
                "version = \"\"\n[[rules]]\nid = \"a\"\noutcome = \"deliver\"\n",
                "1 to 64",
            ),
            (
                "version = \"1\"\nextends = \"strict\"\n[[rules]]\nid = \"a\"\noutcome = \"deliver\"\n",
                "unknown preset",
            ),
            (
                "version = \"1\"\n[[rules]]\nid = \"default_deny\"\noutcome = \"deliver\"\n",
                "not a usable rule id",
            ),
        ];
        for (text, want) in cases {
            let err = Policy::from_toml_str(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn extends_puts_own_rules_first_and_merges_tables() {
        let text = r#"
version = "acme-3"
extends = "default"

[ldu.state_codes]
CO = 1001

[banners.onetrust]
C0004 = "ads"

[[rules]]
id = "br-opt-in"
regions = ["BR"]
require = ["ad_user_data"]
outcome = "deliver"
"#;
        let p = Policy::from_toml_str(text).unwrap();
        assert_eq!(p.version, "acme-3");
        assert_eq!(p.rules[0].id, "br-opt-in");
        assert_eq!(p.rules[1].id, "graph-as-sent");
        assert_eq!(p.ldu_state_code(Some("CA")), 1000);
        assert_eq!(p.ldu_state_code(Some("CO")), 1001);
        assert_eq!(p.ldu_state_code(Some("TX")), 0);
        assert_eq!(
            p.banners.onetrust.get("C0004").map(String::as_str),
            Some("ads")
        );
        assert_eq!(
            p.banners.onetrust.get("C0002").map(String::as_str),
            Some("statistics")
        );
    }

    #[test]
    fn warnings_for_missing_catch_all_and_shadowed_rules() {
        let p = Policy::from_toml_str(
            "version = \"1\"\n[[rules]]\nid = \"all\"\noutcome = \"deliver\"\n[[rules]]\nid = \"never\"\noutcome = \"drop\"\n",
        )
        .unwrap();
        assert_eq!(p.warnings().len(), 1);
        let p = Policy::from_toml_str(
            "version = \"1\"\n[[rules]]\nid = \"eu\"\nregions = [\"EEA\"]\noutcome = \"deliver\"\n",
        )
        .unwrap();
        assert!(p.warnings()[0].contains("default_deny"));
    }

    #[test]
    fn outcome_strictness() {
        assert_eq!(
            Outcome::Deliver.stricter(Outcome::DeliverLdu),
            Outcome::DeliverLdu
        );
        assert_eq!(Outcome::Drop.stricter(Outcome::Deliver), Outcome::Drop);
    }

    #[test]
    fn policy_serializes_back_to_toml() {
        let p = Policy::preset("default").unwrap();
        let text = toml::to_string(&p).unwrap();
        let again = Policy::from_toml_str(&text).unwrap();
        assert_eq!(again, p);
    }
}
