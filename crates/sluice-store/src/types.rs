//! The values that cross the [`Store`](crate::Store) trait.
//!
//! Everything here is backend-independent. Times are Unix milliseconds
//! (`*_ms`) except `event_time`, which is Unix seconds because that is what
//! Meta's API carries. Payloads are opaque bytes: the Graph JSON of an event
//! whose personal data has already been hashed. The store never parses them,
//! never logs them, and never puts them in an error.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{DeadLetterId, EventRowId};

/// The dedup window Meta applies between the browser pixel and CAPI: 48 hours.
pub const DEFAULT_DEDUP_WINDOW_MS: i64 = 48 * 60 * 60 * 1000;

/// Page size of [`Store::dlq_list`](crate::Store::dlq_list) when the filter sets none.
pub const DEFAULT_DLQ_LIMIT: u32 = 100;

/// Largest page [`Store::dlq_list`](crate::Store::dlq_list) returns, whatever the filter asks.
pub const MAX_DLQ_LIMIT: u32 = 10_000;

/// Which ingest path an event came through. Recorded per event and, as a
/// set, per dedup-ledger key (the dedup report shows which paths saw the
/// same event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    /// `/collect`, sent by sluice.js in the browser.
    Browser,
    /// `/v1/events`, sent by a shop/CRM backend or a webhook.
    Backend,
    /// `/{ver}/{pixel}/events`, the Graph-API-compatible endpoint.
    Graph,
    /// `sluice import` of an offline file.
    Import,
}

/// The text given to `EventSource::from_str` names no source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event source (expected browser, backend, graph or import)")]
pub struct ParseSourceError;

// === impl EventSource ===

impl EventSource {
    /// Every source, in bit order.
    pub const ALL: [EventSource; 4] = [
        EventSource::Browser,
        EventSource::Backend,
        EventSource::Graph,
        EventSource::Import,
    ];

    /// The stable lowercase name, used on disk, in JSON and in metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventSource::Browser => "browser",
            EventSource::Backend => "backend",
            EventSource::Graph => "graph",
            EventSource::Import => "import",
        }
    }

    /// The bit of this source in a [`SourceSet`]; part of the on-disk format
    /// of every backend, so never renumber.
    pub const fn bit(self) -> u8 {
        match self {
            EventSource::Browser => 1,
            EventSource::Backend => 2,
            EventSource::Graph => 4,
            EventSource::Import => 8,
        }
    }
}

impl fmt::Display for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventSource {
    type Err = ParseSourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventSource::ALL
            .into_iter()
            .find(|source| source.as_str() == s)
            .ok_or(ParseSourceError)
    }
}

/// A set of [`EventSource`]s, stored as a bitmask (see [`EventSource::bit`]).
/// Serializes as a list of source names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "Vec<EventSource>", from = "Vec<EventSource>")]
pub struct SourceSet(u8);

// === impl SourceSet ===

impl SourceSet {
    /// The empty set.
    pub const EMPTY: SourceSet = SourceSet(0);

    /// Rebuilds a set from its stored mask; unknown bits are dropped.
    pub const fn from_bits(bits: u8) -> Self {
        SourceSet(bits & 0x0f)
    }

    /// The stored mask.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Adds a source.
    pub fn insert(&mut self, source: EventSource) {
        self.0 |= source.bit();
    }

    /// This set plus one source.
    pub const fn with(self, source: EventSource) -> Self {
        SourceSet(self.0 | source.bit())
    }

    /// Whether the set holds `source`.
    pub const fn contains(self, source: EventSource) -> bool {
        self.0 & source.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The sources in the set, in bit order.
    pub fn iter(self) -> impl Iterator<Item = EventSource> {
        EventSource::ALL
            .into_iter()
            .filter(move |source| self.contains(*source))
    }
}

impl From<SourceSet> for Vec<EventSource> {
    fn from(set: SourceSet) -> Self {
        set.iter().collect()
    }
}

impl From<Vec<EventSource>> for SourceSet {
    fn from(sources: Vec<EventSource>) -> Self {
        sources.into_iter().collect()
    }
}

impl FromIterator<EventSource> for SourceSet {
    fn from_iter<I: IntoIterator<Item = EventSource>>(iter: I) -> Self {
        let mut set = SourceSet::EMPTY;
        for source in iter {
            set.insert(source);
        }
        set
    }
}

impl fmt::Display for SourceSet {
    /// `browser+backend`, or `-` for the empty set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        for (i, source) in self.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            f.write_str(source.as_str())?;
        }
        Ok(())
    }
}

