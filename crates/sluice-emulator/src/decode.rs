//! The request encodings real clients send (capi-reference.md §1.1), reduced to
//! one set of named parameters.
//!
//! * JSON body `{"data": [{…}], "access_token": …}` (Node SDK, Meta's server tag);
//! * form-encoded, every list JSON-encoded, `data` a JSON array of JSON-encoded
//!   *strings* (Python SDK, sync path);
//! * form-encoded with `data` a JSON array of objects (Python SDK, async path);
//! * multipart form fields (Meta's curl example, `-F data='[…]'`);
//! * and parameters in the query string (the Python SDK puts `access_token` and
//!   `appsecret_proof` there), which the body overrides; the token may also come
//!   as `Authorization: Bearer …` (or `OAuth …`), as Graph allows.
//!
//! Events are kept as the raw JSON text they arrived as, so the inspection API can
//! show them byte for byte.

use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// How the body was encoded (for logs and stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Form,
    Multipart,
    /// No body: everything came in the query string.
    QueryOnly,
}

/// One parameter value: text (query, form, multipart) or a JSON value (JSON body).
#[derive(Debug, Clone)]
pub enum Param {
    Text(String),
    Json(Box<RawValue>),
}

/// Why a body could not be read as parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The JSON body does not parse (position only, never content).
    MalformedJson { line: usize, column: usize },
    /// The JSON body parses but is not an object.
    NotAnObject,
    /// The multipart body is broken.
    Multipart(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::MalformedJson { line, column } => write!(
                f,
                "The request body is not valid JSON (line {line}, column {column})"
            ),
            DecodeError::NotAnObject => f.write_str("The JSON request body must be an object"),
            DecodeError::Multipart(reason) => write!(f, "Malformed multipart body: {reason}"),
        }
    }
}

/// Why `data` is not a list of events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataError {
    Missing,
    NotAnArray,
}

/// Why a text parameter could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotText;

/// Why one element of `data` is not an event object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementError {
    /// A JSON-encoded string element whose content does not parse.
    BadEncodedJson,
}

/// The parameters of one request.
#[derive(Debug, Clone)]
pub struct Params {
    pub encoding: Encoding,
    map: BTreeMap<String, Param>,
}

/// What the `Content-Type` header says the body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Form,
    Multipart,
    /// Missing or unknown: look at the first byte.
    Sniff,
}

pub fn body_kind(content_type: Option<&str>) -> BodyKind {
    let Some(ct) = content_type else {
        return BodyKind::Sniff;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => BodyKind::Json,
        "application/x-www-form-urlencoded" => BodyKind::Form,
        "multipart/form-data" => BodyKind::Multipart,
        e if e.ends_with("+json") => BodyKind::Json,
        _ => BodyKind::Sniff,
    }
}

impl Params {
    /// Parameters from the query string alone.
    pub fn from_query(query: Option<&str>) -> Self {
        let mut params = Params {
            encoding: Encoding::QueryOnly,
            map: BTreeMap::new(),
        };
        if let Some(q) = query {
            params.add_form_pairs(q.as_bytes());
        }
        params
    }

    fn add_form_pairs(&mut self, bytes: &[u8]) {
        for (k, v) in form_urlencoded::parse(bytes) {
            self.map.insert(k.into_owned(), Param::Text(v.into_owned()));
        }
    }

    /// Adds multipart text fields (already read by the caller).
    pub fn add_fields(&mut self, fields: Vec<(String, String)>) {
        self.encoding = Encoding::Multipart;
        for (k, v) in fields {
            self.map.insert(k, Param::Text(v));
        }
    }

    /// Adds a JSON or form body to the query parameters.
    pub fn add_body(&mut self, kind: BodyKind, body: &[u8]) -> Result<(), DecodeError> {
        let Some(first) = body.iter().find(|b| !b.is_ascii_whitespace()).copied() else {
            // An empty body: everything is in the query string.
            return Ok(());
        };
        let kind = match kind {
            BodyKind::Sniff if first == b'{' => BodyKind::Json,
            BodyKind::Sniff => BodyKind::Form,
            other => other,
        };
        match kind {
            BodyKind::Json => {
                self.encoding = Encoding::Json;
                let object: BTreeMap<String, Box<RawValue>> = match serde_json::from_slice(body) {
                    Ok(o) => o,
                    Err(e) if e.is_data() => return Err(DecodeError::NotAnObject),
                    Err(e) => {
                        return Err(DecodeError::MalformedJson {
                            line: e.line(),
                            column: e.column(),
                        });
                    }
                };
                for (k, v) in object {
                    self.map.insert(k, Param::Json(v));
                }
            }
            BodyKind::Form => {
                self.encoding = Encoding::Form;
                self.add_form_pairs(body);
            }
            BodyKind::Multipart | BodyKind::Sniff => {}
        }
        Ok(())
    }

