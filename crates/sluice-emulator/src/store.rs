//! What the emulator received: every accepted event as it arrived, Meta's 48-hour
//! deduplication, and the counters behind `GET /_emulator/stats`.
//!
//! Events carrying a `test_event_code` are kept apart from live events, like
//! Events Manager's Test Events tab, with their own deduplication ledger. Memory
//! is bounded: beyond `max_stored_events` the oldest events are dropped and the
//! stats say how many.

use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::checks::Accepted;

/// One received event, as the inspection API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedEvent {
    /// Arrival order across all pixels, starting at 1.
    pub seq: u64,
    pub pixel_id: String,
    pub test_event_code: Option<String>,
    pub partner_agent: Option<String>,
    /// Receive time, Unix seconds and milliseconds.
    pub received_at: i64,
    pub received_at_ms: i64,
    /// True when Meta would have dropped it as a duplicate (same `event_name` and
    /// `event_id` for the same pixel within the window).
    pub duplicate: bool,
    /// The event's JSON exactly as received.
    pub event: Box<RawValue>,
}

impl RecordedEvent {
    /// The event as a JSON value.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.event.get()).unwrap_or(serde_json::Value::Null)
    }

    pub fn is_test(&self) -> bool {
        self.test_event_code.is_some()
    }
}

/// Which events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub pixel: Option<String>,
    /// Only test events with this code.
    pub test_event_code: Option<String>,
    pub kind: EventKind,
    /// Only events with a `seq` greater than this (for polling new arrivals).
    pub after_seq: Option<u64>,
    /// At most this many events (the oldest matching ones).
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EventKind {
    /// Live and test events, in arrival order.
    #[default]
    All,
    /// Only events without `test_event_code` (what would count in Meta).
    Live,
    /// Only events with `test_event_code` (the Test Events tab).
    Test,
}

impl EventFilter {
    pub fn pixel(pixel: impl Into<String>) -> Self {
        EventFilter {
            pixel: Some(pixel.into()),
            ..EventFilter::default()
        }
    }

    pub fn kind(mut self, kind: EventKind) -> Self {
        self.kind = kind;
        self
    }

    fn matches(&self, e: &RecordedEvent) -> bool {
        let kind_ok = match self.kind {
            EventKind::All => true,
            EventKind::Live => !e.is_test(),
            EventKind::Test => e.is_test(),
        };
        kind_ok
            && self.after_seq.is_none_or(|after| e.seq > after)
            && self.pixel.as_ref().is_none_or(|p| *p == e.pixel_id)
            && self
                .test_event_code
                .as_ref()
                .is_none_or(|c| e.test_event_code.as_ref() == Some(c))
    }
}

/// Per-pixel counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PixelStats {
    pub requests: u64,
    pub events: u64,
    pub test_events: u64,
    pub duplicates: u64,
}

/// What `GET /_emulator/stats` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Requests to the events endpoint, answered or not.
    pub requests: u64,
    pub accepted_requests: u64,
    /// Requests answered with an error (checks and injected faults).
    pub rejected_requests: u64,
    /// Events in accepted requests (live + test), duplicates included: Meta
    /// counts them in `events_received` too.
    pub events: u64,
    pub live_events: u64,
    pub test_events: u64,
    /// Events Meta would have dropped as duplicates.
    pub duplicates: u64,
    /// Error answers by `code`, e.g. `{"100": 3, "190": 1}`.
    pub rejections_by_code: BTreeMap<String, u64>,
    /// Error answers by `code/subcode`, e.g. `{"100/2804003": 2}`.
    pub rejections_by_subcode: BTreeMap<String, u64>,
    /// Injected faults by kind (`rate_limit`, `drop_connection`, …).
    pub faults_injected: BTreeMap<String, u64>,
    /// Events currently kept for the inspection API.
    pub stored_events: u64,
    pub max_stored_events: u64,
    /// Oldest events dropped because `max_stored_events` was reached; when this
    /// is not zero the inspection API no longer shows every event.
    pub dropped_events: u64,
    pub pixels: BTreeMap<String, PixelStats>,
}