/// Longest `order_id` the dedup ledger keeps, in bytes; longer ones are cut
/// at a char boundary (an order id is a business id, not personal data, and
/// is kept as sent, but a sender must not be able to bloat the ledger).
pub const MAX_ORDER_ID_BYTES: usize = 128;

/// `order_id` as the ledger keeps it: cut to [`MAX_ORDER_ID_BYTES`] at a char
/// boundary; `None` for an empty id.
pub fn ledger_order_id(order_id: Option<&str>) -> Option<&str> {
    let id = order_id?;
    if id.is_empty() {
        return None;
    }
    let mut end = id.len().min(MAX_ORDER_ID_BYTES);
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    Some(&id[..end])
}

/// Where an event's `event_id` came from. Recorded in the dedup ledger so that
/// the dedup report can show events that arrived without an id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventIdOrigin {
    /// The sender gave it.
    #[default]
    Sent,
    /// The sender gave none; the gateway derived `order-<order_id>` (the rule
    /// sluice.js applies too, so such events still deduplicate).
    OrderId,
    /// The sender gave neither an id nor an order id; the gateway made a random
    /// one, which no other copy of the event can share.
    Generated,
}

// === impl EventIdOrigin ===

impl EventIdOrigin {
    /// The stored code; part of the on-disk format of every backend.
    pub const fn code(self) -> i16 {
        match self {
            EventIdOrigin::Sent => 0,
            EventIdOrigin::OrderId => 1,
            EventIdOrigin::Generated => 2,
        }
    }

    /// Rebuilds an origin from its stored code; unknown codes read as `Sent`.
    pub const fn from_code(code: i64) -> Self {
        match code {
            1 => EventIdOrigin::OrderId,
            2 => EventIdOrigin::Generated,
            _ => EventIdOrigin::Sent,
        }
    }
}

/// One event handed to [`Store::enqueue`](crate::Store::enqueue), already
/// normalized, hashed and consented.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    /// The Meta pixel (dataset) the event goes to; delivery lanes are per pixel.
    pub pixel_id: String,
    /// `event_name`, part of the dedup key.
    pub event_name: String,
    /// `event_id`, part of the dedup key. An empty string opts the event out
    /// of deduplication (it is queued and never recorded in the ledger),
    /// because an empty id would otherwise make every such event a duplicate
    /// of the first.
    pub event_id: String,
    /// `event_time`, Unix seconds, as Meta wants it.
    pub event_time: i64,
    /// The ingest path that produced the event.
    pub source: EventSource,
    /// The hashed event's Graph JSON; opaque to the store.
    pub payload: Vec<u8>,
    /// SHA-256 hex digests of the event's em/ph/external_id, so that
    /// `forget` can find it. Compared as exact strings: pass lowercase hex.
    pub user_keys: Vec<String>,
    /// Meta's `test_event_code`, sent with the batch for the Test Events tool.
    pub test_event_code: Option<String>,
    /// Not deliverable before this instant (identity-merge window); `None`
    /// means due at once.
    pub hold_until_ms: Option<i64>,
    /// The shop's order id (`custom_data.order_id`), kept in the dedup ledger
    /// (cut to [`MAX_ORDER_ID_BYTES`]) for the dedup report.
    pub order_id: Option<String>,
    /// Whether the sender gave the `event_id` or the gateway made it.
    pub event_id_origin: EventIdOrigin,
}

