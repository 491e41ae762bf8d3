//! `bare-parse`: the baseline for the gateway's ingest numbers. An axum
//! endpoint (`POST /v1/events`, any other path too) that reads the body,
//! parses it into a `serde_json::Value` and answers 200 with
//! `{"accepted": N}` (N = events in the body). No validation, no storage.
//!
//! `bare-parse [--listen 127.0.0.1:8090]` (loopback only; stops on Ctrl-C or SIGTERM).

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use std::net::SocketAddr;
use std::process::ExitCode;

async fn events(body: Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(value) => {
            let n = value
                .get("data")
                .and_then(Value::as_array)
                .map_or(1, Vec::len);
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                format!("{{\"accepted\":{n}}}"),
            )
                .into_response()
        }
        Err(_) => (StatusCode::BAD_REQUEST, "invalid json").into_response(),
    }
}

fn main() -> ExitCode {
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8090));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(v)) => match v.parse() {
                Ok(a) => listen = a,
                Err(e) => {
                    eprintln!("error: --listen {v}: {e}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("usage: bare-parse [--listen 127.0.0.1:PORT]");
                return ExitCode::from(2);
            }
        }
    }
    if !listen.ip().is_loopback() {
        eprintln!("error: bare-parse listens on loopback addresses only");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        eprintln!("bare-parse listening on http://{}", listener.local_addr()?);
        let app = Router::new()
            .route("/v1/events", post(events))
            .fallback(post(events))
            .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024));
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = async {
                        match term.as_mut() {
                            Some(t) => { t.recv().await; }
                            None => std::future::pending::<()>().await,
                        }
                    } => {}
                }
            })
            .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
