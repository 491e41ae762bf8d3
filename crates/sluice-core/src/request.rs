//! The Graph request envelope (`POST /{version}/{pixel}/events`) and its answer.

use crate::event::ServerEvent;
use serde::{Deserialize, Serialize};

/// Meta accepts at most this many events in one request.
pub const MAX_EVENTS_PER_REQUEST: usize = 1000;

/// The body of an events request, without the credentials: `access_token` and
/// `appsecret_proof` are added by the client that sends it, so a request value can
/// be logged or stored without a secret in it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EventRequest {
    pub data: Vec<ServerEvent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_event_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_source: Option<String>,
}

/// Meta's answer to an accepted request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventResponse {
    pub events_received: u64,
    #[serde(default)]
    pub messages: Vec<String>,
    #[serde(default)]
    pub fbtrace_id: String,
}
