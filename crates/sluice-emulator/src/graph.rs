//! `POST /{version}/{pixel_id}/events`: the emulated Graph edge.
//!
//! One request goes: decode the body (any encoding of §1.1) → consult the fault
//! script → credentials and dataset → envelope and events → record. Everything
//! that goes wrong becomes a Graph error answer; nothing here panics on input.

use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::Response;
use futures::stream;
use sluice_core::ValidationContext;
use std::time::Duration;

use crate::Emulator;
use crate::answers::{self, Answer, RateLimit};
use crate::checks;
use crate::decode::{BodyKind, Params, body_kind};
use crate::faults::Fault;
use crate::server::ConnControl;
use crate::sync::lock;

/// Most multipart fields a request may have; Graph's edge has about a dozen.
const MAX_MULTIPART_FIELDS: usize = 256;

/// `v26.0`, `v24.0`, `v9`: what Graph accepts as a version segment.
fn is_version(segment: &str) -> bool {
    let Some(rest) = segment.strip_prefix('v') else {
        return false;
    };
    let mut parts = rest.splitn(2, '.');
    let major_ok = parts
        .next()
        .is_some_and(|m| !m.is_empty() && m.len() <= 3 && m.bytes().all(|b| b.is_ascii_digit()));
    let minor_ok = parts
        .next()
        .is_none_or(|m| !m.is_empty() && m.len() <= 3 && m.bytes().all(|b| b.is_ascii_digit()));
    major_ok && minor_ok
}

/// Any path the emulator does not serve.
pub(crate) async fn unknown_path(uri: Uri) -> Response {
    answers::unknown_path(uri.path()).into_response_for(None)
}

pub(crate) async fn events_endpoint(
    State(emulator): State<Emulator>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    request: Request,
) -> Response {
    let Ok(Path((version, pixel))) = path else {
        return answers::unknown_path(request.uri().path()).into_response_for(None);
    };
    if !is_version(&version) {
        return answers::unknown_path(request.uri().path()).into_response_for(None);
    }
    let version = Some(version.as_str());
    if request.method() != Method::POST {
        let answer = answers::unsupported_method(request.method().as_str(), &pixel);
        return answer.into_response_for(version);
    }
    let conn = request.extensions().get::<ConnControl>().cloned();
    let (params, decoded) = read_params(request, emulator.inner.config.max_body_bytes).await;
    let token = checks::token(&params);

    let plan = emulator.inner.faults.plan(&pixel, token.as_deref());
    lock(&emulator.inner.store).count_request(&pixel);
    if let Some(fault) = &plan.action {
        lock(&emulator.inner.store).count_fault(fault.kind());
        tracing::info!(fault = fault.kind(), "emulator: injecting fault");
    }
    // Faults that lose the answer may still let the request through first.
    let processed = match &plan.action {
        None
        | Some(Fault::Timeout { process: true, .. } | Fault::DropConnection { process: true }) => {
            Some(process(
                &emulator,
                &params,
                decoded,
                token.as_deref(),
                &pixel,
            ))
        }
        Some(_) => None,
    };
    if !plan.delay.is_zero() {
        hold(plan.delay, conn.as_ref()).await;
    }
    match (plan.action, processed) {
        (Some(fault), _) => fault_response(&emulator, fault, &pixel, conn, version).await,
        (None, Some(answer)) => answer.into_response_for(version),
        (None, None) => Answer::success(0).into_response_for(version),
    }
}

/// Credentials, envelope and events; records what passes and counts what does
/// not.
fn process(
    emulator: &Emulator,
    params: &Params,
    decoded: Result<(), Answer>,
    token: Option<&str>,
    pixel: &str,
) -> Answer {
    let config = &emulator.inner.config;
    let now_ms = emulator.inner.clock.now_ms();
    let ctx = ValidationContext {
        max_future_skew_s: config.max_future_skew_s,
        ..ValidationContext::for_wire(now_ms.div_euclid(1000))
    };
    let result = match decoded {
        // A body Graph cannot read: without a token in the query string there is
        // nothing to authenticate, so the body error is the answer.
        Err(answer) if token.is_none() => Err(answer),
        decoded => checks::authenticate(params, config, pixel)
            .and(decoded)
            .and_then(|()| checks::check_request(params, &ctx)),
    };
    match result {
        Ok(accepted) => {
            let count = accepted.events.len() as u64;
            let test = accepted.test_event_code.is_some();
            let duplicates = lock(&emulator.inner.store).record(pixel, accepted, now_ms);
            tracing::debug!(events = count, duplicates, test, "emulator: accepted");
            Answer::success(count)
        }
        Err(answer) => {
            if let Some((code, subcode)) = answer.error_code() {
                lock(&emulator.inner.store).count_rejection(code, subcode);
                tracing::debug!(code, subcode, "emulator: rejected");
            }
            answer
        }
    }
}

/// Reads the query string and the body (JSON, form or multipart, at most
/// `limit` bytes) into parameters. The error, if any, is the answer for an
/// unreadable body (given after the credentials are checked). The gateway's
/// Graph-compatible endpoint reads requests with this too, so both accept
/// exactly the same encodings.
pub async fn read_params(request: Request, limit: usize) -> (Params, Result<(), Answer>) {
    let params = Params::from_query(request.uri().query());
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let declared_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|n| n > limit as u64) {
        return (params, Err(answers::body_too_large(limit)));
    }
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
                .then(|| token.trim().to_owned())
        });
    let kind = body_kind(content_type.as_deref());
    let (mut params, result) = read_body(params, request, kind, limit).await;
    if let Some(token) = bearer {
        params.set_if_absent("access_token", token);
    }
    (params, result)
}

