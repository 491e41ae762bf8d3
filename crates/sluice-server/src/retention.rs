//! Background retention: what the gateway keeps, and for how long.
//!
//! Every `store.purge_interval_secs` (default 600 s, and once right at start)
//! a task started by [`crate::Gateway::start`]:
//!
//! - deletes dedup-ledger entries whose window has passed ([`Store::purge`]);
//! - deletes consent-audit rows older than `consent.audit_retention_days`
//!   ([`Store::purge_audit`]); `0` keeps them forever.
//!
//! Delivered events need no purge: the queue deletes an event in the same
//! transaction that records Meta's acknowledgement, so nothing of a delivered
//! event is kept but its dedup-ledger entry (pixel, event name, event id) for
//! the dedup window. Dead letters stay until they are replayed or deleted
//! (`sluice dlq`), or removed for a person by `sluice forget`.
//!
//! The task logs what it deleted at debug level and counts it in
//! `sluice_retention_purged_total{kind}`; a failed purge is logged and tried
//! again at the next interval. It stops when the gateway shuts down, before
//! the store is closed.

use crate::config::Config;
use crate::state::Clock;
use sluice_store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// Counter, label `kind` (`ledger`, `audit`): rows deleted by the retention task.
pub const PURGED_TOTAL: &str = "sluice_retention_purged_total";

const DAY_MS: i64 = 86_400_000;

/// When and what the retention task purges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Time between two purges.
    pub interval: Duration,
    /// Audit rows older than this are deleted; `None` keeps them forever.
    pub audit_retention_ms: Option<i64>,
}

/// What one purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Expired dedup-ledger entries.
    pub ledger: u64,
    /// Consent-audit rows past their retention.
    pub audit: u64,
}

impl RetentionSettings {
    pub fn from_config(config: &Config) -> Self {
        let days = i64::from(config.consent.audit_retention_days);
        RetentionSettings {
            interval: Duration::from_secs(config.store.purge_interval_secs.max(1)),
            audit_retention_ms: (days > 0).then(|| days * DAY_MS),
        }
    }
}

/// One purge at `now_ms`.
pub async fn purge_once(
    store: &dyn Store,
    settings: &RetentionSettings,
    now_ms: i64,
) -> Result<RetentionReport, StoreError> {
    let ledger = store.purge(now_ms).await?.ledger;
    let audit = match settings.audit_retention_ms {
        Some(keep) => store.purge_audit(now_ms.saturating_sub(keep)).await?,
        None => 0,
    };
    Ok(RetentionReport { ledger, audit })
}

/// Starts the task; it runs once at once, then every `settings.interval`,
/// until `shutdown` turns true (or its sender is dropped).
pub fn spawn(
    store: Arc<dyn Store>,
    settings: RetentionSettings,
    clock: Arc<dyn Clock>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(settings.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return,
                _ = ticker.tick() => {}
            }
            let now_ms = clock.now_ms();
            // A purge is a series of small committed batches: stopping between
            // two loses nothing, the next start carries on.
            let result = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return,
                result = purge_once(store.as_ref(), &settings, now_ms) => result,
            };
            match result {
                Ok(report) => {
                    metrics::counter!(PURGED_TOTAL, "kind" => "ledger").increment(report.ledger);
                    metrics::counter!(PURGED_TOTAL, "kind" => "audit").increment(report.audit);
                    tracing::debug!(
                        ledger = report.ledger,
                        audit = report.audit,
                        "retention purge"
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention purge failed; retrying at the next interval")
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_configuration() {
        let mut config = Config::default();
        let s = RetentionSettings::from_config(&config);
        assert_eq!(s.interval, Duration::from_secs(600));
        assert_eq!(s.audit_retention_ms, Some(180 * DAY_MS));
        config.consent.audit_retention_days = 0;
        config.store.purge_interval_secs = 5;
        let s = RetentionSettings::from_config(&config);
        assert_eq!(s.interval, Duration::from_secs(5));
        assert_eq!(s.audit_retention_ms, None, "0 keeps audit rows forever");
    }
}