    /// Sets `name` unless the query or the body already did (used for the token
    /// of an `Authorization` header, which Graph also accepts).
    pub fn set_if_absent(&mut self, name: &str, value: String) {
        self.map
            .entry(name.to_owned())
            .or_insert(Param::Text(value));
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// A text parameter: form text as is, a JSON string unquoted, a JSON number as
    /// its digits. `None` when absent, `Some(Err)` for objects, arrays and the like.
    pub fn text(&self, name: &str) -> Option<Result<String, NotText>> {
        Some(match self.map.get(name)? {
            Param::Text(t) => Ok(t.clone()),
            Param::Json(raw) => match serde_json::from_str::<serde_json::Value>(raw.get()) {
                Ok(serde_json::Value::String(s)) => Ok(s),
                Ok(serde_json::Value::Number(n)) => Ok(n.to_string()),
                Ok(serde_json::Value::Null) => Ok(String::new()),
                _ => Err(NotText),
            },
        })
    }

    /// The elements of `data`, each still raw. Text parameters (form, multipart)
    /// hold a JSON-encoded list; a JSON body may hold the list itself or, like a
    /// form, a JSON-encoded string of it.
    pub fn data(&self) -> Result<Vec<Box<RawValue>>, DataError> {
        let text = match self.map.get("data").ok_or(DataError::Missing)? {
            Param::Text(t) => t.clone(),
            Param::Json(raw) => {
                if raw.get().starts_with('"') {
                    serde_json::from_str::<String>(raw.get()).map_err(|_| DataError::NotAnArray)?
                } else {
                    raw.get().to_owned()
                }
            }
        };
        serde_json::from_str::<Vec<Box<RawValue>>>(&text).map_err(|_| DataError::NotAnArray)
    }
}

/// One element of `data` as the event's own JSON text: objects as they are,
/// JSON-encoded strings (the Python SDK's form) decoded once. Whether it is an
/// object is for the checks to say.
pub fn element_json(element: &RawValue) -> Result<Box<RawValue>, ElementError> {
    let text = element.get();
    if text.starts_with('"') {
        let inner: String = serde_json::from_str(text).map_err(|_| ElementError::BadEncodedJson)?;
        let raw = RawValue::from_string(inner.trim().to_owned())
            .map_err(|_| ElementError::BadEncodedJson)?;
        Ok(raw)
    } else {
        Ok(element.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"event_name":"Lead","event_time":1}"#;

    fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes()
    }

    #[test]
    fn json_body_with_query_token() {
        let mut p = Params::from_query(Some("access_token=q&x=1"));
        let body = format!(r#"{{"data":[{EVENT}],"test_event_code":"T1"}}"#);
        p.add_body(BodyKind::Json, body.as_bytes()).unwrap();
        assert_eq!(p.encoding, Encoding::Json);
        assert_eq!(p.text("access_token"), Some(Ok("q".to_owned())));
        assert_eq!(p.text("test_event_code"), Some(Ok("T1".to_owned())));
        let data = p.data().unwrap();
        assert_eq!(data[0].get(), EVENT);
    }

    #[test]
    fn form_with_string_elements_like_the_python_sdk() {
        let data = serde_json::to_string(&vec![EVENT]).unwrap();
        let mut p = Params::from_query(None);
        p.add_body(
            BodyKind::Form,
            &form(&[("data", &data), ("access_token", "b")]),
        )
        .unwrap();
        let elements = p.data().unwrap();
        assert!(elements[0].get().starts_with('"'));
        assert_eq!(element_json(&elements[0]).unwrap().get(), EVENT);
        assert_eq!(p.text("access_token"), Some(Ok("b".to_owned())));
    }

    #[test]
    fn form_with_object_elements_and_sniffing() {
        let data = format!("[{EVENT}]");
        let mut p = Params::from_query(None);
        p.add_body(BodyKind::Sniff, &form(&[("data", &data)]))
            .unwrap();
        assert_eq!(p.encoding, Encoding::Form);
        assert_eq!(element_json(&p.data().unwrap()[0]).unwrap().get(), EVENT);
    }

    #[test]
    fn broken_bodies() {
        let mut p = Params::from_query(None);
        assert!(matches!(
            p.add_body(BodyKind::Json, b"{\"data\": ["),
            Err(DecodeError::MalformedJson { .. })
        ));
        assert_eq!(
            p.add_body(BodyKind::Json, b"[1]"),
            Err(DecodeError::NotAnObject)
        );
        let mut p = Params::from_query(None);
        p.add_body(
            BodyKind::Json,
            br#"{"data": {"a": 1}, "access_token": {"x": 1}}"#,
        )
        .unwrap();
        assert_eq!(p.data().err(), Some(DataError::NotAnArray));
        assert_eq!(p.text("access_token"), Some(Err(NotText)));
        let mut p = Params::from_query(None);
        p.add_body(BodyKind::Form, &form(&[("data", "[\"{nope\"]")]))
            .unwrap();
        assert_eq!(
            element_json(&p.data().unwrap()[0]).err(),
            Some(ElementError::BadEncodedJson)
        );
        assert_eq!(
            Params::from_query(None).data().err(),
            Some(DataError::Missing)
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            body_kind(Some("application/json; charset=utf-8")),
            BodyKind::Json
        );
        assert_eq!(
            body_kind(Some("Application/X-WWW-Form-Urlencoded")),
            BodyKind::Form
        );
        assert_eq!(
            body_kind(Some("multipart/form-data; boundary=x")),
            BodyKind::Multipart
        );
        assert_eq!(body_kind(Some("text/plain")), BodyKind::Sniff);
        assert_eq!(body_kind(None), BodyKind::Sniff);
    }
}
