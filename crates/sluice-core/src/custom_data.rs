//! `custom_data`: what the event is about (value, currency, products, …).
//!
//! Known keys are typed; anything else is a custom property and is kept, in
//! order, in `custom_properties` (Meta accepts arbitrary keys here, unlike at the
//! event level). Numbers are `serde_json::Number` so `50` stays `50` and `49.9`
//! stays `49.9` through a round trip.

use crate::wire::IdValue;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CustomData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_revenue: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_ids: Option<Vec<IdValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<Vec<Content>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_ltv: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_items: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_string: Option<String>,
    /// A string or a boolean (`CompleteRegistration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_segmentation: Option<String>,
    /// CRM integrations (`"crm"`), capi-reference.md §11.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_event_source: Option<String>,
    /// Any other key: a custom property, passed through as sent.
    #[serde(flatten)]
    pub custom_properties: Map<String, Value>,
}

/// One item of `custom_data.contents`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<IdValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_price: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

impl Content {
    pub fn new(id: impl Into<IdValue>, quantity: i64) -> Self {
        Content {
            id: Some(id.into()),
            quantity: Some(quantity.into()),
            ..Content::default()
        }
    }

    pub fn item_price(mut self, price: f64) -> Self {
        self.item_price = Number::from_f64(price);
        self
    }
}

impl CustomData {
    /// `value` as a float, when present and finite.
    pub fn value_f64(&self) -> Option<f64> {
        self.value.as_ref().and_then(Number::as_f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_and_custom_keys() {
        let json = r#"{"value":50,"currency":"EUR","contents":[{"id":"sku-1","quantity":1,"item_price":49.9}],"order_id":"7731","color":"red","nested":{"a":[1,2]}}"#;
        let cd: CustomData = serde_json::from_str(json).unwrap();
        assert_eq!(cd.custom_properties.len(), 2);
        assert_eq!(serde_json::to_string(&cd).unwrap(), json);
    }

    #[test]
    fn content_rejects_unknown_keys() {
        assert!(serde_json::from_str::<Content>(r#"{"id":"a","qty":1}"#).is_err());
    }
}
