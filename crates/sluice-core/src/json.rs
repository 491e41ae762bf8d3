//! A fast JSON writer for [`ServerEvent`]: the same bytes as `serde_json::to_writer`,
//! in about half the time.
//!
//! Serializing events is the largest single cost of the CPU path (normalize, hash,
//! serialize; bench/RESULTS.md). Most of it is serde_json checking every byte of every
//! string for characters to escape, and an event is mostly strings that cannot
//! contain any: nine 64-digit hex hashes, URLs, a user agent, cookie values. This
//! writer emits the keys as constants, the hashes straight from their digests, and
//! other strings after a branch-free check of 16 bytes at a time (escaping through
//! serde_json when a string needs it). The parts that are rare or irregular
//! (`app_data`, `attribution_data`, custom properties, numbers, ids) go through serde
//! as they always did.
//!
//! The Serialize impls stay the reference: tests compare this writer with
//! `serde_json::to_vec` on generated events, including strings that need escaping.

use crate::custom_data::{Content, CustomData};
use crate::event::ServerEvent;
use crate::user_data::{HashedValues, UserData, UserDataValue};
use serde::Serialize;

impl ServerEvent {
    /// Appends the event's Graph JSON to `out`: exactly what
    /// `serde_json::to_writer(out, self)` writes, faster.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut o = Object::begin(out);
        o.str("event_name", &self.event_name);
        o.serde("event_time", &self.event_time);
        o.str("action_source", self.action_source.as_str());
        o.opt_str("event_source_url", &self.event_source_url);
        o.opt_str("event_id", &self.event_id);
        o.opt_serde("opt_out", &self.opt_out);
        o.opt_str("referrer_url", &self.referrer_url);
        o.key("user_data");
        write_user_data(&self.user_data, o.out);
        if let Some(cd) = &self.custom_data {
            o.key("custom_data");
            write_custom_data(cd, o.out);
        }
        o.opt_serde("app_data", &self.app_data);
        o.opt_serde("data_processing_options", &self.data_processing_options);
        o.opt_serde(
            "data_processing_options_country",
            &self.data_processing_options_country,
        );
        o.opt_serde(
            "data_processing_options_state",
            &self.data_processing_options_state,
        );
        o.opt_serde("original_event_data", &self.original_event_data);
        o.opt_serde("attribution_data", &self.attribution_data);
        o.opt_str("messaging_channel", &self.messaging_channel);
        o.opt_str("customer_segmentation", &self.customer_segmentation);
        o.opt_str(
            "advanced_measurement_table",
            &self.advanced_measurement_table,
        );
        o.end();
    }
}

fn write_user_data(ud: &UserData, out: &mut Vec<u8>) {
    let mut o = Object::begin(out);
    for (key, values) in [
        ("em", &ud.em),
        ("ph", &ud.ph),
        ("fn", &ud.first_name),
        ("ln", &ud.ln),
        ("ge", &ud.ge),
        ("db", &ud.db),
        ("ct", &ud.ct),
        ("st", &ud.st),
        ("zp", &ud.zp),
        ("country", &ud.country),
        ("external_id", &ud.external_id),
        ("f5first", &ud.f5first),
        ("f5last", &ud.f5last),
        ("fi", &ud.fi),
        ("dobd", &ud.dobd),
        ("dobm", &ud.dobm),
        ("doby", &ud.doby),
        ("app_user_id", &ud.app_user_id),
    ] {
        if !values.is_empty() {
            o.key(key);
            write_hashed_values(values, o.out);
        }
    }
    o.opt_str("client_ip_address", &ud.client_ip_address);
    o.opt_str("client_user_agent", &ud.client_user_agent);
    o.opt_str("fbc", &ud.fbc);
    o.opt_str("fbp", &ud.fbp);
    o.opt_str("subscription_id", &ud.subscription_id);
    o.opt_serde("fb_login_id", &ud.fb_login_id);
    o.opt_serde("lead_id", &ud.lead_id);
    o.opt_str("anon_id", &ud.anon_id);
    o.opt_str("madid", &ud.madid);
    o.opt_serde("page_id", &ud.page_id);
    o.opt_serde("page_scoped_user_id", &ud.page_scoped_user_id);
    o.opt_str("ctwa_clid", &ud.ctwa_clid);
    o.opt_serde("ig_account_id", &ud.ig_account_id);
    o.opt_serde("ig_sid", &ud.ig_sid);
    o.opt_serde(
        "whatsapp_business_account_id",
        &ud.whatsapp_business_account_id,
    );
    o.end();
}

fn write_hashed_values(values: &HashedValues, out: &mut Vec<u8>) {
    if values.single && values.values.len() == 1 {
        write_user_data_value(&values.values[0], out);
        return;
    }
    out.push(b'[');
    for (i, v) in values.values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_user_data_value(v, out);
    }
    out.push(b']');
}

