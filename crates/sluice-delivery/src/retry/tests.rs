use std::time::Duration;

use sluice_core::{EventResponse, GraphError};

use super::*;
use crate::error::TransportKind;

const RATE: Duration = Duration::from_secs(60);
const BLOCK: Duration = Duration::from_secs(1800);
const BUC: Duration = Duration::from_secs(300);

fn policy() -> MetaRetryPolicy {
    MetaRetryPolicy {
        rate_limit_pause: RATE,
        policy_block_pause: BLOCK,
    }
}

fn graph(
    status: u16,
    code: i64,
    subcode: Option<i64>,
    transient: Option<bool>,
    wait: Option<Duration>,
) -> Result<EventResponse, DeliveryError> {
    let mut error = GraphError::new(code, "OAuthException", "msg");
    error.error_subcode = subcode;
    error.is_transient = transient;
    Err(DeliveryError::Graph {
        status,
        error,
        buc_wait: wait,
    })
}

/// (description, HTTP status, code, subcode, is_transient, wait, expected).
type Row = (
    &'static str,
    u16,
    i64,
    Option<i64>,
    Option<bool>,
    Option<Duration>,
    Verdict,
);

/// One row per line of the §8.3 table (and the decisions the module doc
/// adds): (description, HTTP status, code, subcode, is_transient, wait, expected).
#[test]
fn every_graph_row_of_the_table() {
    use Verdict::*;
    #[rustfmt::skip]
    let rows: &[Row] = &[
        ("1 unknown",                 500, 1,      None,            None,        None,      RetryNow),
        ("1/99 unknown, 400",         400, 1,      Some(99),        None,        None,      RetryNow),
        ("2 service unavailable",     503, 2,      None,            Some(true),  None,      RetryNow),
        ("341 app limit reached",     400, 341,    None,            None,        None,      RetryNow),
        ("368 policy block",          400, 368,    None,            None,        None,      RetryAfter(BLOCK)),
        ("368 with a longer hint",    400, 368,    None,            None,        Some(Duration::from_secs(7200)), RetryAfter(Duration::from_secs(7200))),
        ("4 app throttling",          400, 4,      None,            None,        None,      RetryAfter(RATE)),
        ("4 with BUC wait",           400, 4,      None,            None,        Some(BUC), RetryAfter(BUC)),
        ("17/2446079 user limit",     400, 17,     Some(2_446_079), None,        None,      RetryAfter(RATE)),
        ("32 page limit",             400, 32,     None,            None,        Some(BUC), RetryAfter(BUC)),
        ("613/1487742 custom limit",  400, 613,    Some(1_487_742), None,        None,      RetryAfter(RATE)),
        ("80000 BUC first",           400, 80_000, None,            None,        Some(BUC), RetryAfter(BUC)),
        ("80004 ads management BUC",  400, 80_004, None,            None,        Some(BUC), RetryAfter(BUC)),
        ("80014 BUC last",            400, 80_014, None,            None,        None,      RetryAfter(RATE)),
        ("80015 is not BUC",          400, 80_015, None,            None,        None,      Permanent),
        ("throttling beats transient=false", 400, 17, None,         Some(false), None,      RetryAfter(RATE)),
        ("3 capability missing",      400, 3,      None,            None,        None,      FixCredentials),
        ("10 permission denied",      403, 10,     None,            None,        None,      FixCredentials),
        ("200 permission",            403, 200,    None,            None,        None,      FixCredentials),
        ("299 permission",            403, 299,    None,            None,        None,      FixCredentials),
        ("102 session invalid",       401, 102,    None,            None,        None,      FixCredentials),
        ("190 token invalid",         401, 190,    None,            None,        None,      FixCredentials),
        ("190/458",                   401, 190,    Some(458),       None,        None,      FixCredentials),
        ("190/459",                   401, 190,    Some(459),       None,        None,      FixCredentials),
        ("190/460",                   401, 190,    Some(460),       None,        None,      FixCredentials),
        ("190/463 expired",           401, 190,    Some(463),       None,        None,      FixCredentials),
        ("190/464",                   401, 190,    Some(464),       None,        None,      FixCredentials),
        ("190/467 invalid",           401, 190,    Some(467),       None,        None,      FixCredentials),
        ("190/492",                   401, 190,    Some(492),       None,        None,      FixCredentials),
        ("102/463",                   401, 102,    Some(463),       None,        None,      FixCredentials),
        ("190 even if transient",     500, 190,    None,            Some(true),  None,      FixCredentials),
        ("100/33 object missing",     400, 100,    Some(33),        None,        None,      FixCredentials),
        ("100/2804016 not hashed",    400, 100,    Some(2_804_016), None,        None,      Permanent),
        ("100/2804050 insufficient",  400, 100,    Some(2_804_050), None,        None,      Permanent),
        ("100/2804003 too old",       400, 100,    Some(2_804_003), None,        None,      Permanent),
        ("100/2804014 invalid param", 400, 100,    Some(2_804_014), None,        None,      Permanent),
        ("100/2804009 no value",      400, 100,    Some(2_804_009), None,        None,      Permanent),
        ("100 unexpected key",        400, 100,    None,            None,        None,      Permanent),
        ("100 even on a 500",         500, 100,    None,            None,        None,      Permanent),
        ("100 even if transient",     400, 100,    None,            Some(true),  None,      Permanent),
        ("2804030 LDU (legacy code)", 400, 2_804_030, None,         None,        None,      Permanent),
        ("unknown code, transient",   400, 9_999,  None,            Some(true),  None,      RetryNow),
        ("unknown code, 500",         500, 9_999,  None,            None,        None,      RetryNow),
        ("unknown code, 503 not transient", 503, 9_999, None,       Some(false), None,      RetryNow),
        ("unknown code, 429",         429, 9_999,  None,            None,        Some(BUC), RetryAfter(BUC)),
        ("unknown code, 429 no hint", 429, 9_999,  None,            None,        None,      RetryAfter(RATE)),
        ("unknown code, 400",         400, 9_999,  None,            None,        None,      Permanent),
        ("unknown code, 400 not transient", 400, 9_999, None,       Some(false), None,      Permanent),
    ];
    for (what, status, code, subcode, transient, wait, expected) in rows {
        let got = policy().classify(&graph(*status, *code, *subcode, *transient, *wait));
        assert_eq!(got, *expected, "row {what:?}");
    }
}