impl fmt::Debug for NewEvent {
    /// Leaves out the payload and the user keys: they must never reach a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewEvent")
            .field("pixel_id", &self.pixel_id)
            .field("event_name", &self.event_name)
            .field("event_id", &self.event_id)
            .field("event_time", &self.event_time)
            .field("source", &self.source)
            .field("payload_len", &self.payload.len())
            .field("user_keys", &self.user_keys.len())
            .field("test_event_code", &self.test_event_code)
            .field("hold_until_ms", &self.hold_until_ms)
            .field("order_id", &self.order_id.is_some())
            .field("event_id_origin", &self.event_id_origin)
            .finish()
    }
}

/// What happened to one event given to [`Store::enqueue`](crate::Store::enqueue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum EnqueueOutcome {
    /// Committed to the queue.
    Queued {
        /// The queue row, for logs and tests.
        id: EventRowId,
    },
    /// The (pixel_id, event_name, event_id) key was seen within the dedup
    /// window (possibly earlier in the same batch); nothing was queued.
    Duplicate {
        /// The source that sent the key first.
        first_source: EventSource,
        /// When the key was first seen.
        first_seen_ms: i64,
    },
}

// === impl EnqueueOutcome ===

impl EnqueueOutcome {
    /// The queue row if the event was queued.
    pub fn queued_id(&self) -> Option<EventRowId> {
        match self {
            EnqueueOutcome::Queued { id } => Some(*id),
            EnqueueOutcome::Duplicate { .. } => None,
        }
    }

    /// Whether the event was rejected as a duplicate.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, EnqueueOutcome::Duplicate { .. })
    }
}

/// An event handed to a delivery worker by [`Store::lease`](crate::Store::lease).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeasedEvent {
    /// Pass back to `ack` / `retry` / `release` / `dead_letter`.
    pub id: EventRowId,
    /// The pixel the event goes to.
    pub pixel_id: String,
    /// `event_name`.
    pub event_name: String,
    /// `event_id`.
    pub event_id: String,
    /// `event_time`, Unix seconds.
    pub event_time: i64,
    /// The ingest path.
    pub source: EventSource,
    /// The hashed Graph JSON, as enqueued.
    pub payload: Vec<u8>,
    /// Failed delivery attempts so far (each `retry` adds one); 0 on the first try.
    pub attempts: u32,
    /// The `last_error` given to the latest `retry`, if any.
    pub last_error: Option<String>,
    /// Meta's `test_event_code`, if the event carries one.
    pub test_event_code: Option<String>,
    /// When the event was first enqueued (kept across a DLQ replay), for lag metrics.
    pub first_enqueued_ms: i64,
}

impl fmt::Debug for LeasedEvent {
    /// Leaves out the payload.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeasedEvent")
            .field("id", &self.id)
            .field("pixel_id", &self.pixel_id)
            .field("event_name", &self.event_name)
            .field("event_id", &self.event_id)
            .field("event_time", &self.event_time)
            .field("source", &self.source)
            .field("payload_len", &self.payload.len())
            .field("attempts", &self.attempts)
            .field("last_error", &self.last_error)
            .field("test_event_code", &self.test_event_code)
            .field("first_enqueued_ms", &self.first_enqueued_ms)
            .finish()
    }
}

/// Why an event was moved to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterReason {
    /// A stable machine-readable code (e.g. a Graph error code/subcode pair or
    /// `max_attempts`), used by `dlq list --code`.
    pub code: String,
    /// A short human-readable explanation. Must not contain personal data.
    pub message: String,
    /// Optional structured detail (e.g. Graph's error object), as JSON text.
    pub detail_json: Option<String>,
}

/// One entry of the dead-letter queue.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Pass to `dlq_get` / `dlq_replay` / `dlq_delete`.
    pub id: DeadLetterId,
    /// The pixel the event was going to.
    pub pixel_id: String,
    /// `event_name`.
    pub event_name: String,
    /// `event_id`.
    pub event_id: String,
    /// `event_time`, Unix seconds.
    pub event_time: i64,
    /// The ingest path.
    pub source: EventSource,
    /// The hashed Graph JSON, as enqueued.
    pub payload: Vec<u8>,
    /// Delivery attempts made, counting the one that led to dead-lettering.
    pub attempts: u32,
    /// Meta's `test_event_code`, if the event carries one.
    pub test_event_code: Option<String>,
    /// When the event was first enqueued.
    pub first_enqueued_ms: i64,
    /// [`DeadLetterReason::code`].
    pub code: String,
    /// [`DeadLetterReason::message`].
    pub message: String,
    /// [`DeadLetterReason::detail_json`].
    pub detail_json: Option<String>,
    /// When the event was dead-lettered.
    pub dead_lettered_ms: i64,
}

