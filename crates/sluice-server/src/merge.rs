//! Identity merge: one event from the browser copy and the server copy.
//!
//! With `[dedup] merge_window_secs` on, a browser event waits in the queue
//! and a server-side copy of it (same pixel, `event_name` and `event_id`)
//! arriving within the window is folded into it (`Store::merge_held`). Both
//! payloads are already hashed and consented Graph JSON; this module only
//! combines them. The rule, per field of the merged event:
//!
//! | field | value |
//! | --- | --- |
//! | `user_data` hashed keys (`em`, `ph`, `fn`, `ln`, `external_id`, …) | the union of both copies' values (browser's first, no repeats); one value stays a string |
//! | `user_data.fbp`, `fbc`, `client_ip_address`, `client_user_agent` | the browser copy's; the server copy's only where the browser had none |
//! | other `user_data` ids (`subscription_id`, `lead_id`, `madid`, …) | the server copy's where it has one |
//! | `custom_data` | both, key by key; the server copy wins on conflicts (the order system knows the value, currency and contents) |
//! | `event_time`, `event_source_url`, `referrer_url`, `action_source` | the browser copy's (when and where the person acted) |
//! | any other top-level field | the browser copy's; the server copy's where the browser had none |
//! | `opt_out` | `true` if either copy says so |
//! | `data_processing_options` (+ country, state) | the copy that asks for Limited Data Use; the browser's if both do |
//!
//! Consent: each copy passed the consent stage on its own before it was
//! stored, so everything in either copy may be sent; the merged event keeps
//! the stricter of the two processing restrictions.
//!
//! The result must parse as a [`ServerEvent`]; otherwise the merge is refused
//! and the server copy is treated as a duplicate, as without merging.

use serde_json::{Map, Value};
use sluice_core::ServerEvent;
use sluice_core::user_data::HashedKey;

/// `user_data` keys that describe the browser: kept from the browser copy.
const BROWSER_IDS: [&str; 4] = ["fbp", "fbc", "client_ip_address", "client_user_agent"];

/// Top-level keys whose value is the browser copy's whenever it has one.
const BROWSER_FIRST: [&str; 4] = [
    "event_time",
    "event_source_url",
    "referrer_url",
    "action_source",
];

const LDU_KEYS: [&str; 3] = [
    "data_processing_options",
    "data_processing_options_country",
    "data_processing_options_state",
];

/// A merged event: its Graph JSON and its match quality (0–10).
#[derive(Debug, Clone)]
pub struct Merged {
    pub payload: Vec<u8>,
    pub match_quality: f32,
}

/// Merges the browser copy's payload with the server copy's (see the module
/// header). `None` when either is not an event object or the result is not a
/// valid event.
pub fn merge(browser: &[u8], server: &[u8]) -> Option<Merged> {
    let Value::Object(mut out) = serde_json::from_slice::<Value>(browser).ok()? else {
        return None;
    };
    let Value::Object(server) = serde_json::from_slice::<Value>(server).ok()? else {
        return None;
    };
    // Only the server copy can still ask for LDU; then its three fields go as a set.
    let server_ldu: Option<Vec<(&str, Option<Value>)>> =
        (!asks_for_ldu(&out) && asks_for_ldu(&server)).then(|| {
            LDU_KEYS
                .iter()
                .map(|k| (*k, server.get(*k).cloned()))
                .collect()
        });
    for (key, value) in server {
        match key.as_str() {
            "event_name" | "event_id" => {}
            "user_data" => {
                let target = object_entry(&mut out, "user_data");
                if let (Some(target), Value::Object(from)) = (target, value) {
                    merge_user_data(target, from);
                }
            }
            "custom_data" => {
                let target = object_entry(&mut out, "custom_data");
                if let (Some(target), Value::Object(from)) = (target, value) {
                    target.extend(from);
                }
            }
            "opt_out" => {
                if value == Value::Bool(true) {
                    out.insert(key, value);
                }
            }
            k if LDU_KEYS.contains(&k) => {}
            k if BROWSER_FIRST.contains(&k) => {
                out.entry(key).or_insert(value);
            }
            _ => {
                out.entry(key).or_insert(value);
            }
        }
    }
    for (key, value) in server_ldu.into_iter().flatten() {
        match value {
            Some(v) => out.insert(key.to_owned(), v),
            None => out.remove(key),
        };
    }
    let event: ServerEvent = serde_json::from_value(Value::Object(out)).ok()?;
    if event.user_data.has_raw_values() {
        return None;
    }
    let payload = serde_json::to_vec(&event).ok()?;
    Some(Merged {
        payload,
        match_quality: sluice_core::match_quality::estimate(&event.user_data).score,
    })
}

fn asks_for_ldu(event: &Map<String, Value>) -> bool {
    event
        .get("data_processing_options")
        .and_then(Value::as_array)
        .is_some_and(|options| !options.is_empty())
}

/// `map[key]` as an object, created empty when absent; `None` when it holds
/// something else.
fn object_entry<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    map.entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
}

fn merge_user_data(target: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        if HashedKey::parse(&key).is_some() {
            let merged = union(target.remove(&key), value);
            if let Some(merged) = merged {
                target.insert(key, merged);
            }
        } else if BROWSER_IDS.contains(&key.as_str()) {
            target.entry(key).or_insert(value);
        } else {
            target.insert(key, value);
        }
    }
}

