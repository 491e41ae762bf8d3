use std::collections::BTreeSet;

use sluice_core::GraphError;

use super::*;
use crate::retry::MetaRetryPolicy;

fn invalid() -> DeliveryError {
    DeliveryError::Graph {
        status: 400,
        error: GraphError::new(100, "OAuthException", "Invalid parameter").subcode(2_804_016),
        buc_wait: None,
    }
}

fn unavailable() -> DeliveryError {
    DeliveryError::UnexpectedResponse {
        status: 503,
        snippet: None,
        retry_after: None,
    }
}

/// A fake Graph: rejects any batch holding a bad event, records every batch.
fn fake(
    bad: &BTreeSet<u32>,
    sent: &mut Vec<Vec<u32>>,
    piece: &[u32],
) -> Result<EventResponse, DeliveryError> {
    sent.push(piece.to_vec());
    if piece.iter().any(|e| bad.contains(e)) {
        Err(invalid())
    } else {
        Ok(EventResponse {
            events_received: piece.len() as u64,
            ..EventResponse::default()
        })
    }
}

async fn run(n: u32, bad: &[u32], budget: usize) -> (SplitOutcome<u32>, Vec<Vec<u32>>) {
    let bad: BTreeSet<u32> = bad.iter().copied().collect();
    let mut sent = Vec::new();
    let outcome = bisect(
        (0..n).collect(),
        invalid(),
        &MetaRetryPolicy::default(),
        budget,
        async |piece: &[u32]| fake(&bad, &mut sent, piece),
    )
    .await;
    (outcome, sent)
}

#[tokio::test]
async fn one_bad_event_is_isolated_and_the_rest_delivered() {
    let (outcome, sent) = run(16, &[11], 1000).await;
    assert_eq!(
        outcome.rejected.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
        [11]
    );
    assert_eq!(outcome.rejected[0].1.code_label(), "100/2804016");
    let mut delivered = outcome.delivered.clone();
    delivered.sort_unstable();
    assert_eq!(delivered, (0..16).filter(|e| *e != 11).collect::<Vec<_>>());
    assert!(outcome.unresolved.is_empty());
    assert!(outcome.interrupted.is_none());
    // Two requests per level: log2(16) = 4 levels.
    assert_eq!(outcome.requests, 8);
    assert_eq!(sent.len(), 8);
    // Left first: the first piece sent is the first half.
    assert_eq!(sent[0], (0..8).collect::<Vec<_>>());
}

#[tokio::test]
async fn several_bad_events_anywhere_are_all_isolated() {
    for n in [1u32, 2, 3, 7, 100, 1000] {
        let bad: Vec<u32> = [0, n / 2, n - 1]
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (outcome, _) = run(n, &bad, 10_000).await;
        let mut rejected: Vec<u32> = outcome.rejected.iter().map(|(e, _)| *e).collect();
        rejected.sort_unstable();
        assert_eq!(rejected, bad, "n={n}");
        assert_eq!(
            outcome.delivered.len() + rejected.len(),
            n as usize,
            "n={n}: nothing lost"
        );
        assert!(outcome.requests <= 2 * bad.len() * (n.max(2).ilog2() as usize + 1));
    }
}

#[tokio::test]
async fn a_single_rejected_event_needs_no_request() {
    let (outcome, sent) = run(1, &[0], 10).await;
    assert_eq!(outcome.rejected.len(), 1);
    assert!(sent.is_empty());
    assert_eq!(outcome.requests, 0);
}

#[tokio::test]
async fn a_transient_answer_interrupts_and_hands_back_the_rest() {
    let mut calls = 0;
    let outcome = bisect(
        (0..8u32).collect(),
        invalid(),
        &MetaRetryPolicy::default(),
        100,
        async |piece: &[u32]| {
            calls += 1;
            if calls == 2 {
                Err(unavailable())
            } else if piece.contains(&1) {
                Err(invalid())
            } else {
                Ok(EventResponse::default())
            }
        },
    )
    .await;
    // Call 1: [0..4) rejected, split into [0,1] and [2,3]; call 2 fails.
    assert_eq!(outcome.requests, 2);
    assert!(outcome.delivered.is_empty());
    assert!(outcome.rejected.is_empty());
    let mut unresolved = outcome.unresolved.clone();
    unresolved.sort_unstable();
    assert_eq!(unresolved, (0..8).collect::<Vec<_>>());
    let (verdict, error) = outcome.interrupted.unwrap();
    assert_eq!(verdict, Verdict::RetryNow);
    assert_eq!(error.code_label(), "http_503");
}

#[tokio::test]
async fn the_budget_bounds_the_requests() {
    // Every event bad: a full split would need 2n - 2 requests.
    let all: Vec<u32> = (0..64).collect();
    let (outcome, sent) = run(64, &all, 10).await;
    assert_eq!(sent.len(), 10);
    assert_eq!(outcome.requests, 10);
    assert!(outcome.interrupted.is_none());
    assert_eq!(
        outcome.delivered.len() + outcome.rejected.len() + outcome.unresolved.len(),
        64
    );
    assert!(!outcome.unresolved.is_empty());
}

#[test]
fn the_planner_steps_without_a_runtime() {
    let mut plan = Bisection::new(vec!['a', 'b', 'c'], invalid(), 10);
    let left = plan.next_piece().unwrap();
    assert_eq!(left, ['a']);
    plan.report(left, Verdict::Delivered, Ok(EventResponse::default()));
    let right = plan.next_piece().unwrap();
    assert_eq!(right, ['b', 'c']);
    plan.report(right, Verdict::Permanent, Err(invalid()));
    let b = plan.next_piece().unwrap();
    plan.report(b, Verdict::Permanent, Err(invalid()));
    let c = plan.next_piece().unwrap();
    plan.report(c, Verdict::Delivered, Ok(EventResponse::default()));
    assert!(plan.next_piece().is_none());
    let outcome = plan.finish();
    assert_eq!(outcome.delivered, ['a', 'c']);
    assert_eq!(outcome.rejected.len(), 1);
    assert_eq!(outcome.rejected[0].0, 'b');
    assert_eq!(outcome.requests, 4);
}
