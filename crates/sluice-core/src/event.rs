//! The server event (`data[i]` of a Graph request), capi-reference.md §2.
//!
//! Unknown event-level keys are a deserialization error, because Graph rejects
//! them for the whole batch ("Unexpected key"); custom properties belong in
//! `custom_data`.

use crate::app_data::AppData;
use crate::custom_data::CustomData;
use crate::user_data::UserData;
use crate::wire::IdValue;
use serde::{Deserialize, Serialize};
use serde_json::Number;
use std::fmt;

/// Where the conversion happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionSource {
    Website,
    App,
    Email,
    PhoneCall,
    Chat,
    PhysicalStore,
    SystemGenerated,
    BusinessMessaging,
    Other,
}

impl ActionSource {
    pub const ALL: [ActionSource; 9] = [
        ActionSource::Website,
        ActionSource::App,
        ActionSource::Email,
        ActionSource::PhoneCall,
        ActionSource::Chat,
        ActionSource::PhysicalStore,
        ActionSource::SystemGenerated,
        ActionSource::BusinessMessaging,
        ActionSource::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionSource::Website => "website",
            ActionSource::App => "app",
            ActionSource::Email => "email",
            ActionSource::PhoneCall => "phone_call",
            ActionSource::Chat => "chat",
            ActionSource::PhysicalStore => "physical_store",
            ActionSource::SystemGenerated => "system_generated",
            ActionSource::BusinessMessaging => "business_messaging",
            ActionSource::Other => "other",
        }
    }

    /// How old an event may be when Meta receives it: 62 days for in-store
    /// transactions, 7 days for everything else.
    pub fn max_age_seconds(self) -> i64 {
        match self {
            ActionSource::PhysicalStore => 62 * 86_400,
            _ => 7 * 86_400,
        }
    }
}

impl fmt::Display for ActionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Meta's standard event names (plus `PageView`); any other name is a custom event.
pub const STANDARD_EVENTS: [&str; 18] = [
    "AddPaymentInfo",
    "AddToCart",
    "AddToWishlist",
    "CompleteRegistration",
    "Contact",
    "CustomizeProduct",
    "Donate",
    "FindLocation",
    "InitiateCheckout",
    "Lead",
    "PageView",
    "Purchase",
    "Schedule",
    "Search",
    "StartTrial",
    "SubmitApplication",
    "Subscribe",
    "ViewContent",
];

pub fn is_standard_event(name: &str) -> bool {
    STANDARD_EVENTS.contains(&name)
}

/// The earlier event a delayed event is tied to.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginalEventData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributionSetting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactivity_window_hours: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reattribution_window_hours: Option<i64>,
}

/// Advertiser-side attribution passback (capi-reference.md §2.3).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributionData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visit_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_id: Option<IdValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adset_id: Option<IdValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<IdValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution_share: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attr_window: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution_value: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub touchpoint_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub touchpoint_ts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auditing_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linkage_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub touchpoint_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution_setting: Option<AttributionSetting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_credit: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_client_id: Option<String>,
}

/// One server event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEvent {
    pub event_name: String,
    /// Unix seconds, UTC.
    pub event_time: i64,
    pub action_source: ActionSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_out: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer_url: Option<String>,
    pub user_data: UserData,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_data: Option<AppData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_processing_options: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_processing_options_country: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_processing_options_state: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_event_data: Option<OriginalEventData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution_data: Option<AttributionData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_segmentation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_measurement_table: Option<String>,
}

/// Every event-level key Graph accepts.
pub const EVENT_KEYS: [&str; 18] = [
    "event_name",
    "event_time",
    "action_source",
    "event_source_url",
    "event_id",
    "opt_out",
    "referrer_url",
    "user_data",
    "custom_data",
    "app_data",
    "data_processing_options",
    "data_processing_options_country",
    "data_processing_options_state",
    "original_event_data",
    "attribution_data",
    "messaging_channel",
    "customer_segmentation",
    "advanced_measurement_table",
];

impl ServerEvent {
    /// Starts a builder with the three fields every event needs.
    pub fn builder(
        event_name: impl Into<String>,
        event_time: i64,
        action_source: ActionSource,
    ) -> EventBuilder {
        EventBuilder {
            event: ServerEvent {
                event_name: event_name.into(),
                event_time,
                action_source,
                event_source_url: None,
                event_id: None,
                opt_out: None,
                referrer_url: None,
                user_data: UserData::default(),
                custom_data: None,
                app_data: None,
                data_processing_options: None,
                data_processing_options_country: None,
                data_processing_options_state: None,
                original_event_data: None,
                attribution_data: None,
                messaging_channel: None,
                customer_segmentation: None,
                advanced_measurement_table: None,
            },
        }
    }

    /// True when the event asks for Limited Data Use.
    pub fn is_ldu(&self) -> bool {
        self.data_processing_options
            .as_ref()
            .is_some_and(|o| o.iter().any(|v| v.eq_ignore_ascii_case("LDU")))
    }
}

/// Builds a [`ServerEvent`] for Rust callers.
///
/// ```
/// use sluice_core::{ActionSource, CustomData, ServerEvent, user_data::HashedKey};
/// let event = ServerEvent::builder("Purchase", 1_795_860_000, ActionSource::Website)
///     .event_id("order-7731")
///     .event_source_url("https://shop.example.com/done")
///     .user_agent("Mozilla/5.0")
///     .raw(HashedKey::Em, "Jane@Example.com")
///     .value(49.9, "EUR")
///     .build();
/// assert_eq!(event.user_data.em.values.len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct EventBuilder {
    event: ServerEvent,
}

