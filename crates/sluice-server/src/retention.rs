//! Background retention: what the gateway keeps, and for how long.
//!
//! Every `store.purge_interval_secs` (default 600 s, and once right at start)
//! a task started by [`crate::Gateway::start`]:
//!
//! - deletes dedup-ledger entries whose window has passed ([`Store::purge`]);
//! - deletes consent-audit rows older than `consent.audit_retention_days`
//!   ([`Store::purge_audit`]); `0` keeps them forever;
//! - deletes dead letters dead-lettered more than `store.dlq_retention_days`
//!   ago ([`Store::purge_dead_letters`]); `0` keeps them until they are
//!   replayed or deleted (`sluice dlq`), or removed for a person by
//!   `sluice forget`.
//!
//! Delivered events need no purge: the queue deletes an event in the same
//! transaction that records Meta's acknowledgement, so nothing of a delivered
//! event is kept but its dedup-ledger entry (pixel, event name, event id) for
//! the dedup window.
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

/// Counter, label `kind` (`ledger`, `audit`, `dead_letters`): rows deleted by
/// the retention task.
pub const PURGED_TOTAL: &str = "sluice_retention_purged_total";

const DAY_MS: i64 = 86_400_000;

/// When and what the retention task purges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Time between two purges.
    pub interval: Duration,
    /// Audit rows older than this are deleted; `None` keeps them forever.
    pub audit_retention_ms: Option<i64>,
    /// Dead letters older than this are deleted; `None` keeps them.
    pub dlq_retention_ms: Option<i64>,
}

/// What one purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Expired dedup-ledger entries.
    pub ledger: u64,
    /// Consent-audit rows past their retention.
    pub audit: u64,
    /// Dead letters past their retention.
    pub dead_letters: u64,
}

impl RetentionSettings {
    pub fn from_config(config: &Config) -> Self {
        let keep = |days: u32| (days > 0).then(|| i64::from(days) * DAY_MS);
        RetentionSettings {
            interval: Duration::from_secs(config.store.purge_interval_secs.max(1)),
            audit_retention_ms: keep(config.consent.audit_retention_days),
            dlq_retention_ms: keep(config.store.dlq_retention_days),
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
    let dead_letters = match settings.dlq_retention_ms {
        Some(keep) => {
            store
                .purge_dead_letters(now_ms.saturating_sub(keep))
                .await?
        }
        None => 0,
    };
    Ok(RetentionReport {
        ledger,
        audit,
        dead_letters,
    })
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
                    metrics::counter!(PURGED_TOTAL, "kind" => "dead_letters")
                        .increment(report.dead_letters);
                    tracing::debug!(
                        ledger = report.ledger,
                        audit = report.audit,
                        dead_letters = report.dead_letters,
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
        assert_eq!(s.dlq_retention_ms, Some(30 * DAY_MS));
        config.consent.audit_retention_days = 0;
        config.store.dlq_retention_days = 0;
        config.store.purge_interval_secs = 5;
        let s = RetentionSettings::from_config(&config);
        assert_eq!(s.interval, Duration::from_secs(5));
        assert_eq!(s.audit_retention_ms, None, "0 keeps audit rows forever");
        assert_eq!(s.dlq_retention_ms, None, "0 keeps dead letters");
    }

    fn event(id: &str) -> sluice_store::NewEvent {
        sluice_store::NewEvent {
            pixel_id: "1234".into(),
            event_name: "Purchase".into(),
            event_id: id.into(),
            event_time: 1_700_000_000,
            source: sluice_store::EventSource::Backend,
            payload: b"{}".to_vec(),
            user_keys: Vec::new(),
            test_event_code: None,
            hold_until_ms: None,
            order_id: None,
            event_id_origin: sluice_store::EventIdOrigin::Sent,
        }
    }

    /// `store.dlq_retention_days`: the purge deletes dead letters older than
    /// the retention and keeps the others; `0` keeps them all.
    #[tokio::test]
    async fn the_purge_deletes_dead_letters_past_their_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = sluice_store::SqliteStore::open(
            dir.path().join("queue.sqlite"),
            sluice_store::SqliteOptions::default(),
        )
        .await
        .unwrap();
        let now = 1_700_000_000_000;
        let outcomes = store
            .enqueue(vec![event("old"), event("recent")], now - 40 * DAY_MS)
            .await
            .unwrap();
        let ids: Vec<_> = outcomes
            .iter()
            .map(|o| match o {
                sluice_store::EnqueueOutcome::Queued { id } => *id,
                other => panic!("not queued: {other:?}"),
            })
            .collect();
        let reason = || sluice_store::DeadLetterReason {
            code: "x".into(),
            message: "rejected".into(),
            detail_json: None,
        };
        store
            .dead_letter(&ids[..1], reason(), now - 31 * DAY_MS)
            .await
            .unwrap();
        store
            .dead_letter(&ids[1..], reason(), now - 29 * DAY_MS)
            .await
            .unwrap();

        let mut config = Config::default();
        config.store.dlq_retention_days = 0;
        let keep = RetentionSettings::from_config(&config);
        let report = purge_once(&store, &keep, now).await.unwrap();
        assert_eq!(report.dead_letters, 0);
        assert_eq!(store.stats(now).await.unwrap().dead_letters, 2);

        let default = RetentionSettings::from_config(&Config::default());
        let report = purge_once(&store, &default, now).await.unwrap();
        assert_eq!(report.dead_letters, 1);
        let left = store
            .dlq_list(&sluice_store::DlqFilter::default())
            .await
            .unwrap();
        assert_eq!(
            left.iter().map(|d| d.event_id.as_str()).collect::<Vec<_>>(),
            ["recent"]
        );
        assert_eq!(store.stats(now).await.unwrap().dead_letters, 1);
    }
}