fn write_user_data_value(value: &UserDataValue, out: &mut Vec<u8>) {
    match value {
        UserDataValue::Sha256(d) => write_hex::<32, 66>(d, out),
        UserDataValue::Md5(d) => write_hex::<16, 34>(d, out),
        UserDataValue::Verbatim(s) => write_str(s, out),
        UserDataValue::Raw(p) => write_str(p.expose(), out),
    }
}

/// Lowercase hex in quotes; hex digits never need escaping. `Q` is the quoted
/// length, `2 * N + 2` (a constant size lets the copy be inlined).
fn write_hex<const N: usize, const Q: usize>(bytes: &[u8; N], out: &mut Vec<u8>) {
    let mut buf = [b'"'; Q];
    let encoded = buf
        .get_mut(1..=2 * N)
        .is_some_and(|hex| const_hex::encode_to_slice(bytes, hex).is_ok());
    if encoded && Q == 2 * N + 2 {
        out.extend_from_slice(&buf);
    } else {
        serde_into(&const_hex::encode(bytes), out);
    }
}

fn write_custom_data(cd: &CustomData, out: &mut Vec<u8>) {
    let mut o = Object::begin(out);
    o.opt_serde("value", &cd.value);
    o.opt_str("currency", &cd.currency);
    o.opt_serde("net_revenue", &cd.net_revenue);
    o.opt_str("content_name", &cd.content_name);
    o.opt_str("content_category", &cd.content_category);
    o.opt_serde("content_ids", &cd.content_ids);
    if let Some(contents) = &cd.contents {
        o.key("contents");
        o.out.push(b'[');
        for (i, c) in contents.iter().enumerate() {
            if i > 0 {
                o.out.push(b',');
            }
            write_content(c, o.out);
        }
        o.out.push(b']');
    }
    o.opt_str("content_type", &cd.content_type);
    o.opt_str("order_id", &cd.order_id);
    o.opt_serde("predicted_ltv", &cd.predicted_ltv);
    o.opt_serde("num_items", &cd.num_items);
    o.opt_str("search_string", &cd.search_string);
    o.opt_serde("status", &cd.status);
    o.opt_str("delivery_category", &cd.delivery_category);
    o.opt_str("item_number", &cd.item_number);
    o.opt_str("customer_segmentation", &cd.customer_segmentation);
    o.opt_str("event_source", &cd.event_source);
    o.opt_str("lead_event_source", &cd.lead_event_source);
    for (key, value) in &cd.custom_properties {
        o.comma();
        write_str(key, o.out);
        o.out.push(b':');
        serde_into(value, o.out);
    }
    o.end();
}

fn write_content(c: &Content, out: &mut Vec<u8>) {
    let mut o = Object::begin(out);
    o.opt_serde("id", &c.id);
    o.opt_serde("quantity", &c.quantity);
    o.opt_serde("item_price", &c.item_price);
    o.opt_str("delivery_category", &c.delivery_category);
    o.opt_str("title", &c.title);
    o.opt_str("description", &c.description);
    o.opt_str("brand", &c.brand);
    o.opt_str("category", &c.category);
    o.end();
}

/// Writes one JSON object's members; keys are constants that need no escaping.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Object<'a> {
    fn begin(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, empty: true }
    }

    fn comma(&mut self) {
        if !std::mem::replace(&mut self.empty, false) {
            self.out.push(b',');
        }
    }

    fn key(&mut self, key: &str) {
        self.comma();
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        write_str(value, self.out);
    }

    fn opt_str(&mut self, key: &str, value: &Option<String>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }

    fn serde<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        self.key(key);
        serde_into(value, self.out);
    }

    fn opt_serde<T: Serialize>(&mut self, key: &str, value: &Option<T>) {
        if let Some(v) = value {
            self.serde(key, v);
        }
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

/// serde_json for the parts this writer does not special-case. Writing into a
/// `Vec` cannot fail, and every type here serializes without error (string keys,
/// finite numbers), as the tests check.
fn serde_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    let _ = serde_json::to_writer(out, value);
}