impl fmt::Debug for DeadLetter {
    /// Leaves out the payload.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("id", &self.id)
            .field("pixel_id", &self.pixel_id)
            .field("event_name", &self.event_name)
            .field("event_id", &self.event_id)
            .field("event_time", &self.event_time)
            .field("source", &self.source)
            .field("payload_len", &self.payload.len())
            .field("attempts", &self.attempts)
            .field("test_event_code", &self.test_event_code)
            .field("first_enqueued_ms", &self.first_enqueued_ms)
            .field("code", &self.code)
            .field("message", &self.message)
            .field("detail_json", &self.detail_json)
            .field("dead_lettered_ms", &self.dead_lettered_ms)
            .finish()
    }
}

/// Selects dead letters for [`Store::dlq_list`](crate::Store::dlq_list).
/// All set fields must match; results come in ascending id order, so
/// `after_id` = the last id of one page gives the next page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DlqFilter {
    /// Only this pixel.
    pub pixel_id: Option<String>,
    /// Only this event name.
    pub event_name: Option<String>,
    /// Only this reason code.
    pub code: Option<String>,
    /// Only entries dead-lettered at or after this instant.
    pub since_ms: Option<i64>,
    /// Page size; `None` means [`DEFAULT_DLQ_LIMIT`], and anything above
    /// [`MAX_DLQ_LIMIT`] is clamped.
    pub limit: Option<u32>,
    /// Only ids strictly greater than this one (keyset pagination).
    pub after_id: Option<DeadLetterId>,
}

// === impl DlqFilter ===

impl DlqFilter {
    /// The page size after defaulting and clamping.
    pub fn effective_limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_DLQ_LIMIT).min(MAX_DLQ_LIMIT)
    }
}

/// One live dedup-ledger entry, for `sluice dedup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Key part: pixel.
    pub pixel_id: String,
    /// Key part: event name.
    pub event_name: String,
    /// Key part: event id.
    pub event_id: String,
    /// The source that sent the key first (the copy that was queued).
    pub first_source: EventSource,
    /// Every source that sent the key within the window.
    pub sources: SourceSet,
    /// When the key was first seen; the entry expires at this + the window.
    pub first_seen_ms: i64,
    /// When the key was last seen.
    pub last_seen_ms: i64,
    /// How many later copies were rejected as duplicates.
    pub duplicates: u64,
    /// How many later copies were merged into the held first copy
    /// ([`Store::merge_held`](crate::Store::merge_held)).
    pub merged: u64,
    /// The order id of the first copy that carried one.
    pub order_id: Option<String>,
    /// Where the first copy's `event_id` came from.
    pub event_id_origin: EventIdOrigin,
}

/// What [`Store::dedup_report`](crate::Store::dedup_report) looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupReportQuery {
    /// Only this pixel.
    pub pixel_id: Option<String>,
    /// Only keys first seen at or after this instant. The ledger forgets keys
    /// after the dedup window, so the report never reaches further back.
    pub since_ms: Option<i64>,
    /// At most this many entries in each list of suspicious ids; `None`
    /// means [`DEFAULT_REPORT_EXAMPLES`], clamped to [`MAX_DLQ_LIMIT`].
    pub max_examples: Option<u32>,
}

/// Default for [`DedupReportQuery::max_examples`].
pub const DEFAULT_REPORT_EXAMPLES: u32 = 50;

/// Event ids listed per suspicious order id, at most.
pub const MAX_IDS_PER_EXAMPLE: usize = 10;

// === impl DedupReportQuery ===

impl DedupReportQuery {
    /// The list size after defaulting and clamping.
    pub fn effective_max_examples(&self) -> u32 {
        self.max_examples
            .unwrap_or(DEFAULT_REPORT_EXAMPLES)
            .min(MAX_DLQ_LIMIT)
    }

