//! Isolating the bad events of a rejected batch by bisection.
//!
//! Meta rejects a whole batch when one event in it is invalid, and its error
//! rarely says which one (capi-reference.md §1.3, §8.3). Dropping the batch
//! would lose the good events; so a batch rejected as
//! [`Verdict::Permanent`] is cut in halves that are sent again, and each
//! half that is rejected is cut again, until every rejected piece is a
//! single event. Those are dead-lettered with Meta's error; every accepted
//! half is delivered. With `k` bad events among `n`, that costs about
//! `2k·log2(n)` requests, far fewer than sending one by one.
//!
//! The split is depth-first, left half first, so the events go out in their
//! original order as far as possible.
//!
//! A non-permanent answer in the middle (throttling, a timeout, a token that
//! just expired) stops the split: what is not settled yet is handed back as
//! `unresolved`, with the verdict, for the engine to retry like any batch.
//! A request budget bounds the work on a batch full of bad events; what the
//! budget leaves unsent is `unresolved` too.
//!
//! [`Bisection`] is the pure planner (no I/O, unit-tested step by step);
//! [`bisect`] drives it with any async sender.

use sluice_core::EventResponse;

use crate::error::DeliveryError;
use crate::retry::{RetryPolicy, Verdict};

/// How a split ended.
#[derive(Debug)]
pub struct SplitOutcome<T> {
    /// Events Meta accepted, in sending order.
    pub delivered: Vec<T>,
    /// Events that failed on their own, each with the error Meta gave.
    pub rejected: Vec<(T, DeliveryError)>,
    /// Events not settled: the split was interrupted or ran out of budget.
    pub unresolved: Vec<T>,
    /// The non-permanent verdict (and its error) that interrupted the split.
    pub interrupted: Option<(Verdict, DeliveryError)>,
    /// Requests sent during the split (not counting the original batch).
    pub requests: usize,
}

/// The bisection planner. Hand out pieces with [`next_piece`], report each
/// result with [`report`], then [`finish`].
///
/// [`next_piece`]: Bisection::next_piece
/// [`report`]: Bisection::report
/// [`finish`]: Bisection::finish
#[derive(Debug)]
pub struct Bisection<T> {
    /// Pieces still to send; the next one is at the end.
    stack: Vec<Vec<T>>,
    max_requests: usize,
    outcome: SplitOutcome<T>,
}

impl<T> Bisection<T> {
    /// Starts from a batch Meta rejected with `error`. A single event is
    /// rejected at once; a larger batch is cut in two.
    pub fn new(batch: Vec<T>, error: DeliveryError, max_requests: usize) -> Self {
        let mut bisection = Bisection {
            stack: Vec::new(),
            max_requests,
            outcome: SplitOutcome {
                delivered: Vec::new(),
                rejected: Vec::new(),
                unresolved: Vec::new(),
                interrupted: None,
                requests: 0,
            },
        };
        bisection.reject_or_split(batch, error);
        bisection
    }

    /// The next piece to send, or `None` when the split is over (done,
    /// interrupted, or out of budget).
    pub fn next_piece(&mut self) -> Option<Vec<T>> {
        if self.outcome.interrupted.is_some() || self.outcome.requests >= self.max_requests {
            return None;
        }
        let piece = self.stack.pop()?;
        self.outcome.requests += 1;
        Some(piece)
    }

    /// Records what happened to a piece from [`next_piece`](Self::next_piece).
    pub fn report(
        &mut self,
        piece: Vec<T>,
        verdict: Verdict,
        result: Result<EventResponse, DeliveryError>,
    ) {
        match (verdict, result) {
            (Verdict::Delivered, _) => self.outcome.delivered.extend(piece),
            (Verdict::Permanent, Err(error)) => self.reject_or_split(piece, error),
            (verdict, result) => {
                self.outcome.unresolved.extend(piece);
                let error = result.err().unwrap_or(DeliveryError::InvalidBatch {
                    reason: "policy refused a successful response",
                });
                self.outcome.interrupted = Some((verdict, error));
            }
        }
    }

    /// Ends the split; pieces never sent become `unresolved`.
    pub fn finish(mut self) -> SplitOutcome<T> {
        while let Some(piece) = self.stack.pop() {
            self.outcome.unresolved.extend(piece);
        }
        self.outcome
    }

    fn reject_or_split(&mut self, mut piece: Vec<T>, error: DeliveryError) {
        match piece.len() {
            0 => {}
            1 => {
                let event = piece.pop().unwrap_or_else(|| unreachable!("length is 1"));
                self.outcome.rejected.push((event, error));
            }
            len => {
                let right = piece.split_off(len / 2);
                self.stack.push(right);
                self.stack.push(piece);
            }
        }
    }
}

/// Runs a whole bisection of `batch` (rejected with `error`) with `send`,
/// at most `max_requests` requests.
pub async fn bisect<T, S>(
    batch: Vec<T>,
    error: DeliveryError,
    policy: &dyn RetryPolicy,
    max_requests: usize,
    mut send: S,
) -> SplitOutcome<T>
where
    S: AsyncFnMut(&[T]) -> Result<EventResponse, DeliveryError>,
{
    let mut bisection = Bisection::new(batch, error, max_requests);
    while let Some(piece) = bisection.next_piece() {
        let result = send(&piece).await;
        let verdict = policy.classify(&result);
        bisection.report(piece, verdict, result);
    }
    bisection.finish()
}

#[cfg(test)]
mod tests;