#[test]
fn success_transport_and_non_graph_responses() {
    use Verdict::*;
    let p = policy();
    assert_eq!(p.classify(&Ok(EventResponse::default())), Delivered);
    for kind in [
        TransportKind::Timeout,
        TransportKind::Connect,
        TransportKind::Body,
        TransportKind::Request,
        TransportKind::Other,
    ] {
        let err = DeliveryError::Transport {
            kind,
            message: String::new(),
        };
        assert_eq!(p.classify(&Err(err)), RetryNow, "{kind}");
    }
    let unexpected = |status: u16, retry_after: Option<Duration>| {
        Err(DeliveryError::UnexpectedResponse {
            status,
            snippet: None,
            retry_after,
        })
    };
    #[rustfmt::skip]
    let rows: &[(u16, Option<Duration>, Verdict)] = &[
        (200, None,      RetryNow),
        (408, None,      RetryNow),
        (500, None,      RetryNow),
        (502, None,      RetryNow),
        (503, Some(BUC), RetryNow),
        (504, None,      RetryNow),
        (429, Some(BUC), RetryAfter(BUC)),
        (429, None,      RetryAfter(RATE)),
        (400, None,      FixCredentials),
        (401, None,      FixCredentials),
        (403, None,      FixCredentials),
        (404, None,      FixCredentials),
    ];
    for (status, retry_after, expected) in rows {
        assert_eq!(
            p.classify(&unexpected(*status, *retry_after)),
            *expected,
            "status {status}"
        );
    }
    assert_eq!(
        p.classify(&Err(DeliveryError::InvalidBatch { reason: "x" })),
        Permanent
    );
}

#[test]
fn defaults_and_labels() {
    let p = MetaRetryPolicy::default();
    assert_eq!(p.rate_limit_pause, DEFAULT_RATE_LIMIT_PAUSE);
    assert_eq!(p.policy_block_pause, DEFAULT_POLICY_BLOCK_PAUSE);
    assert_eq!(Verdict::RetryAfter(RATE).as_str(), "rate_limited");
    assert_eq!(Verdict::RetryNow.as_str(), "transient");
}
