//! Wires the delivery engine to the gateway's configuration.
//!
//! Configured pixels get a lane each with their token. In zero-config mode
//! every pixel is accepted: lanes open on demand through a resolver that uses
//! the token last presented on the Graph-compatible endpoint for that pixel
//! (forwarded as given), or a placeholder token that the sandbox accepts.

use crate::config::Config;
use crate::state::{PresentedTokens, Readiness};
use serde_json::Value;
use sluice_core::Secret;
use sluice_delivery::{
    Backoff, BreakerConfig, ClientConfig, DeliveryStatus, EngineConfig, EngineError, PixelConfig,
    TestEventMode,
};
use std::sync::Arc;
use std::time::Duration;

/// The token sent for pixels that never presented one (sandbox mode only).
pub const SANDBOX_TOKEN: &str = "sluice-sandbox";

/// Builds the engine's settings. `graph_url` is the destination already
/// resolved (Meta, `--graph-url`, or the in-process sandbox).
pub fn engine_config(
    config: &Config,
    graph_url: &str,
    presented: Arc<PresentedTokens>,
) -> Result<EngineConfig, EngineError> {
    let d = &config.delivery;
    let backoff = Backoff::new(
        Duration::from_millis(d.backoff_base_ms),
        Duration::from_millis(d.backoff_max_ms),
        2.0,
    )
    .map_err(|e| EngineError::InvalidConfig(e.to_string()))?;
    let client = ClientConfig {
        base_url: graph_url.trim_end_matches('/').to_owned(),
        version: d.graph_version.clone(),
        request_timeout: Duration::from_millis(d.timeout_ms),
        partner_agent: d
            .partner_agent
            .clone()
            .or(ClientConfig::default().partner_agent),
        ..ClientConfig::default()
    };
    let pixels = config
        .pixels
        .iter()
        .filter_map(|p| {
            let token = p.access_token.clone()?;
            let mut pixel = PixelConfig::new(p.id.clone(), token);
            pixel.app_secret = p.app_secret.clone();
            if let Some(code) = &p.test_event_code {
                pixel.test_events = TestEventMode::Force(code.clone());
            }
            Some(pixel)
        })
        .collect();
    let mut engine = EngineConfig {
        pixels,
        client,
        max_batch_size: d.batch_size,
        linger: Duration::from_millis(d.linger_ms),
        concurrency_per_pixel: d.concurrency_per_pixel,
        backoff,
        max_attempts: d.max_attempts,
        breaker: BreakerConfig {
            max_transient_cooldown: Duration::from_millis(d.breaker_max_transient_cooldown_ms),
            ..BreakerConfig::default()
        },
        ..EngineConfig::default()
    };
    engine.lease = Duration::from_millis(d.lease_ms)
        .max(engine.linger + 3 * engine.client.request_timeout + Duration::from_secs(5));
    if config.is_zero_config() {
        engine.pixel_resolver = Some(Arc::new(move |pixel: &str| {
            let token = presented
                .get(pixel)
                .unwrap_or_else(|| Secret::new(SANDBOX_TOKEN));
            Some(PixelConfig::new(pixel.to_owned(), token))
        }));
    }
    Ok(engine)
}

/// `/readyz` reads the lanes: a lane paused on bad credentials needs a person.
pub struct LaneReadiness(pub DeliveryStatus);

impl Readiness for LaneReadiness {
    fn blocking_problems(&self) -> Vec<String> {
        self.0
            .lanes()
            .into_iter()
            .filter(|l| l.needs_attention())
            .map(|l| {
                format!(
                    "pixel {}: delivery paused, Meta rejected the access token ({}); fix the token and the lane resumes",
                    l.pixel_id,
                    l.last_error_code.as_deref().unwrap_or("auth")
                )
            })
            .collect()
    }

    fn lanes(&self) -> Value {
        serde_json::to_value(self.0.lanes()).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(toml: &str) -> Result<EngineConfig, String> {
        let config =
            Config::from_toml_with_env(toml, None, Vec::new()).map_err(|e| e.to_string())?;
        engine_config(&config, "http://127.0.0.1:1", Arc::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_transient_breaker_cooldown_is_capped_and_configurable() {
        let default = engine("").unwrap();
        assert_eq!(
            default.breaker.max_transient_cooldown,
            Duration::from_secs(30)
        );
        let tight = engine("[delivery]\nbreaker_max_transient_cooldown_ms = 5000\n").unwrap();
        assert_eq!(tight.breaker.max_transient_cooldown, Duration::from_secs(5));
        tight.validate().unwrap();
        let err = engine("[delivery]\nbreaker_max_transient_cooldown_ms = 0\n").unwrap_err();
        assert!(
            err.contains("delivery.breaker_max_transient_cooldown_ms"),
            "{err}"
        );
    }
}
