//! Load generation for the gateway's performance checks.
//!
//! - [`body`]: realistic Conversions API request bodies (a website `Purchase`
//!   with raw personal data, ~1.5 KB per event), a unique `event_id` per event.
//! - [`run`]: the HTTP/1.1 load loop (N keep-alive connections, closed loop or
//!   a fixed target rate, latencies in an HdrHistogram).
//! - The `bare-parse` binary is the baseline the gateway is compared with: an
//!   axum endpoint that reads the body, parses it into a `serde_json::Value`
//!   and answers 200.

pub mod body;
pub mod run;
