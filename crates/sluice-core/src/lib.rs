//! The Conversions API data model, shared by every sluice crate.
//!
//! This crate owns the shape of what Meta's Graph API accepts (`ServerEvent` and its
//! parts, the request envelope, the success and error responses), the rules an
//! event must satisfy before it is sent ([`validate`]), the `fbp`/`fbc` cookie
//! formats ([`cookies`]), the Graph error codes ([`graph_error`]) and the
//! match-quality estimate ([`match_quality`]). It does no I/O.
//!
//! Raw personal data only ever lives inside [`Pii`], whose `Debug` and `Display`
//! print a marker, so a stray `{:?}` in a log line cannot leak it.

pub mod app_data;
pub mod cookies;
pub mod currency;
pub mod custom_data;
pub mod event;
pub mod graph_error;
mod json;
pub mod match_quality;
pub mod redact;
pub mod request;
pub mod time;
pub mod user_data;
pub mod validate;
mod wire;

pub use app_data::AppData;
pub use custom_data::{Content, CustomData};
pub use event::{
    ActionSource, AttributionData, AttributionSetting, EventBuilder, OriginalEventData,
    STANDARD_EVENTS, ServerEvent, is_standard_event,
};
pub use graph_error::{GraphError, GraphErrorEnvelope};
pub use redact::{Pii, Secret};
pub use request::{EventRequest, EventResponse, MAX_EVENTS_PER_REQUEST};
pub use user_data::{HashedKey, HashedValues, UserData, UserDataValue};
pub use validate::{Problem, Severity, ValidationContext};
pub use wire::{BoolOrInt, IdValue};

/// The Graph API version sluice speaks unless configured otherwise.
pub const DEFAULT_GRAPH_VERSION: &str = "v26.0";