/// A JSON string: copied as is when nothing in it needs escaping, else serde_json's
/// escaping (so both always agree).
fn write_str(s: &str, out: &mut Vec<u8>) {
    if needs_escape(s.as_bytes()) {
        serde_into(s, out);
    } else {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// True when a byte is a control character, `"` or `\` (all that JSON escapes).
/// Checks 16 bytes per step without branching inside the step, which the compiler
/// turns into vector compares.
fn needs_escape(bytes: &[u8]) -> bool {
    let needs = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let mut chunks = bytes.chunks_exact(16);
    for chunk in &mut chunks {
        if chunk.iter().fold(false, |acc, &b| acc | needs(b)) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| needs(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ActionSource;
    use crate::user_data::HashedKey;
    use crate::{AppData, IdValue, Pii};
    use proptest::prelude::*;

    fn same_as_serde(ev: &ServerEvent) {
        let mut fast = Vec::new();
        ev.write_json(&mut fast);
        let reference = serde_json::to_vec(ev).expect("serializes");
        assert_eq!(
            String::from_utf8_lossy(&fast),
            String::from_utf8_lossy(&reference)
        );
    }

    #[test]
    fn needs_escape_finds_every_escaped_byte_at_every_position() {
        for len in 0..40 {
            let clean = "a".repeat(len);
            assert!(!needs_escape(clean.as_bytes()));
            for pos in 0..len {
                for bad in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                    let mut b = clean.clone().into_bytes();
                    b[pos] = bad;
                    assert!(needs_escape(&b), "{len} {pos} {bad}");
                }
            }
        }
        assert!(!needs_escape("é ü \u{7f} / ' <>".as_bytes()));
    }

    #[test]
    fn a_full_event_matches_serde() {
        let json = r#"{"event_name":"Purchase","event_time":1795860000,"action_source":"website",
            "event_source_url":"https://shop.example.com/a?b=\"c\"","event_id":"e\\1","opt_out":false,
            "referrer_url":"https://r.example","user_data":{
              "em":["62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f","0123456789abcdef0123456789abcdef"],
              "ph":"62A14E44F765419D10FEA99367361A727C12365E2520F32218D505ED9AA0F62F",
              "fn":"62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f.AQQCAQMC",
              "client_ip_address":"2001:db8::1","client_user_agent":"Mozilla/5.0 \"x\"\n",
              "fbc":"fb.1.1.abc","fbp":"fb.1.2.3","subscription_id":"s","fb_login_id":12,"lead_id":"34",
              "anon_id":"a","madid":"m","page_id":5,"page_scoped_user_id":"6","ctwa_clid":"c",
              "ig_account_id":7,"ig_sid":"8","whatsapp_business_account_id":9},
            "custom_data":{"value":49.9,"currency":"EUR","net_revenue":40,"content_name":"n",
              "content_category":"c","content_ids":["a",1],"contents":[{"id":"sku","quantity":2,
              "item_price":1.5,"delivery_category":"home_delivery","title":"t","description":"d\u0001",
              "brand":"b","category":"c"},{}],"content_type":"product","order_id":"o","predicted_ltv":1e3,
              "num_items":3,"search_string":"s","status":true,"delivery_category":"curbside",
              "item_number":"i","customer_segmentation":"x","event_source":"crm",
              "lead_event_source":"l","color":"red","nested":{"a":[1,"\u2028"]},"q\"k":null},
            "app_data":{"advertiser_tracking_enabled":1,"application_tracking_enabled":1,
              "extinfo":["i2","com.example","1","1.0","16","iPhone","en_US","UTC","AT&T","375","667","2","4","128","64","Europe/Berlin"]},
            "data_processing_options":["LDU"],"data_processing_options_country":1,
            "data_processing_options_state":1000,
            "original_event_data":{"event_name":"Purchase","event_time":1795850000},
            "attribution_data":{"scope":"click","ad_id":"1","attribution_share":0.3},
            "messaging_channel":"whatsapp","customer_segmentation":"s","advanced_measurement_table":"t"}"#;
        let ev: ServerEvent = serde_json::from_str(json).expect("parses");
        same_as_serde(&ev);
        let mut raw = ev.clone();
        raw.user_data
            .hashed_mut(HashedKey::Ln)
            .push(UserDataValue::Raw(Pii::new("O'Brien \"\\")));
        same_as_serde(&raw);
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9:/._-]{0,40}",
            any::<String>(),
            "[\"\\\\\u{0}-\u{1f}a-z]{0,20}",
        ]
    }

    proptest! {
        #[test]
        fn generated_events_match_serde(
            name in text(),
            time in any::<i64>(),
            url in proptest::option::of(text()),
            ua in proptest::option::of(text()),
            digests in proptest::collection::vec(any::<[u8; 32]>(), 0..3),
            single in any::<bool>(),
            raw in proptest::option::of(text()),
            custom_key in text(),
            custom_value in text(),
            order in proptest::option::of(text()),
            value in proptest::option::of(-1e9f64..1e9),
            ids in proptest::collection::vec(any::<i64>(), 0..3),
        ) {
            let mut ev = ServerEvent::builder(name, time, ActionSource::PhysicalStore).build();
            ev.event_source_url = url;
            ev.user_data.client_user_agent = ua;
            let em = ev.user_data.hashed_mut(HashedKey::Em);
            em.values = digests.iter().map(|d| UserDataValue::Sha256(*d)).collect();
            em.single = single;
            if let Some(r) = raw {
                ev.user_data.hashed_mut(HashedKey::Ct).push(UserDataValue::Raw(Pii::new(r)));
            }
            ev.user_data.page_id = ids.first().map(|&i| IdValue::Int(i));
            let mut cd = CustomData {
                value: value.and_then(serde_json::Number::from_f64),
                order_id: order,
                content_ids: Some(ids.iter().map(|&i| IdValue::Int(i)).collect()),
                contents: Some(vec![Content::new(custom_value.clone(), 2).item_price(1.25)]),
                ..CustomData::default()
            };
            cd.custom_properties.insert(custom_key, serde_json::Value::String(custom_value));
            ev.custom_data = Some(cd);
            ev.app_data = (time % 2 == 0).then(AppData::default);
            same_as_serde(&ev);
        }
    }
}
