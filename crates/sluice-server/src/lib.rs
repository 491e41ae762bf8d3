//! The sluice gateway: HTTP ingest, the pipeline, and the wiring of store and
//! delivery (`sluice serve`).
//!
//! Sources → pipeline → durable queue → delivery lanes → Meta (or the sandbox).
//! Handlers acknowledge only after the store has committed the events.

pub mod app;
pub mod config;
pub mod consent_stage;
pub mod delivery;
pub mod dlq;
pub mod error;
pub mod ingest;
pub mod merge;
pub mod metrics;
pub mod pipeline;
pub mod retention;
pub mod routes;
pub mod state;

pub use app::{Destination, Gateway, StartError, StartOptions};
pub use config::{Config, ConfigError};