impl EventBuilder {
    pub fn event_id(mut self, id: impl Into<String>) -> Self {
        self.event.event_id = Some(id.into());
        self
    }

    pub fn event_source_url(mut self, url: impl Into<String>) -> Self {
        self.event.event_source_url = Some(url.into());
        self
    }

    pub fn referrer_url(mut self, url: impl Into<String>) -> Self {
        self.event.referrer_url = Some(url.into());
        self
    }

    pub fn opt_out(mut self, opt_out: bool) -> Self {
        self.event.opt_out = Some(opt_out);
        self
    }

    pub fn user_data(mut self, user_data: UserData) -> Self {
        self.event.user_data = user_data;
        self
    }

    /// Adds a raw value for a hashed key; it is normalized and hashed before sending.
    pub fn raw(mut self, key: crate::user_data::HashedKey, value: impl Into<String>) -> Self {
        self.event.user_data.push_raw(key, value);
        self
    }

    pub fn client_ip(mut self, ip: impl Into<String>) -> Self {
        self.event.user_data.client_ip_address = Some(ip.into());
        self
    }

    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.event.user_data.client_user_agent = Some(ua.into());
        self
    }

    pub fn fbp(mut self, fbp: impl Into<String>) -> Self {
        self.event.user_data.fbp = Some(fbp.into());
        self
    }

    pub fn fbc(mut self, fbc: impl Into<String>) -> Self {
        self.event.user_data.fbc = Some(fbc.into());
        self
    }

    pub fn custom_data(mut self, custom_data: CustomData) -> Self {
        self.event.custom_data = Some(custom_data);
        self
    }

    /// Sets `custom_data.value` and `custom_data.currency`.
    pub fn value(mut self, value: f64, currency: impl Into<String>) -> Self {
        let cd = self
            .event
            .custom_data
            .get_or_insert_with(CustomData::default);
        cd.value = Number::from_f64(value);
        cd.currency = Some(currency.into());
        self
    }

    pub fn app_data(mut self, app_data: AppData) -> Self {
        self.event.app_data = Some(app_data);
        self
    }

    /// Limited Data Use with Meta's country and state codes (0 = geolocate).
    pub fn limited_data_use(mut self, country: i64, state: i64) -> Self {
        self.event.data_processing_options = Some(vec!["LDU".to_owned()]);
        self.event.data_processing_options_country = Some(country);
        self.event.data_processing_options_state = Some(state);
        self
    }

    pub fn messaging_channel(mut self, channel: impl Into<String>) -> Self {
        self.event.messaging_channel = Some(channel.into());
        self
    }

    pub fn build(self) -> ServerEvent {
        self.event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"event_name":"Purchase","event_time":1795860000,"action_source":"website","event_source_url":"https://shop.example.com/checkout/done","event_id":"order-7731","user_data":{"em":["86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d"],"client_ip_address":"2001:db8::7","client_user_agent":"Mozilla/5.0 ...","fbc":"fb.1.1795858000456.IwAR0abcDEF","fbp":"fb.1.1795859000123.1234567890"},"custom_data":{"value":49.9,"currency":"EUR","contents":[{"id":"sku-1","quantity":1,"item_price":49.9}],"content_type":"product","order_id":"7731"}}"#;

    #[test]
    fn reference_example_round_trips_byte_exact() {
        let event: ServerEvent = serde_json::from_str(EXAMPLE).unwrap();
        assert_eq!(serde_json::to_string(&event).unwrap(), EXAMPLE);
    }

    #[test]
    fn every_field_round_trips() {
        let json = r#"{"event_name":"Lead","event_time":1,"action_source":"system_generated","event_source_url":"u","event_id":"e","opt_out":true,"referrer_url":"r","user_data":{"lead_id":123456789},"custom_data":{"event_source":"crm","lead_event_source":"Acme CRM"},"app_data":{"advertiser_tracking_enabled":1,"application_tracking_enabled":true,"extinfo":["a2","com.x","1","1.0","14","Pixel","en_US","UTC","","1080","1920","2.0","8","64","32","Europe/Paris"]},"data_processing_options":["LDU"],"data_processing_options_country":1,"data_processing_options_state":1000,"original_event_data":{"event_name":"Lead","event_time":0},"attribution_data":{"ad_id":"1","attribution_share":0.5,"attribution_setting":{"inactivity_window_hours":24}},"messaging_channel":"whatsapp","customer_segmentation":"new_customer_to_business","advanced_measurement_table":"t"}"#;
        let event: ServerEvent = serde_json::from_str(json).unwrap();
        assert!(event.is_ldu());
        assert_eq!(serde_json::to_string(&event).unwrap(), json);
    }

    #[test]
    fn unknown_event_keys_and_action_sources_are_errors() {
        let unknown = EXAMPLE.replacen(
            "\"event_id\"",
            "\"advertiser_tracking_enabled\":1,\"event_id\"",
            1,
        );
        assert!(serde_json::from_str::<ServerEvent>(&unknown).is_err());
        let bad_source = EXAMPLE.replace("\"website\"", "\"web\"");
        assert!(serde_json::from_str::<ServerEvent>(&bad_source).is_err());
    }

    #[test]
    fn builder_sets_fields() {
        let e = ServerEvent::builder("Purchase", 10, ActionSource::Website)
            .event_id("x")
            .value(10.0, "USD")
            .limited_data_use(1, 1000)
            .build();
        assert_eq!(e.event_id.as_deref(), Some("x"));
        assert_eq!(e.custom_data.unwrap().currency.as_deref(), Some("USD"));
        assert_eq!(e.data_processing_options_state, Some(1000));
    }
}
