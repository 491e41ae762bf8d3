//! One delivery worker of one pixel's lane: lease, guard, send, settle.
//!
//! A lane runs `concurrency_per_pixel` of these loops. Each turn:
//!
//! 1. ask the lane's breaker for admission (an open breaker means: lease
//!    nothing, wait until it may probe);
//! 2. lease up to `max_batch_size` due events, and linger briefly for more
//!    if the batch is not full;
//! 3. dead-letter events past Meta's age limit (they would fail the batch);
//! 4. send the rest, one request per `test_event_code`;
//! 5. settle by the verdict: ack, retry with backoff, release until the
//!    throttling wait is over, pause for credentials, or bisect and
//!    dead-letter the events Meta rejects.
//!
//! A group's request body is built before it is sent, and the leased
//! payloads are dropped right then: during the request (the long part of a
//! turn) the body is the only copy of the events, and a split cuts its
//! pieces out of that body. With `concurrency_per_pixel` workers draining a
//! backlog, that halves what the lane holds (bench/RESULTS.md, "Session 3:
//! memory").
//!
//! Every store call that fails is logged and skipped: the events stay
//! leased and come back when the lease expires, so a store hiccup delays
//! events but never loses or double-settles them. Nothing here logs a
//! token or a payload; logs carry the pixel id, counts and error codes.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use sluice_core::EventResponse;
use sluice_core::graph_error::codes;
use sluice_store::{DeadLetterReason, EventRowId, LeasedEvent, Store};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};

use crate::age;
use crate::backoff::Backoff;
use crate::breaker::{Admission, BreakerState, Ticket, TripCause};
use crate::client::{BatchOptions, Credentials, GraphClient, RawBody};
use crate::config::{PixelResolver, TestEventMode};
use crate::error::DeliveryError;
use crate::metrics;
use crate::retry::{MetaRetryPolicy, RetryPolicy, Verdict};
use crate::split;
use crate::status::{LaneShared, lock, unix_ms};

/// Longest text kept in a retry's `last_error` or a dead letter's message.
const MAX_ERROR_TEXT: usize = 300;

/// Engine-wide settings and the store, shared by every worker.
pub(crate) struct Context {
    pub store: Arc<dyn Store>,
    pub policy: MetaRetryPolicy,
    pub backoff: Backoff,
    pub max_batch_size: usize,
    pub linger: Duration,
    pub lease_ms: i64,
    pub poll_interval: Duration,
    pub max_attempts: u32,
    pub max_split_requests: usize,
    pub age_margin_secs: i64,
}

/// One pixel's lane: its endpoint, credentials and shared state.
pub(crate) struct Lane {
    pub shared: Arc<LaneShared>,
    pub client: GraphClient,
    /// Fixed for a configured pixel; refreshed from `resolver` for one
    /// opened at run time.
    pub credentials: Mutex<Credentials>,
    /// The resolver a dynamic lane came from; `None` for configured pixels.
    pub resolver: Option<Arc<dyn PixelResolver>>,
    pub test_events: TestEventMode,
}

impl Lane {
    /// The credentials to send with now.
    fn credentials(&self) -> Credentials {
        lock(&self.credentials).clone()
    }

    /// For a lane opened through the resolver: asks it again for the
    /// pixel's credentials and adopts them if they changed; `true` then.
    /// An unknown pixel, an unusable answer or a panic keeps the current
    /// ones.
    fn refresh_credentials(&self) -> bool {
        let Some(resolver) = &self.resolver else {
            return false;
        };
        let pixel = &*self.shared.pixel_id;
        let Ok(Some(config)) = catch_unwind(AssertUnwindSafe(|| resolver.resolve(pixel))) else {
            return false;
        };
        if config.refusal_for(pixel).is_some() {
            return false;
        }
        let fresh = config.credentials();
        let mut current = lock(&self.credentials);
        if *current == fresh {
            return false;
        }
        *current = fresh;
        true
    }

    /// Picks up new credentials from the resolver, if any; a breaker
    /// paused for the old ones lets a probe go at once.
    fn adopt_new_credentials(&self) {
        if !self.refresh_credentials() {
            return;
        }
        lock(&self.shared.breaker).credentials_changed();
        self.shared.breaker_changed.notify_waiters();
        tracing::info!(
            pixel = &*self.shared.pixel_id,
            "the pixel resolver supplied other credentials; the lane sends with them from now on"
        );
    }
}