    /// The first instant the report covers at `now_ms` with `window_ms`:
    /// `since_ms`, but never before the oldest live ledger entry.
    pub fn effective_since_ms(&self, now_ms: i64, window_ms: i64) -> i64 {
        let live_from = now_ms.saturating_sub(window_ms).saturating_add(1);
        self.since_ms
            .map_or(live_from, |since| since.max(live_from))
    }
}

/// Where a pixel's events came from and how they were deduplicated: what
/// `sluice dedup report` and `GET /admin/dedup` show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupReport {
    /// The first instant covered (keys first seen at or after it).
    pub since_ms: i64,
    /// The `now_ms` of the report.
    pub until_ms: i64,
    /// One row per pixel and event name, sorted.
    pub rows: Vec<DedupReportRow>,
    /// The same order id under different event ids (per pixel and event name):
    /// the browser and the server copies of one order that could not be
    /// deduplicated. Sorted by pixel, event name, order id.
    pub order_ids_with_several_event_ids: Vec<OrderIdConflict>,
    /// The same event id under different event names (per pixel): e.g.
    /// `Purchase` from the page and `purchase` from the backend, which Meta
    /// does not deduplicate. Sorted by pixel, event id.
    pub event_ids_with_several_event_names: Vec<EventIdConflict>,
    /// Whether a list of suspicious ids was cut at the query's `max_examples`.
    pub truncated: bool,
}

/// One line of the dedup report: the live ledger keys of one pixel and event
/// name first seen in the report's period. Every key is counted in exactly
/// one of `browser_only`, `server_only`, `both` and `merged`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupReportRow {
    /// The pixel.
    pub pixel_id: String,
    /// The event name.
    pub event_name: String,
    /// Distinct events (dedup keys).
    pub events: u64,
    /// Seen from the browser (`/collect`) only.
    pub browser_only: u64,
    /// Seen from the server side only (backend, Graph-compatible, import).
    pub server_only: u64,
    /// Seen from the browser and the server side, and deduplicated: the first
    /// copy was sent, the later ones suppressed.
    pub both: u64,
    /// Seen from the browser and the server side, and merged into one event
    /// (identity merge within the merge window).
    pub merged: u64,
    /// Copies suppressed as duplicates, all sources (merged copies excluded).
    pub duplicates: u64,
    /// Events that arrived without an `event_id` (the gateway made one).
    pub without_event_id: u64,
    /// Of `without_event_id`: without an order id either, so the gateway's id
    /// is random and no other copy can match it.
    pub random_event_id: u64,
}

/// One order id seen under several event ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderIdConflict {
    /// The pixel.
    pub pixel_id: String,
    /// The event name.
    pub event_name: String,
    /// The order id.
    pub order_id: String,
    /// How many distinct event ids carried it.
    pub event_id_count: u64,
    /// Those event ids, sorted, at most [`MAX_IDS_PER_EXAMPLE`].
    pub event_ids: Vec<String>,
}

/// One event id seen under several event names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventIdConflict {
    /// The pixel.
    pub pixel_id: String,
    /// The event id.
    pub event_id: String,
    /// The event names it came with, sorted.
    pub event_names: Vec<String>,
}

/// A later copy of an event to merge into the held first copy, see
/// [`Store::merge_held`](crate::Store::merge_held).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeRequest {
    /// Key part: pixel.
    pub pixel_id: String,
    /// Key part: event name.
    pub event_name: String,
    /// Key part: event id.
    pub event_id: String,
    /// The source of the later copy; the held copy must come from another one.
    pub source: EventSource,
    /// The later copy's user keys, added to the held event's (for `forget`).
    pub user_keys: Vec<String>,
    /// The later copy's order id, recorded if the ledger has none.
    pub order_id: Option<String>,
}

impl fmt::Debug for MergeRequest {
    /// Leaves out the user keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MergeRequest")
            .field("pixel_id", &self.pixel_id)
            .field("event_name", &self.event_name)
            .field("event_id", &self.event_id)
            .field("source", &self.source)
            .field("user_keys", &self.user_keys.len())
            .field("order_id", &self.order_id.is_some())
            .finish()
    }
}

