//! The checks Graph makes before it accepts a request, in Graph's order:
//! credentials (token present, token accepted, `appsecret_proof`), the dataset,
//! the envelope (`data` present, an array, at most 1000 events), then every
//! event through sluice-core's validation. The first failure answers for the
//! whole request: one invalid event rejects the batch, as Meta does.

use hmac::{Hmac, Mac};
use serde_json::value::RawValue;
use sha2::Sha256;
use sluice_core::validate::check_event_value;
use sluice_core::{MAX_EVENTS_PER_REQUEST, Problem, ValidationContext};

use crate::answers::{self, Answer};
use crate::config::EmulatorConfig;
use crate::decode::{DataError, Params, element_json};

/// A request that passed every check.
#[derive(Debug)]
pub struct Accepted {
    pub events: Vec<AcceptedEvent>,
    pub test_event_code: Option<String>,
    pub partner_agent: Option<String>,
}

/// One event of an accepted request: its JSON as received and its dedup key.
#[derive(Debug)]
pub struct AcceptedEvent {
    pub raw: Box<RawValue>,
    pub event_name: String,
    pub event_id: Option<String>,
}

/// The access token of the request, when it has a usable one.
pub fn token(params: &Params) -> Option<String> {
    match params.text("access_token") {
        Some(Ok(t)) if !t.is_empty() => Some(t),
        _ => None,
    }
}

/// Token present and accepted, `appsecret_proof` right, pixel known.
pub(crate) fn authenticate(
    params: &Params,
    config: &EmulatorConfig,
    pixel: &str,
) -> Result<(), Answer> {
    let token = match params.text("access_token") {
        None => return Err(answers::missing_token()),
        Some(Ok(t)) if t.is_empty() => return Err(answers::missing_token()),
        Some(Ok(t)) => t,
        Some(Err(_)) => return Err(answers::invalid_token()),
    };
    if config
        .tokens
        .as_ref()
        .is_some_and(|list| !list.contains(&token))
    {
        return Err(answers::invalid_token());
    }
    if let Some(secret) = config.app_secret.as_deref() {
        match params.text("appsecret_proof") {
            None if config.require_appsecret_proof => {
                return Err(answers::missing_appsecret_proof());
            }
            None => {}
            Some(Ok(proof)) if proof_matches(secret, &token, &proof) => {}
            Some(_) => return Err(answers::invalid_appsecret_proof()),
        }
    }
    if config
        .pixels
        .as_ref()
        .is_some_and(|list| !list.iter().any(|p| p == pixel))
    {
        return Err(answers::unknown_pixel(pixel));
    }
    Ok(())
}