/// `event_name` + `event_id` first-seen times for one pixel space, pruned as the
/// window passes.
#[derive(Debug, Default)]
struct DedupLedger {
    first_seen: HashMap<String, i64>,
    order: VecDeque<(i64, String)>,
}

impl DedupLedger {
    /// True when `key` was seen less than `window_ms` ago; records it otherwise.
    fn seen_recently(&mut self, key: String, now_ms: i64, window_ms: i64, cap: usize) -> bool {
        while let Some((t, _)) = self.order.front() {
            if now_ms.saturating_sub(*t) < window_ms && self.order.len() < cap {
                break;
            }
            if let Some((t, k)) = self.order.pop_front()
                && self.first_seen.get(&k) == Some(&t)
            {
                self.first_seen.remove(&k);
            }
        }
        match self.first_seen.get(&key) {
            Some(first) if now_ms.saturating_sub(*first) < window_ms => true,
            _ => {
                self.first_seen.insert(key.clone(), now_ms);
                self.order.push_back((now_ms, key));
                false
            }
        }
    }
}

/// Recorded events and counters. One lock guards it all (see `Emulator`).
#[derive(Debug)]
pub(crate) struct Store {
    events: VecDeque<RecordedEvent>,
    live_ledger: DedupLedger,
    test_ledger: DedupLedger,
    stats: Stats,
    next_seq: u64,
    max_stored: usize,
    window_ms: i64,
}

impl Store {
    pub(crate) fn new(max_stored: usize, window_s: i64) -> Self {
        Store {
            events: VecDeque::new(),
            live_ledger: DedupLedger::default(),
            test_ledger: DedupLedger::default(),
            stats: Stats {
                max_stored_events: max_stored as u64,
                ..Stats::default()
            },
            next_seq: 1,
            max_stored,
            window_ms: window_s.saturating_mul(1000),
        }
    }

    pub(crate) fn count_request(&mut self, pixel: &str) {
        self.stats.requests += 1;
        self.pixel(pixel).requests += 1;
    }

    fn pixel(&mut self, pixel: &str) -> &mut PixelStats {
        self.stats.pixels.entry(pixel.to_owned()).or_default()
    }

    pub(crate) fn count_rejection(&mut self, code: i64, subcode: Option<i64>) {
        self.stats.rejected_requests += 1;
        *self
            .stats
            .rejections_by_code
            .entry(code.to_string())
            .or_default() += 1;
        if let Some(sub) = subcode {
            *self
                .stats
                .rejections_by_subcode
                .entry(format!("{code}/{sub}"))
                .or_default() += 1;
        }
    }

    pub(crate) fn count_fault(&mut self, kind: &str) {
        *self
            .stats
            .faults_injected
            .entry(kind.to_owned())
            .or_default() += 1;
    }

    /// Records an accepted request's events; returns how many were duplicates.
    pub(crate) fn record(&mut self, pixel: &str, accepted: Accepted, now_ms: i64) -> u64 {
        self.stats.accepted_requests += 1;
        let test = accepted.test_event_code.is_some();
        let mut duplicates = 0;
        for event in accepted.events {
            let duplicate = match &event.event_id {
                Some(id) if !id.is_empty() => {
                    let key = format!("{pixel}\u{0}{}\u{0}{id}", event.event_name);
                    let ledger = if test {
                        &mut self.test_ledger
                    } else {
                        &mut self.live_ledger
                    };
                    ledger.seen_recently(key, now_ms, self.window_ms, self.max_stored)
                }
                _ => false,
            };
            duplicates += u64::from(duplicate);
            self.stats.events += 1;
            if test {
                self.stats.test_events += 1;
            } else {
                self.stats.live_events += 1;
            }
            self.stats.duplicates += u64::from(duplicate);
            let per_pixel = self.pixel(pixel);
            per_pixel.events += 1;
            per_pixel.test_events += u64::from(test);
            per_pixel.duplicates += u64::from(duplicate);
            if self.events.len() >= self.max_stored {
                self.events.pop_front();
                self.stats.dropped_events += 1;
            }
            self.events.push_back(RecordedEvent {
                seq: self.next_seq,
                pixel_id: pixel.to_owned(),
                test_event_code: accepted.test_event_code.clone(),
                partner_agent: accepted.partner_agent.clone(),
                received_at: now_ms.div_euclid(1000),
                received_at_ms: now_ms,
                duplicate,
                event: event.raw,
            });
            self.next_seq += 1;
        }
        duplicates
    }