/// Builds the merged payload from the held copy's payload; `None` refuses the
/// merge (nothing changes). Runs inside the store's transaction, so it must
/// be quick and must not block; a panic counts as `None`. A store may call it
/// more than once for one request (the SQLite writer replays a batch when
/// another command in it fails), so it must give the same answer each time.
pub type MergeFn = Box<dyn Fn(&[u8]) -> Option<Vec<u8>> + Send>;

/// What [`Store::merge_held`](crate::Store::merge_held) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum MergeOutcome {
    /// The held copy now carries the merged payload and is due at once.
    Merged {
        /// The queue row that was merged into.
        id: EventRowId,
        /// The held copy's source.
        into_source: EventSource,
    },
    /// No copy of the key is held any more (or none ever was, or the merge
    /// function refused): nothing changed.
    NotMerged,
}

/// Queue counters for one pixel, part of [`StoreStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixelStats {
    /// The pixel.
    pub pixel_id: String,
    /// Events in the queue (due, waiting, held or leased).
    pub queued: u64,
    /// Of `queued`: under an unexpired lease.
    pub leased: u64,
    /// Of `queued`: not yet deliverable because of `hold_until_ms`.
    pub held: u64,
    /// Entries in the dead-letter queue.
    pub dead_letters: u64,
    /// Events acknowledged as delivered, ever (monotonic: a Prometheus counter).
    pub delivered_total: u64,
    /// Events rejected as duplicates, ever (monotonic).
    pub duplicates_total: u64,
    /// The earliest instant at which a queued event became (or becomes)
    /// deliverable; `now - oldest_due_ms` is the delivery lag. `None` if empty.
    pub oldest_due_ms: Option<i64>,
    /// The `now_ms` of the latest `ack` for this pixel.
    pub last_delivered_ms: Option<i64>,
}

/// A cheap snapshot of the whole store, for `/metrics` and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    /// Events in the queue, all pixels (includes `leased` and `held`).
    pub queued: u64,
    /// Of `queued`: under an unexpired lease.
    pub leased: u64,
    /// Of `queued`: held back by `hold_until_ms`.
    pub held: u64,
    /// Entries in the dead-letter queue.
    pub dead_letters: u64,
    /// Events delivered, ever.
    pub delivered_total: u64,
    /// Duplicates rejected, ever.
    pub duplicates_total: u64,
    /// The same counters per pixel, sorted by pixel id. Pixels that ever had
    /// an event stay listed (with zeros) so that counters stay monotonic.
    pub per_pixel: Vec<PixelStats>,
}

/// What [`Store::purge`](crate::Store::purge) removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeReport {
    /// Expired dedup-ledger entries deleted.
    pub ledger: u64,
    /// How many bounded delete statements it took.
    pub batches: u32,
}

/// What [`Store::forget`](crate::Store::forget) removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetReport {
    /// Queued events deleted (including any under lease).
    pub queued: u64,
    /// Dead letters deleted.
    pub dead_letters: u64,
    /// Dedup-ledger entries of those events deleted.
    pub ledger: u64,
}

// === impl ForgetReport ===

impl ForgetReport {
    /// Events deleted in total.
    pub fn events(&self) -> u64 {
        self.queued + self.dead_letters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_names_round_trip() {
        for source in EventSource::ALL {
            assert_eq!(source.as_str().parse::<EventSource>().unwrap(), source);
            assert_eq!(
                serde_json::to_string(&source).unwrap(),
                format!("\"{}\"", source.as_str())
            );
        }
        assert!("Browser".parse::<EventSource>().is_err());
    }

    #[test]
    fn source_set_is_a_bitmask() {
        let set = SourceSet::EMPTY
            .with(EventSource::Graph)
            .with(EventSource::Browser);
        assert_eq!(set.bits(), 0b0101);
        assert_eq!(set.to_string(), "browser+graph");
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            r#"["browser","graph"]"#
        );
        assert_eq!(SourceSet::from_bits(0xff).bits(), 0x0f);
        assert_eq!(SourceSet::EMPTY.to_string(), "-");
    }