/// The values of a hashed key from both copies, each once, the browser's
/// first; a single value keeps the string form.
fn union(browser: Option<Value>, server: Value) -> Option<Value> {
    let mut values: Vec<Value> = Vec::new();
    let mut single = true;
    for side in browser.into_iter().chain(std::iter::once(server)) {
        let items = match side {
            Value::Array(items) => {
                single = false;
                items
            }
            Value::Null => Vec::new(),
            other => vec![other],
        };
        for item in items {
            if !values.contains(&item) {
                values.push(item);
            }
        }
    }
    match values.len() {
        0 => None,
        1 if single => values.pop(),
        _ => Some(Value::Array(values)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EM: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const EM2: &str = "b1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    const PH: &str = "c1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

    fn browser() -> Value {
        json!({
            "event_name": "Purchase",
            "event_time": 1_795_860_000,
            "action_source": "website",
            "event_source_url": "https://shop.example/done?fbclid=IwAR0abc",
            "event_id": "order-7731",
            "user_data": {
                "client_ip_address": "2001:db8::9",
                "client_user_agent": "Mozilla/5.0",
                "fbp": "fb.1.1795859000123.42",
                "fbc": "fb.1.1795858000456.IwAR0abc",
                "em": EM
            },
            "custom_data": {"value": 49.9, "currency": "EUR", "order_id": "7731", "coupon": "X"}
        })
    }

    fn server() -> Value {
        json!({
            "event_name": "Purchase",
            "event_time": 1_795_860_030,
            "action_source": "system_generated",
            "event_id": "order-7731",
            "user_data": {
                "em": [EM, EM2],
                "ph": PH,
                "external_id": "d1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90",
                "client_ip_address": "198.51.100.1",
                "subscription_id": "sub-1"
            },
            "custom_data": {"value": 52.4, "currency": "EUR", "order_id": "7731", "contents": [{"id": "sku-1", "quantity": 2}]}
        })
    }

    fn run(b: &Value, s: &Value) -> (Value, f32) {
        let merged = merge(
            &serde_json::to_vec(b).unwrap(),
            &serde_json::to_vec(s).unwrap(),
        )
        .expect("merged");
        (
            serde_json::from_slice(&merged.payload).unwrap(),
            merged.match_quality,
        )
    }

    #[test]
    fn union_of_identifiers_browser_ids_kept_server_custom_data_wins() {
        let (m, quality) = run(&browser(), &server());
        let ud = &m["user_data"];
        assert_eq!(
            ud["em"],
            json!([EM, EM2]),
            "union, browser's first, no repeat"
        );
        assert_eq!(ud["ph"], json!(PH), "a single value stays a string");
        assert!(ud["external_id"].is_string());
        assert_eq!(
            ud["client_ip_address"],
            json!("2001:db8::9"),
            "the browser's IP"
        );
        assert_eq!(ud["fbp"], json!("fb.1.1795859000123.42"));
        assert_eq!(ud["fbc"], json!("fb.1.1795858000456.IwAR0abc"));
        assert_eq!(ud["subscription_id"], json!("sub-1"));
        assert_eq!(
            m["custom_data"]["value"],
            json!(52.4),
            "server wins on conflicts"
        );
        assert_eq!(
            m["custom_data"]["coupon"],
            json!("X"),
            "browser-only keys stay"
        );
        assert_eq!(m["custom_data"]["contents"][0]["quantity"], json!(2));
        assert_eq!(m["event_time"], json!(1_795_860_000));
        assert_eq!(m["action_source"], json!("website"));
        assert_eq!(
            m["event_source_url"],
            json!("https://shop.example/done?fbclid=IwAR0abc")
        );
        assert_eq!(m["event_id"], json!("order-7731"));

        let alone = |v: &Value| {
            let e: ServerEvent = serde_json::from_value(v.clone()).unwrap();
            sluice_core::match_quality::estimate(&e.user_data).score
        };
        assert!(quality > alone(&browser()) && quality > alone(&server()));
    }

    #[test]
    fn browser_ids_come_from_the_server_copy_only_when_the_browser_had_none() {
        let mut b = browser();
        b["user_data"]
            .as_object_mut()
            .unwrap()
            .remove("client_ip_address");
        let (m, _) = run(&b, &server());
        assert_eq!(m["user_data"]["client_ip_address"], json!("198.51.100.1"));
    }

    #[test]
    fn the_stricter_processing_restriction_wins() {
        let mut s = server();
        s["data_processing_options"] = json!(["LDU"]);
        s["data_processing_options_country"] = json!(1);
        s["data_processing_options_state"] = json!(1000);
        s["opt_out"] = json!(true);
        let (m, _) = run(&browser(), &s);
        assert_eq!(m["data_processing_options"], json!(["LDU"]));
        assert_eq!(m["data_processing_options_state"], json!(1000));
        assert_eq!(m["opt_out"], json!(true));

        let mut b = browser();
        b["data_processing_options"] = json!(["LDU"]);
        b["data_processing_options_country"] = json!(0);
        b["data_processing_options_state"] = json!(0);
        let mut s = server();
        s["data_processing_options"] = json!([]);
        s["opt_out"] = json!(false);
        let (m, _) = run(&b, &s);
        assert_eq!(m["data_processing_options"], json!(["LDU"]));
        assert_eq!(m["data_processing_options_country"], json!(0));
        assert!(m.get("opt_out").is_none());
    }

    #[test]
    fn refuses_what_is_not_an_event() {
        let b = serde_json::to_vec(&browser()).unwrap();
        assert!(merge(b"not json", &b).is_none());
        assert!(merge(&b, b"[1,2]").is_none());
        // A server copy whose fields do not fit the event is refused whole.
        let mut s = server();
        s["custom_data"] = json!({"value": "lots"});
        assert!(merge(&b, &serde_json::to_vec(&s).unwrap()).is_none());
    }
}