    pub(crate) fn events(&self, filter: &EventFilter) -> Vec<RecordedEvent> {
        self.events
            .iter()
            .filter(|e| filter.matches(e))
            .take(filter.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            stored_events: self.events.len() as u64,
            ..self.stats.clone()
        }
    }

    /// Forgets every event, the dedup ledgers and the counters.
    pub(crate) fn reset(&mut self) {
        *self = Store::new(self.max_stored, self.window_ms / 1000);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::AcceptedEvent;

    fn batch(ids: &[&str], test: Option<&str>) -> Accepted {
        Accepted {
            events: ids
                .iter()
                .map(|id| AcceptedEvent {
                    raw: RawValue::from_string(format!(r#"{{"event_id":"{id}"}}"#)).unwrap(),
                    event_name: "Purchase".to_owned(),
                    event_id: Some((*id).to_owned()),
                })
                .collect(),
            test_event_code: test.map(str::to_owned),
            partner_agent: None,
        }
    }

    const H: i64 = 3_600_000;

    #[test]
    fn dedups_within_48_hours_per_pixel() {
        let mut store = Store::new(100, 48 * 3600);
        assert_eq!(store.record("1", batch(&["a", "b", "a"], None), 0), 1);
        assert_eq!(store.record("2", batch(&["a"], None), H), 0);
        assert_eq!(store.record("1", batch(&["a"], None), 47 * H), 1);
        // 48 h after the first sighting it counts again (and starts a new window).
        assert_eq!(store.record("1", batch(&["a"], None), 48 * H), 0);
        assert_eq!(store.record("1", batch(&["a"], None), 49 * H), 1);
        let stats = store.stats();
        assert_eq!((stats.events, stats.duplicates), (7, 3));
        assert_eq!(stats.pixels["1"].duplicates, 3);
    }

    #[test]
    fn test_events_are_separate() {
        let mut store = Store::new(100, 48 * 3600);
        store.record("1", batch(&["a"], None), 0);
        assert_eq!(store.record("1", batch(&["a"], Some("TEST1")), 0), 0);
        let live = store.events(&EventFilter::pixel("1").kind(EventKind::Live));
        let test = store.events(&EventFilter::pixel("1").kind(EventKind::Test));
        assert_eq!((live.len(), test.len()), (1, 1));
        assert_eq!(test[0].test_event_code.as_deref(), Some("TEST1"));
        assert_eq!(store.stats().test_events, 1);
    }

    #[test]
    fn cap_drops_oldest_and_says_so() {
        let mut store = Store::new(3, 48 * 3600);
        store.record("1", batch(&["a", "b", "c", "d", "e"], None), 0);
        let all = store.events(&EventFilter::default());
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
        let stats = store.stats();
        assert_eq!((stats.stored_events, stats.dropped_events), (3, 2));
        store.reset();
        assert_eq!(store.stats().events, 0);
        assert!(store.events(&EventFilter::default()).is_empty());
    }

    #[test]
    fn after_seq_and_limit() {
        let mut store = Store::new(10, 48 * 3600);
        store.record("1", batch(&["a", "b", "c", "d"], None), 0);
        let filter = EventFilter {
            after_seq: Some(1),
            limit: Some(2),
            ..EventFilter::default()
        };
        let seqs: Vec<u64> = store.events(&filter).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [2, 3]);
    }

    #[test]
    fn events_without_id_are_never_duplicates() {
        let mut store = Store::new(10, 48 * 3600);
        let mut b = batch(&["x", "x"], None);
        for e in &mut b.events {
            e.event_id = None;
        }
        assert_eq!(store.record("1", b, 0), 0);
    }
}