/// `proof` is the hex HMAC-SHA256 of the token keyed by the app secret
/// (compared in constant time).
fn proof_matches(secret: &str, token: &str, proof: &str) -> bool {
    let Ok(expected) = const_hex::decode(proof.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(token.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

/// A top-level text parameter that must be a string when present; empty counts
/// as absent.
fn optional_text(params: &Params, name: &str) -> Result<Option<String>, Answer> {
    match params.text(name) {
        None => Ok(None),
        Some(Ok(t)) if t.is_empty() => Ok(None),
        Some(Ok(t)) => Ok(Some(t)),
        Some(Err(_)) => Err(answers::invalid_param(format!(
            "param {name} must be a string."
        ))),
    }
}

/// The envelope and every event.
pub fn check_request(params: &Params, ctx: &ValidationContext) -> Result<Accepted, Answer> {
    let test_event_code = optional_text(params, "test_event_code")?;
    let partner_agent = optional_text(params, "partner_agent")?;
    for name in ["namespace_id", "upload_id", "upload_tag", "upload_source"] {
        optional_text(params, name)?;
    }
    let elements = match params.data() {
        Ok(e) => e,
        Err(DataError::Missing) => {
            return Err(answers::invalid_param("The parameter data is required"));
        }
        Err(DataError::NotAnArray) => {
            return Err(answers::invalid_param("param data must be an array."));
        }
    };
    if elements.is_empty() {
        return Err(answers::invalid_param(
            "param data must be an array with at least one event.",
        ));
    }
    if elements.len() > MAX_EVENTS_PER_REQUEST {
        return Err(answers::invalid_param(format!(
            "param data must be an array of at most {MAX_EVENTS_PER_REQUEST} events; this request has {}.",
            elements.len()
        )));
    }
    let mut events = Vec::with_capacity(elements.len());
    let mut problems = Vec::new();
    for (i, element) in elements.iter().enumerate() {
        let path = format!("data[{i}]");
        let not_json = || {
            answers::event_problem(&Problem::error(
                "invalid_json",
                path.clone(),
                "the event is a string that does not hold a JSON object",
            ))
        };
        let raw = element_json(element).map_err(|_| not_json())?;
        let value: serde_json::Value = serde_json::from_str(raw.get()).map_err(|_| not_json())?;
        problems.clear();
        check_event_value(&value, ctx, &path, &mut problems);
        if let Some(problem) = problems.iter().find(|p| p.is_error()) {
            return Err(answers::event_problem(problem));
        }
        events.push(AcceptedEvent {
            event_name: value
                .get("event_name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            event_id: value
                .get("event_id")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            raw,
        });
    }
    Ok(Accepted {
        events,
        test_event_code,
        partner_agent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::BodyKind;

    fn params(query: &str, body: &str) -> Params {
        let mut p = Params::from_query(Some(query));
        p.add_body(BodyKind::Json, body.as_bytes()).unwrap();
        p
    }

    fn code(answer: Answer) -> (i64, Option<i64>) {
        answer.error_code().unwrap()
    }

    #[test]
    fn credentials_in_graphs_order() {
        let config = EmulatorConfig {
            tokens: Some(vec!["good".to_owned()]),
            pixels: Some(vec!["1".to_owned()]),
            app_secret: Some("secret".to_owned()),
            ..EmulatorConfig::default()
        };
        let check = |q: &str, pixel: &str| authenticate(&params(q, "{}"), &config, pixel);
        assert_eq!(code(check("", "1").unwrap_err()), (104, None));
        assert_eq!(code(check("access_token=", "1").unwrap_err()), (104, None));
        assert_eq!(
            code(check("access_token=bad", "1").unwrap_err()),
            (190, None)
        );
        assert_eq!(
            code(check("access_token=good&appsecret_proof=00", "1").unwrap_err()),
            (100, None)
        );
        assert_eq!(
            code(check("access_token=good", "2").unwrap_err()),
            (100, Some(33))
        );
        assert!(check("access_token=good", "1").is_ok());
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(b"good");
        let proof = const_hex::encode(mac.finalize().into_bytes());
        assert!(check(&format!("access_token=good&appsecret_proof={proof}"), "1").is_ok());
    }

    #[test]
    fn open_config_accepts_any_token_and_pixel() {
        let config = EmulatorConfig::default();
        assert!(authenticate(&params("access_token=x", "{}"), &config, "999").is_ok());
    }

    #[test]
    fn envelope_errors() {
        let ctx = ValidationContext::for_wire(1_795_860_000);
        let check = |body: &str| check_request(&params("", body), &ctx).map(|_| ());
        assert_eq!(code(check("{}").unwrap_err()), (100, None));
        assert_eq!(code(check(r#"{"data": {}}"#).unwrap_err()), (100, None));
        assert_eq!(code(check(r#"{"data": []}"#).unwrap_err()), (100, None));
        assert_eq!(code(check(r#"{"data": [1]}"#).unwrap_err()), (100, None));
        assert_eq!(
            code(check(r#"{"data": [{}], "test_event_code": ["x"]}"#).unwrap_err()),
            (100, None)
        );
    }
}
