//! The consent stage of the pipeline: no event is stored without a decision.
//!
//! Signals come from the event (`consent`, `gdpr`, `gdpr_consent`, and from
//! sluice.js `consent_source`, `gpc`), from browser requests (cookies,
//! `Sec-GPC`) and optionally from a consent store. The region comes from the
//! edge's headers, else from the event's raw `country`/`st`, read before they
//! are hashed and never kept. The decision is applied to the hashed event
//! (LDU, `opt_out`, identifiers removed) or drops it, and an audit record is
//! written for every decision, delivered or not.

use crate::config::{Config, ConfigError};
use crate::pipeline::Source;
use axum::http::HeaderMap;
use sluice_consent::{
    Applied, AuditRecord, ConsentFields, ConsentSignals, ConsentStore, Decision, HttpConsentStore,
    HttpStoreConfig, Policy, RegionHeaders, RegionHint,
};
use sluice_core::ServerEvent;

/// Everything the stage needs, built once at start-up.
pub struct ConsentStage {
    pub policy: Policy,
    region_headers: RegionHeaders,
    store: Option<(HttpStoreConfig, HttpConsentStore)>,
}

/// What the request (not the event) says about consent and region.
#[derive(Debug, Clone, Default)]
pub struct RequestSignals {
    pub cookie_header: Option<String>,
    pub gpc_header: Option<String>,
    pub region: RegionHint,
}

/// The result for one event.
pub struct ConsentResult {
    pub decision: Decision,
    pub audit: AuditRecord,
    pub applied: Applied,
}

pub fn consent_source(source: Source) -> sluice_consent::Source {
    match source {
        Source::Browser => sluice_consent::Source::Browser,
        Source::Backend => sluice_consent::Source::Backend,
        Source::Graph => sluice_consent::Source::Graph,
    }
}

impl ConsentStage {
    pub fn from_config(
        config: &Config,
        http: Option<reqwest::Client>,
    ) -> Result<Self, ConfigError> {
        let policy = config.consent.load_policy()?;
        for warning in policy.warnings() {
            tracing::warn!(%warning, "consent policy");
        }
        let store = match (&config.consent.store, http) {
            (Some(store_config), Some(client)) => {
                let store = HttpConsentStore::new(client, store_config)
                    .map_err(|e| ConfigError::Invalid(format!("consent.store: {e}")))?;
                Some((store_config.clone(), store))
            }
            _ => None,
        };
        Ok(ConsentStage {
            policy,
            region_headers: config.consent.region_headers.clone(),
            store,
        })
    }

    /// The region and browser signals of a request.
    pub fn request_signals(&self, headers: &HeaderMap, browser: bool) -> RequestSignals {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        RequestSignals {
            cookie_header: browser.then(|| get("cookie").map(str::to_owned)).flatten(),
            gpc_header: browser.then(|| get("sec-gpc").map(str::to_owned)).flatten(),
            region: self.region_headers.extract(get),
        }
    }

    /// Signals of one event: its own fields plus the request's.
    pub fn signals(&self, fields: &ConsentFields, request: &RequestSignals) -> ConsentSignals {
        fields
            .to_signals()
            .with_cookies(request.cookie_header.as_deref())
            .with_gpc(request.gpc_header.as_deref())
            .with_gpc_field(fields.gpc.as_ref())
            .with_consent_source(fields.consent_source.as_ref())
    }

    /// Decides for one event whose user data is already hashed, applies the
    /// decision to it, and returns the audit record. `raw_region` was read from
    /// the event before hashing.
    pub async fn decide_and_apply(
        &self,
        event: &mut ServerEvent,
        mut signals: ConsentSignals,
        region: RegionHint,
        source: Source,
        pixel_id: &str,
        now_ms: i64,
    ) -> ConsentResult {
        let source = consent_source(source);
        if let Some((store_config, store)) = &self.store
            && store_config.should_lookup(source, &signals)
        {
            let answer = match sluice_consent::user_key(&event.user_data) {
                Some(key) => store.lookup(&key).await,
                None => Ok(sluice_consent::ConsentAnswer::unknown()),
            };
            signals = signals.with_store(answer);
        }
        let decision = sluice_consent::decide(&self.policy, &signals, &region, source);
        sluice_consent::metrics::record_decision(&decision, &signals);
        let audit = AuditRecord::for_event(
            now_ms,
            pixel_id,
            event,
            source,
            &decision,
            &signals,
            &self.policy,
        );
        let applied = sluice_consent::apply(&decision, event, &self.policy);
        ConsentResult {
            decision,
            audit,
            applied,
        }
    }
}