/// Resolves when shutdown is signalled (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Truncates on a character boundary.
fn clip(mut text: String) -> String {
    if let Some((i, _)) = text.char_indices().nth(MAX_ERROR_TEXT) {
        text.truncate(i);
    }
    text
}

/// A leased event once its payload is in a request body: what settling it
/// needs, and where it sits in the body (for a split).
#[derive(Debug, Clone, Copy)]
struct Sent {
    id: EventRowId,
    attempts: u32,
    /// Its index in the [`RawBody`] of its group.
    index: usize,
}

/// Something that names a queue row: a leased event, or one sent.
trait QueueRow {
    fn row_id(&self) -> EventRowId;
}

impl QueueRow for LeasedEvent {
    fn row_id(&self) -> EventRowId {
        self.id
    }
}

impl QueueRow for Sent {
    fn row_id(&self) -> EventRowId {
        self.id
    }
}

fn ids<T: QueueRow>(events: &[T]) -> Vec<EventRowId> {
    events.iter().map(QueueRow::row_id).collect()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A worker loop; returns when shutdown is signalled, after settling the
/// batch in hand.
pub(crate) async fn run_worker(
    ctx: Arc<Context>,
    lane: Arc<Lane>,
    mut rng: StdRng,
    mut stop: watch::Receiver<bool>,
) {
    let pixel = lane.shared.pixel_id.clone();
    loop {
        if *stop.borrow() {
            break;
        }
        lane.adopt_new_credentials();
        let (admission, state) = {
            let mut breaker = lock(&lane.shared.breaker);
            (breaker.admit(Instant::now()), breaker.state())
        };
        let ticket = match admission {
            Admission::Send(ticket) => ticket,
            Admission::Wait(Some(until)) => {
                // A dynamic lane paused for its credentials looks for new
                // ones every poll interval rather than at the end of the
                // (long) credentials cooldown.
                let until = match state {
                    BreakerState::Open {
                        cause: TripCause::Credentials,
                        ..
                    } if lane.resolver.is_some() => until.min(Instant::now() + ctx.poll_interval),
                    _ => until,
                };
                tokio::select! {
                    () = sleep_until(until) => {}
                    () = lane.shared.breaker_changed.notified() => {}
                    () = stopped(&mut stop) => break,
                }
                continue;
            }
            Admission::Wait(None) => {
                tokio::select! {
                    () = lane.shared.breaker_changed.notified() => {}
                    () = sleep(ctx.poll_interval) => {}
                    () = stopped(&mut stop) => break,
                }
                continue;
            }
        };

        // Armed before leasing, so a wake-up between an empty lease and the
        // wait below is not lost.
        let wake = lane.shared.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();

        let batch = match lease(&ctx, &pixel, ctx.max_batch_size).await {
            Some(batch) => batch,
            None => {
                cancel(&lane, ticket);
                tokio::select! {
                    () = sleep(ctx.poll_interval) => {}
                    () = stopped(&mut stop) => break,
                }
                continue;
            }
        };
        if batch.is_empty() {
            cancel(&lane, ticket);
            tokio::select! {
                () = &mut wake => {}
                () = stopped(&mut stop) => break,
            }
            continue;
        }
        let batch = linger(&ctx, &lane, batch, &mut stop).await;
        process(&ctx, &lane, batch, ticket, &mut rng).await;
    }
}

/// Gives an unused admission back (and lets a waiting worker probe).
fn cancel(lane: &Lane, ticket: Ticket) {
    lock(&lane.shared.breaker).cancel(ticket);
    if ticket.is_probe() {
        lane.shared.breaker_changed.notify_waiters();
    }
}

/// Leases; `None` if the store failed (already logged).
async fn lease(ctx: &Context, pixel: &str, max: usize) -> Option<Vec<LeasedEvent>> {
    match ctx.store.lease(pixel, max, ctx.lease_ms, unix_ms()).await {
        Ok(batch) => Some(batch),
        Err(error) => {
            tracing::warn!(pixel, %error, "cannot lease events");
            None
        }
    }
}

/// Tops a partial batch up until it is full or `linger` has passed. On
/// shutdown it stops waiting and the batch is sent as it is.
async fn linger(
    ctx: &Context,
    lane: &Lane,
    mut batch: Vec<LeasedEvent>,
    stop: &mut watch::Receiver<bool>,
) -> Vec<LeasedEvent> {
    if ctx.linger.is_zero() {
        return batch;
    }
    let deadline = Instant::now() + ctx.linger;
    while batch.len() < ctx.max_batch_size {
        tokio::select! {
            () = sleep_until(deadline) => {}
            () = lane.shared.wake.notified() => {}
            () = stopped(stop) => return batch,
        }
        let room = ctx.max_batch_size - batch.len();
        if let Some(more) = lease(ctx, &lane.shared.pixel_id, room).await {
            batch.extend(more);
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    batch
}

/// Guards, groups by test code, sends and settles one leased batch.
async fn process(
    ctx: &Context,
    lane: &Lane,
    batch: Vec<LeasedEvent>,
    ticket: Ticket,
    rng: &mut StdRng,
) {
    let sendable = guard_age(ctx, lane, batch).await;

    // One request per test_event_code: the code is a request parameter.
    let mut groups: Vec<(Option<String>, Vec<LeasedEvent>)> = Vec::new();
    for event in sendable {
        let code = lane
            .test_events
            .resolve(event.test_event_code.as_deref())
            .map(str::to_owned);
        match groups.iter_mut().find(|(c, _)| *c == code) {
            Some((_, events)) => events.push(event),
            None => groups.push((code, vec![event])),
        }
    }
    if groups.is_empty() {
        cancel(lane, ticket);
        return;
    }

    let mut groups = groups.into_iter();
    while let Some((code, events)) = groups.next() {
        let verdict = send_and_settle(ctx, lane, events, code, ticket, rng).await;
        if !matches!(verdict, Verdict::Delivered | Verdict::Permanent) {
            // The lane is paused or backing off: the other groups wait too,
            // without counting an attempt.
            let rest: Vec<LeasedEvent> = groups.by_ref().flat_map(|(_, events)| events).collect();
            if !rest.is_empty() {
                release(ctx, lane, &rest, unix_ms()).await;
            }
            break;
        }
    }
}

/// Dead-letters events Meta would refuse for their age (or that cannot be
/// read); returns the others.
async fn guard_age(ctx: &Context, lane: &Lane, batch: Vec<LeasedEvent>) -> Vec<LeasedEvent> {
    let now_ms = unix_ms();
    let now_secs = now_ms.div_euclid(1000);
    let mut sendable = Vec::with_capacity(batch.len());
    let mut too_old = Vec::new();
    let mut malformed = Vec::new();
    for event in batch {
        match age::check_payload(&event.payload, now_secs, ctx.age_margin_secs) {
            Ok(()) => sendable.push(event),
            Err(age::AgeViolation::TooOld { .. }) => too_old.push(event),
            Err(age::AgeViolation::Malformed) => malformed.push(event),
        }
    }
    if !too_old.is_empty() {
        let reason = DeadLetterReason {
            code: age::EVENT_TOO_OLD.to_owned(),
            message: "event_time was past meta's limit (7 days; 62 for physical_store) \
                      at send time; not sent"
                .to_owned(),
            detail_json: None,
        };
        dead_letter(ctx, lane, &too_old, reason, now_ms).await;
    }
    if !malformed.is_empty() {
        let reason = DeadLetterReason {
            code: age::MALFORMED_PAYLOAD.to_owned(),
            message: age::AgeViolation::Malformed.message(),
            detail_json: None,
        };
        dead_letter(ctx, lane, &malformed, reason, now_ms).await;
    }
    sendable
}

/// Builds the request body of a group and lets go of its leased events:
/// from here on the body is the only copy of their payloads.
///
/// The payloads go in as they are stored, without being parsed again: the
/// age guard has already parsed every one of them in full (one JSON object
/// each, or it was dead-lettered). `Err` only if the body cannot be built.
fn prepare(
    lane: &Lane,
    events: Vec<LeasedEvent>,
    credentials: &Credentials,
    options: &BatchOptions,
) -> (Vec<Sent>, Result<RawBody, DeliveryError>) {
    let sent = events
        .iter()
        .enumerate()
        .map(|(index, event)| Sent {
            id: event.id,
            attempts: event.attempts,
            index,
        })
        .collect();
    let payloads = events.iter().map(|event| event.payload.as_slice());
    let body = lane.client.build_body(payloads, credentials, options);
    (sent, body)
}

async fn send(
    lane: &Lane,
    credentials: &Credentials,
    body: &RawBody,
) -> Result<EventResponse, DeliveryError> {
    let started = Instant::now();
    let result = lane
        .client
        .send_body(&lane.shared.pixel_id, credentials, body)
        .await;
    metrics::request(started.elapsed(), body.len());
    result
}

/// Sends one group, feeds the breaker, settles the events. Returns the verdict.
async fn send_and_settle(
    ctx: &Context,
    lane: &Lane,
    events: Vec<LeasedEvent>,
    test_event_code: Option<String>,
    ticket: Ticket,
    rng: &mut StdRng,
) -> Verdict {
    let options = BatchOptions {
        test_event_code,
        ..BatchOptions::default()
    };
    let credentials = lane.credentials();
    let (events, body) = prepare(lane, events, &credentials, &options);
    let body = match body {
        Ok(body) => body,
        Err(error) => {
            // Nothing was sent: not the events' fault, so no dead letter
            // before their attempts are used up.
            cancel(lane, ticket);
            let reason = Verdict::RetryNow.as_str();
            retry_or_give_up(ctx, lane, events, &error, reason, rng).await;
            return Verdict::RetryNow;
        }
    };
    let result = send(lane, &credentials, &body).await;
    let verdict = ctx.policy.classify(&result);
    record(lane, ticket, verdict, result.as_ref().err());

    match result {
        Ok(response) => {
            drop(body);
            if verdict == Verdict::Delivered {
                delivered(ctx, lane, &events, &response).await;
            } else {
                // Only a custom policy could refuse a success; resend later.
                let error = DeliveryError::InvalidBatch {
                    reason: "success response refused by the retry policy",
                };
                retry_or_give_up(ctx, lane, events, &error, Verdict::RetryNow.as_str(), rng).await;
            }
        }
        Err(error) => match verdict {
            Verdict::Permanent => {
                split_rejected(ctx, lane, body, events, error, &options, ticket, rng).await;
            }
            verdict => {
                drop(body);
                settle_failure(ctx, lane, events, verdict, &error, rng).await;
            }
        },
    }
    verdict
}

/// Feeds the breaker, updates the gauge and the status, and raises the
/// alarms (once per outage).
fn record(lane: &Lane, ticket: Ticket, verdict: Verdict, error: Option<&DeliveryError>) {
    let now = Instant::now();
    let pixel = &*lane.shared.pixel_id;
    let (tripped, open) = {
        let mut breaker = lock(&lane.shared.breaker);
        let tripped = breaker.record(ticket, verdict, now);
        (tripped, breaker.state().is_tripped())
    };
    metrics::breaker_open(pixel, open);
    if ticket.is_probe() {
        lane.shared.breaker_changed.notify_waiters();
    }
    let Some(error) = error else {
        if verdict == Verdict::Delivered {
            lock(&lane.shared.info).alerted = false;
        }
        return;
    };
    let code = error.code_label();
    let first_alert = {
        let mut info = lock(&lane.shared.info);
        info.last_error_code = Some(code.clone());
        info.last_error_ms = Some(unix_ms());
        let first = tripped && !info.alerted;
        if tripped && verdict == Verdict::FixCredentials {
            info.alerted = true;
        }
        first
    };
    if !tripped {
        return;
    }
    match verdict {
        // Once per outage: the breaker re-trips after every failed probe.
        Verdict::FixCredentials if first_alert => {
            tracing::error!(
                pixel,
                code = %code,
                "graph refused the pixel's credentials; lane paused until the token or its permissions are fixed"
            );
        }
        Verdict::FixCredentials => {
            tracing::debug!(pixel, code = %code, "credentials still refused; lane stays paused");
        }
        Verdict::RetryAfter(wait) if error.graph_code() == Some(codes::POLICY_BLOCK) => {
            tracing::error!(
                pixel,
                code = %code,
                pause_s = wait.as_secs(),
                "graph blocked the app for policy reasons; lane paused"
            );
        }
        Verdict::RetryAfter(wait) => {
            tracing::warn!(pixel, code = %code, pause_s = wait.as_secs(), "graph throttled the lane; lane paused");
        }
        _ => {
            tracing::warn!(pixel, code = %code, "repeated transient failures; lane paused");
        }
    }
}

async fn delivered(ctx: &Context, lane: &Lane, events: &[Sent], response: &EventResponse) {
    let pixel = &*lane.shared.pixel_id;
    if usize::try_from(response.events_received).ok() != Some(events.len()) {
        tracing::warn!(
            pixel,
            sent = events.len(),
            received = response.events_received,
            "graph acknowledged a different number of events than were sent"
        );
    }
    let now_ms = unix_ms();
    if let Err(error) = ctx.store.ack(&ids(events), now_ms).await {
        tracing::warn!(pixel, %error, "cannot acknowledge delivered events; they will be sent again");
        return;
    }
    metrics::delivered(pixel, events.len());
    let mut info = lock(&lane.shared.info);
    info.delivered += events.len() as u64;
    info.last_delivered_ms = Some(now_ms);
    tracing::trace!(pixel, events = events.len(), "batch delivered");
}

/// Settles events after a non-permanent failure.
async fn settle_failure(
    ctx: &Context,
    lane: &Lane,
    events: Vec<Sent>,
    verdict: Verdict,
    error: &DeliveryError,
    rng: &mut StdRng,
) {
    let pixel = &*lane.shared.pixel_id;
    match verdict {
        Verdict::RetryAfter(wait) => {
            let due = unix_ms().saturating_add(millis(wait));
            release(ctx, lane, &events, due).await;
            metrics::retried(pixel, verdict.as_str(), events.len());
        }
        Verdict::FixCredentials => {
            // Due at once; the open breaker keeps the lane from leasing them
            // until a probe succeeds.
            release(ctx, lane, &events, unix_ms()).await;
            metrics::retried(pixel, verdict.as_str(), events.len());
        }
        _ => retry_or_give_up(ctx, lane, events, error, verdict.as_str(), rng).await,
    }
}

/// Schedules a transient retry with backoff, or dead-letters events that
/// used up their attempts. `reason` labels the retry metric.
async fn retry_or_give_up(
    ctx: &Context,
    lane: &Lane,
    events: Vec<Sent>,
    error: &DeliveryError,
    reason: &'static str,
    rng: &mut StdRng,
) {
    let pixel = &*lane.shared.pixel_id;
    let now_ms = unix_ms();
    let (exhausted, retry): (Vec<_>, Vec<_>) = events
        .into_iter()
        .partition(|event| event.attempts.saturating_add(1) >= ctx.max_attempts);
    if !exhausted.is_empty() {
        let reason = DeadLetterReason {
            code: "max_attempts".to_owned(),
            message: clip(format!(
                "gave up after {} attempts; last error: {error}",
                ctx.max_attempts
            )),
            detail_json: Some(error.detail_json()),
        };
        dead_letter(ctx, lane, &exhausted, reason, now_ms).await;
    }
    if retry.is_empty() {
        return;
    }
    let attempts = retry.iter().map(|e| e.attempts).max().unwrap_or(0);
    let delay = ctx.backoff.delay(attempts, rng);
    let due = now_ms.saturating_add(millis(delay));
    let last_error = clip(format!("{}: {error}", error.code_label()));
    match ctx.store.retry(&ids(&retry), due, &last_error).await {
        Ok(_) => {
            metrics::retried(pixel, reason, retry.len());
            lock(&lane.shared.info).backoff_until_ms = Some(due);
        }
        Err(store_error) => {
            tracing::warn!(pixel, error = %store_error, "cannot schedule a retry; events return when their lease expires");
        }
    }
}

/// Bisects a batch Meta rejected as invalid. Each piece's body is cut out of
/// the batch's `body`, with the lane's credentials at that moment.
#[allow(clippy::too_many_arguments)]
async fn split_rejected(
    ctx: &Context,
    lane: &Lane,
    body: RawBody,
    events: Vec<Sent>,
    error: DeliveryError,
    options: &BatchOptions,
    ticket: Ticket,
    rng: &mut StdRng,
) {
    let pixel = &*lane.shared.pixel_id;
    if events.len() > 1 {
        tracing::warn!(
            pixel,
            code = %error.code_label(),
            events = events.len(),
            "graph rejected the batch as invalid; splitting it to isolate the bad events"
        );
    }
    // Driven here rather than through `split::bisect`: an async closure
    // borrowing the lane would make this future not provably `Send`.
    let mut bisection = split::Bisection::new(events, error.clone(), ctx.max_split_requests);
    while let Some(piece) = bisection.next_piece() {
        let credentials = lane.credentials();
        let indices = piece.iter().map(|event| event.index);
        let result = match body.part(&lane.client, indices, &credentials, options) {
            Ok(part) => send(lane, &credentials, &part).await,
            Err(error) => Err(error),
        };
        let verdict = ctx.policy.classify(&result);
        bisection.report(piece, verdict, result);
    }
    drop(body);
    let outcome = bisection.finish();

    if !outcome.delivered.is_empty() {
        delivered(
            ctx,
            lane,
            &outcome.delivered,
            &EventResponse {
                events_received: outcome.delivered.len() as u64,
                ..EventResponse::default()
            },
        )
        .await;
    }

    // One dead-letter call per error code: the detail of the first event
    // stands for the group (they differ only in trace ids).
    let now_ms = unix_ms();
    let mut rejected = outcome.rejected;
    while !rejected.is_empty() {
        let code = rejected[0].1.code_label();
        let (same, rest): (Vec<_>, Vec<_>) = rejected
            .into_iter()
            .partition(|(_, error)| error.code_label() == code);
        rejected = rest;
        let first_error = &same[0].1;
        let reason = DeadLetterReason {
            code: code.clone(),
            message: clip(format!("graph rejected the event: {first_error}")),
            detail_json: Some(first_error.detail_json()),
        };
        let events: Vec<Sent> = same.into_iter().map(|(event, _)| event).collect();
        tracing::warn!(pixel, code = %code, events = events.len(), "events rejected by graph moved to the dead-letter queue");
        dead_letter(ctx, lane, &events, reason, now_ms).await;
    }

    if outcome.unresolved.is_empty() {
        return;
    }
    match outcome.interrupted {
        Some((verdict, interruption)) => {
            record(lane, ticket, verdict, Some(&interruption));
            settle_failure(ctx, lane, outcome.unresolved, verdict, &interruption, rng).await;
        }
        None => {
            // Out of split budget: try the rest again later, counting an attempt.
            retry_or_give_up(ctx, lane, outcome.unresolved, &error, "split_budget", rng).await;
        }
    }
}

async fn release<T: QueueRow>(ctx: &Context, lane: &Lane, events: &[T], due_at_ms: i64) {
    let pixel = &*lane.shared.pixel_id;
    match ctx.store.release(&ids(events), due_at_ms).await {
        Ok(_) => {
            let mut info = lock(&lane.shared.info);
            if due_at_ms > unix_ms() {
                info.backoff_until_ms = Some(due_at_ms);
            }
        }
        Err(error) => {
            tracing::warn!(pixel, %error, "cannot release events; they return when their lease expires");
        }
    }
}

async fn dead_letter<T: QueueRow>(
    ctx: &Context,
    lane: &Lane,
    events: &[T],
    reason: DeadLetterReason,
    now_ms: i64,
) {
    let pixel = &*lane.shared.pixel_id;
    let code = reason.code.clone();
    match ctx.store.dead_letter(&ids(events), reason, now_ms).await {
        Ok(moved) => {
            metrics::dead_lettered(pixel, &code, moved.len());
            lock(&lane.shared.info).dead_lettered += moved.len() as u64;
        }
        Err(error) => {
            tracing::warn!(pixel, %error, code = %code, "cannot dead-letter events; they return when their lease expires");
        }
    }
}