async fn read_body(
    mut params: Params,
    request: Request,
    kind: BodyKind,
    limit: usize,
) -> (Params, Result<(), Answer>) {
    if kind == BodyKind::Multipart {
        let result = read_multipart(request, limit)
            .await
            .map(|fields| params.add_fields(fields));
        return (params, result);
    }
    let bytes = match axum::body::to_bytes(request.into_body(), limit).await {
        Ok(b) => b,
        // Over the limit (or the client went away mid-body, when no one reads
        // the answer anyway).
        Err(_) => return (params, Err(answers::body_too_large(limit))),
    };
    let result = params
        .add_body(kind, &bytes)
        .map_err(answers::invalid_param);
    (params, result)
}

async fn read_multipart(request: Request, limit: usize) -> Result<Vec<(String, String)>, Answer> {
    let mut multipart = Multipart::from_request(request, &()).await.map_err(|e| {
        answers::invalid_param(format!("Malformed multipart body: {}", e.body_text()))
    })?;
    let mut fields = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(answers::body_too_large(limit));
            }
            Err(e) => {
                return Err(answers::invalid_param(format!(
                    "Malformed multipart body: {}",
                    e.body_text()
                )));
            }
        };
        if fields.len() >= MAX_MULTIPART_FIELDS {
            return Err(answers::invalid_param("Too many multipart fields"));
        }
        let name = field.name().map(str::to_owned);
        let text = match field.text().await {
            Ok(t) => t,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(answers::body_too_large(limit));
            }
            Err(e) => {
                return Err(answers::invalid_param(format!(
                    "Malformed multipart body: {}",
                    e.body_text()
                )));
            }
        };
        if let Some(name) = name {
            fields.push((name, text));
        }
    }
    Ok(fields)
}

/// Waits `delay`, or less when the server is shutting down.
async fn hold(delay: Duration, conn: Option<&ConnControl>) {
    match conn {
        Some(conn) => {
            let mut shutdown = conn.shutdown.clone();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = crate::server::stopped_signal(&mut shutdown) => {}
            }
        }
        None => tokio::time::sleep(delay).await,
    }
}

async fn fault_response(
    emulator: &Emulator,
    fault: Fault,
    pixel: &str,
    conn: Option<ConnControl>,
    version: Option<&str>,
) -> Response {
    let answer = match fault {
        Fault::RateLimit {
            code,
            status,
            subcode,
            transient,
            regain_minutes,
            business_id,
        } => answers::rate_limited(&RateLimit {
            code,
            status: status_code(status.unwrap_or(400)),
            subcode: subcode.or_else(|| answers::rate_limit_default_subcode(code)),
            transient,
            regain_minutes: regain_minutes.unwrap_or(1),
            business_id: business_id.unwrap_or_else(|| pixel.to_owned()),
        }),
        Fault::HttpStatus {
            status,
            code,
            subcode,
            message,
            transient,
        } => answers::server_error(
            status_code(status),
            code.unwrap_or_else(|| default_server_code(status)),
            subcode,
            message.as_deref(),
            transient.unwrap_or(status >= 500),
        ),
        Fault::RandomFailure { status, code, .. } => {
            let status = status.unwrap_or(500);
            answers::server_error(
                status_code(status),
                code.unwrap_or_else(|| default_server_code(status)),
                None,
                None,
                status >= 500,
            )
        }
        Fault::TokenExpired { .. } => answers::expired_token(),
        Fault::Raw {
            status,
            body,
            content_type,
        } => Answer::raw(
            status_code(status),
            content_type.unwrap_or_else(|| "text/html; charset=utf-8".to_owned()),
            body,
        ),
        Fault::Latency { .. } => Answer::success(0),
        Fault::Timeout { hold_ms, .. } => {
            let max = emulator.inner.config.max_hold_ms;
            hold(
                Duration::from_millis(hold_ms.unwrap_or(max).min(max)),
                conn.as_ref(),
            )
            .await;
            return drop_connection(conn).await;
        }
        Fault::DropConnection { .. } => return drop_connection(conn).await,
    };
    if let Some((code, subcode)) = answer.error_code() {
        lock(&emulator.inner.store).count_rejection(code, subcode);
    }
    answer.into_response_for(version)
}

fn default_server_code(status: u16) -> i64 {
    if status == 500 { 1 } else { 2 }
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Closes the connection without an answer. Under the emulator's own server the
/// connection task is told to drop the socket; mounted in another server, the
/// best available is a response whose body fails before its first byte, which
/// makes hyper abort the connection.
async fn drop_connection(conn: Option<ConnControl>) -> Response {
    if let Some(conn) = conn {
        conn.kill.notify_one();
        return std::future::pending::<Response>().await;
    }
    let failing = stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::other(
            "emulator dropped the connection",
        ))
    });
    Response::new(axum::body::Body::from_stream(failing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_segments() {
        for ok in ["v26.0", "v24.0", "v9", "v100.12"] {
            assert!(is_version(ok), "{ok}");
        }
        for bad in [
            "26.0",
            "v",
            "v26.",
            "vx.0",
            "v26.0.1",
            "_emulator",
            "v1234.0",
        ] {
            assert!(!is_version(bad), "{bad}");
        }
    }
}