    #[test]
    fn debug_never_shows_payload_or_user_keys() {
        let event = NewEvent {
            pixel_id: "1".into(),
            event_name: "Purchase".into(),
            event_id: "e".into(),
            event_time: 1,
            source: EventSource::Backend,
            payload: b"SECRET-PAYLOAD".to_vec(),
            user_keys: vec!["SECRET-KEY".into()],
            test_event_code: None,
            hold_until_ms: None,
            order_id: Some("SECRET-ORDER".into()),
            event_id_origin: EventIdOrigin::Sent,
        };
        let text = format!("{event:?}");
        assert!(!text.contains("SECRET"), "{text}");
    }

    #[test]
    fn order_ids_are_capped_at_a_char_boundary() {
        assert_eq!(ledger_order_id(None), None);
        assert_eq!(ledger_order_id(Some("")), None);
        assert_eq!(ledger_order_id(Some("7731")), Some("7731"));
        let long = "é".repeat(MAX_ORDER_ID_BYTES);
        let cut = ledger_order_id(Some(&long)).unwrap();
        assert!(cut.len() <= MAX_ORDER_ID_BYTES && long.starts_with(cut));
    }

    #[test]
    fn event_id_origins_round_trip_their_codes() {
        for origin in [
            EventIdOrigin::Sent,
            EventIdOrigin::OrderId,
            EventIdOrigin::Generated,
        ] {
            assert_eq!(EventIdOrigin::from_code(i64::from(origin.code())), origin);
        }
        assert_eq!(EventIdOrigin::from_code(99), EventIdOrigin::Sent);
    }

    #[test]
    fn report_period_never_reaches_past_the_window() {
        let q = DedupReportQuery::default();
        assert_eq!(q.effective_since_ms(1_000, 100), 901);
        let q = DedupReportQuery {
            since_ms: Some(950),
            ..DedupReportQuery::default()
        };
        assert_eq!(q.effective_since_ms(1_000, 100), 950);
        let q = DedupReportQuery {
            since_ms: Some(0),
            ..DedupReportQuery::default()
        };
        assert_eq!(q.effective_since_ms(1_000, 100), 901);
    }

    #[test]
    fn dlq_limit_defaults_and_clamps() {
        assert_eq!(DlqFilter::default().effective_limit(), DEFAULT_DLQ_LIMIT);
        let huge = DlqFilter {
            limit: Some(u32::MAX),
            ..DlqFilter::default()
        };
        assert_eq!(huge.effective_limit(), MAX_DLQ_LIMIT);
    }
}

/// One consent decision, as the store keeps it (issue: consent audit). The
/// full record is JSON built by the caller (no raw personal data: codes and
/// names only); the other columns are what it is searched by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// When the decision was made, Unix milliseconds.
    pub time_ms: i64,
    pub pixel_id: String,
    pub event_name: String,
    pub event_id: Option<String>,
    /// `browser`, `backend`, `graph`, `import`.
    pub source: String,
    /// `deliver`, `deliver_ldu`, `deliver_without_identifiers`, `drop`.
    pub outcome: String,
    /// The policy rule that decided.
    pub rule_id: String,
    /// The whole decision record, JSON.
    pub record_json: String,
}

/// A stored [`AuditRow`] with its id (ascending with insertion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(flatten)]
    pub row: AuditRow,
}

/// Which audit rows [`Store::audit_list`](crate::Store::audit_list) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Only rows at or after this instant.
    pub since_ms: Option<i64>,
    pub pixel_id: Option<String>,
    pub outcome: Option<String>,
    pub rule_id: Option<String>,
    /// Page size; `None` means [`DEFAULT_DLQ_LIMIT`], clamped to [`MAX_DLQ_LIMIT`].
    pub limit: Option<u32>,
    /// Only ids strictly greater than this one (keyset pagination).
    pub after_id: Option<i64>,
}

impl AuditFilter {
    /// The page size after defaulting and clamping.
    pub fn effective_limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_DLQ_LIMIT).min(MAX_DLQ_LIMIT)
    }
}
