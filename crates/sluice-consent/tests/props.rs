//! Property tests: no parser panics on any input, and malformed input never
//! becomes consent.

mod common;

use common::tc_encoder::{TcCore, VendorEncoding};
use proptest::prelude::*;
use serde_json::{Value, json};
use sluice_consent::{
    ConsentAnswer, ConsentSignals, Outcome, Policy, RegionHint, SignalSource, Source, cookies,
    decide, tcf,
};

fn eea_policy() -> Policy {
    Policy::preset("default").unwrap()
}

/// The fail-closed property, exact: in an opt-in region, any malformed signal
/// the opt-in rule reads (everything but GPC) means the event is not delivered.
fn assert_fail_closed(signals: &ConsentSignals) {
    let policy = eea_policy();
    let d = decide(
        &policy,
        signals,
        &RegionHint::new(Some("DE"), None),
        Source::Browser,
    );
    let relevant_error = signals.errors.iter().any(|e| e.source != SignalSource::Gpc);
    if relevant_error {
        assert_eq!(d.outcome, Outcome::Drop, "{:?}", d.reasons);
    }
    // Reasons and summaries are codes: bounded, printable ASCII.
    for r in d.reasons.iter().chain(signals.summary(&[]).iter()) {
        assert!(
            r.len() < 400 && r.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{r:?}"
        );
    }
}

fn cookieish() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[A-Za-z0-9%:,;={}'\". _-]{0,300}").unwrap()
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn tcf_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let s = lossy(&bytes);
        if let Ok(t) = tcf::decode(&s) {
            prop_assert!(t.purpose_consents.iter().all(|p| (1..=24).contains(p)));
        }
        assert_fail_closed(&ConsentSignals::from_event_fields(None, None, Some(&s)));
    }

    #[test]
    fn tcf_base64_alphabet_garbage(s in "[A-Za-z0-9_-]{0,400}(\\.[A-Za-z0-9_-]{0,40}){0,3}") {
        let _ = tcf::decode(&s);
        assert_fail_closed(&ConsentSignals::from_event_fields(None, Some(&json!(1)), Some(&s)));
    }

    #[test]
    fn mutated_valid_strings_never_panic(
        purposes in proptest::collection::btree_set(1u8..=11, 0..11),
        vendors in proptest::collection::btree_set(1u16..=2000, 0..30),
        ranges in any::<bool>(),
        pos in any::<prop::sample::Index>(),
        replacement in "[A-Za-z0-9_.-]",
        cut in any::<prop::sample::Index>(),
    ) {
        let s = TcCore {
            purpose_consents: purposes.into_iter().collect(),
            vendor_consents: vendors.into_iter().collect(),
            encoding: if ranges { VendorEncoding::Ranges } else { VendorEncoding::Bitfield },
            ..TcCore::default()
        }
        .encode();
        let i = pos.index(s.len());
        let mut mutated = s.clone();
        mutated.replace_range(i..=i, &replacement);
        let _ = tcf::decode(&mutated);
        let _ = tcf::decode(&s[..cut.index(s.len() + 1)]);
    }

    #[test]
    fn encoder_round_trip(
        purposes in proptest::collection::btree_set(1u8..=24, 0..24),
        li in proptest::collection::btree_set(1u8..=24, 0..24),
        vendors in proptest::collection::btree_set(1u16..=3000, 0..60),
        ranges in any::<bool>(),
    ) {
        let s = TcCore {
            purpose_consents: purposes.iter().copied().collect(),
            purpose_li: li.iter().copied().collect(),
            vendor_consents: vendors.iter().copied().collect(),
            encoding: if ranges { VendorEncoding::Ranges } else { VendorEncoding::Bitfield },
            ..TcCore::default()
        }
        .encode();
        let t = tcf::decode(&s).unwrap();
        prop_assert_eq!(&t.purpose_consents, &purposes);
        prop_assert_eq!(&t.purpose_legitimate_interests, &li);
        prop_assert_eq!(&t.vendor_consents, &vendors);
    }

    #[test]
    fn cookie_parsers_never_panic(v in cookieish(), bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for s in [v.clone(), lossy(&bytes)] {
            let _ = cookies::parse_onetrust(&s);
            let _ = cookies::parse_cookiebot(&s);
            let _ = cookies::values(&s, "CookieConsent");
            let header = format!("euconsent-v2={s}; OptanonConsent={s}; CookieConsent={s}");
            assert_fail_closed(&ConsentSignals::default().with_cookies(Some(&header)));
            assert_fail_closed(&ConsentSignals::default().with_cookies(Some(&s)));
        }
    }

    #[test]
    fn gpc_header_never_panics(s in ".{0,40}") {
        let signals = ConsentSignals::default().with_gpc(Some(&s));
        prop_assert!(signals.gpc == (s.trim() == "1"));
        assert_fail_closed(&signals);
    }

    #[test]
    fn unknown_consent_values_never_grant(
        key in prop::sample::select(vec!["ad_user_data", "ad_storage", "marketing", "x"]),
        value in "[a-zA-Z0-9 ]{0,12}",
    ) {
        let known = ["granted", "denied", "true", "false", "yes", "no", "1", "0"];
        prop_assume!(!known.contains(&value.trim().to_ascii_lowercase().as_str()));
        let s = ConsentSignals::from_event_fields(Some(&json!({key: value})), None, None);
        prop_assert!(s.has_errors_from(SignalSource::ConsentObject));
        assert_fail_closed(&s);
    }

    #[test]
    fn arbitrary_json_consent_never_panics(text in "[\\[\\]{}\":,0-9a-z ]{0,80}") {
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            let s = ConsentSignals::from_event_fields(Some(&v), Some(&v), None);
            assert_fail_closed(&s);
            let _ = ConsentAnswer::from_json(text.as_bytes());
        }
    }

    #[test]
    fn store_answers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = ConsentAnswer::from_json(&bytes);
    }

    #[test]
    fn region_hints_are_codes_or_nothing(c in ".{0,6}", s in ".{0,8}") {
        let h = RegionHint::new(Some(&c), Some(&s));
        if let Some(country) = h.country() {
            prop_assert!(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()));
        }
        if let Some(state) = h.state() {
            prop_assert!(state.len() <= 3 && state.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn policy_parser_never_panics(text in ".{0,200}") {
        let _ = Policy::from_toml_str(&text);
    }
}
