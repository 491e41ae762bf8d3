//! `apply` effects on events, audit records, and the explain output.

mod common;

use common::tc_encoder::tc_string;
use serde_json::json;
use sluice_consent::{
    Applied, AuditRecord, ConsentFields, ConsentSignals, ConsentState, Decision, ExplainInput,
    LduCodes, Outcome, Policy, RegionHint, Source, apply, decide, explain,
};
use sluice_core::user_data::HashedKey;
use sluice_core::{ActionSource, ServerEvent};

const HASH: &str = "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d";

fn full_event() -> ServerEvent {
    let mut e = ServerEvent::builder("Purchase", 1_795_860_000, ActionSource::Website)
        .event_id("order-7731")
        .event_source_url("https://shop.example/done?fbclid=IwAR0abc&email=jane%40example.com#top")
        .referrer_url("https://shop.example/cart?session=xyz")
        .user_agent("Mozilla/5.0")
        .client_ip("2001:db8::7")
        .fbp("fb.1.1795859000123.1234567890")
        .fbc("fb.1.1795858000456.IwAR0abc")
        .value(49.9, "EUR")
        .build();
    let ud = &mut e.user_data;
    for k in [
        HashedKey::Em,
        HashedKey::Ph,
        HashedKey::Fn,
        HashedKey::Ln,
        HashedKey::Db,
        HashedKey::Ge,
        HashedKey::Ct,
        HashedKey::St,
        HashedKey::Zp,
        HashedKey::Country,
        HashedKey::ExternalId,
    ] {
        ud.push_classified(k, HASH);
    }
    ud.madid = Some("38400000-8cf0-11bd-b23e-10b96e40000d".into());
    ud.anon_id = Some("anon".into());
    ud.subscription_id = Some("sub-1".into());
    ud.lead_id = Some(123.into());
    ud.page_id = Some("99".into());
    e.original_event_data = Some(sluice_core::OriginalEventData {
        event_id: Some("lead-1".into()),
        ..Default::default()
    });
    e
}

fn decision(outcome: Outcome, opt_out: bool, ldu: Option<LduCodes>) -> Decision {
    Decision {
        outcome,
        rule_id: "r".into(),
        consent: ConsentState::Granted,
        reasons: vec![],
        policy_version: "t".into(),
        opt_out,
        ldu,
    }
}

#[test]
fn deliver_leaves_the_event_alone_but_never_weakens_it() {
    let policy = Policy::preset("default").unwrap();
    let mut e = full_event();
    e.data_processing_options = Some(vec!["LDU".into()]);
    let before = e.clone();
    let Applied::Store(ch) = apply(&decision(Outcome::Deliver, false, None), &mut e, &policy)
    else {
        panic!("stored");
    };
    assert_eq!(e, before);
    assert!(ch.identifiers_left && !ch.set_ldu && !ch.set_opt_out);
}

#[test]
fn deliver_ldu_sets_the_three_fields() {
    let policy = Policy::preset("default").unwrap();
    let mut e = full_event();
    let d = decision(
        Outcome::DeliverLdu,
        false,
        Some(LduCodes {
            country: 1,
            state: 1000,
        }),
    );
    let Applied::Store(ch) = apply(&d, &mut e, &policy) else {
        panic!("stored");
    };
    assert!(ch.set_ldu);
    assert!(e.is_ldu());
    assert_eq!(e.data_processing_options_country, Some(1));
    assert_eq!(e.data_processing_options_state, Some(1000));
    let wire = serde_json::to_value(&e).unwrap();
    assert_eq!(wire["data_processing_options"], json!(["LDU"]));
}

#[test]
fn opt_out_is_set_and_never_unset() {
    let policy = Policy::preset("default").unwrap();
    let mut e = full_event();
    let Applied::Store(ch) = apply(&decision(Outcome::Deliver, true, None), &mut e, &policy) else {
        panic!("stored");
    };
    assert!(ch.set_opt_out);
    assert_eq!(e.opt_out, Some(true));
    let mut sender_opted_out = full_event();
    sender_opted_out.opt_out = Some(true);
    let _ = apply(
        &decision(Outcome::Deliver, false, None),
        &mut sender_opted_out,
        &policy,
    );
    assert_eq!(sender_opted_out.opt_out, Some(true));
}

#[test]
fn without_identifiers_strips_every_person_key() {
    let policy = Policy::preset("default").unwrap();
    let mut e = full_event();
    let Applied::Store(ch) = apply(
        &decision(Outcome::DeliverWithoutIdentifiers, false, None),
        &mut e,
        &policy,
    ) else {
        panic!("stored");
    };
    assert_eq!(
        e.user_data.present_keys(),
        vec!["client_user_agent", "page_id"]
    );
    for k in [
        "em",
        "ph",
        "fn",
        "ln",
        "db",
        "ge",
        "ct",
        "st",
        "zp",
        "country",
        "external_id",
        "client_ip_address",
        "fbc",
        "fbp",
        "madid",
        "anon_id",
        "subscription_id",
        "lead_id",
    ] {
        assert!(ch.removed_keys.contains(&k), "{k} not removed");
    }
    assert!(!ch.identifiers_left);
    assert_eq!(
        e.event_source_url.as_deref(),
        Some("https://shop.example/done")
    );
    assert_eq!(e.referrer_url.as_deref(), Some("https://shop.example/cart"));
    assert!(e.original_event_data.is_none() && e.attribution_data.is_none());
    // What was bought stays; the dedup key stays.
    assert!(e.custom_data.is_some());
    assert_eq!(e.event_id.as_deref(), Some("order-7731"));
    let wire = serde_json::to_string(&e).unwrap();
    assert!(!wire.contains(HASH) && !wire.contains("2001:db8") && !wire.contains("fbclid"));
}

#[test]
fn without_identifiers_keeps_what_the_policy_allows() {
    let policy = Policy::from_toml_str(
        "version = \"t\"\n[without_identifiers]\nkeep = [\"country\", \"st\"]\n[[rules]]\nid = \"a\"\noutcome = \"deliver\"\n",
    )
    .unwrap();
    let mut e = full_event();
    let _ = apply(
        &decision(Outcome::DeliverWithoutIdentifiers, false, None),
        &mut e,
        &policy,
    );
    assert_eq!(e.user_data.present_keys(), vec!["st", "country", "page_id"]);
}

#[test]
fn drop_is_drop() {
    let policy = Policy::preset("default").unwrap();
    let mut e = full_event();
    let before = e.clone();
    assert_eq!(
        apply(&decision(Outcome::Drop, true, None), &mut e, &policy),
        Applied::Drop
    );
    assert_eq!(e, before);
}

#[test]
fn end_to_end_ldu_for_a_californian_with_gpc() {
    let policy = Policy::preset("default").unwrap();
    let signals = ConsentSignals::default().with_gpc(Some("1"));
    let region = RegionHint::new(Some("US"), Some("CA"));
    let d = decide(&policy, &signals, &region, Source::Browser);
    let mut e = full_event();
    let Applied::Store(_) = apply(&d, &mut e, &policy) else {
        panic!("stored");
    };
    assert_eq!(
        (
            e.data_processing_options_country,
            e.data_processing_options_state
        ),
        (Some(1), Some(1000))
    );
}

#[test]
fn audit_records_carry_codes_not_pii() {
    let policy = Policy::preset("default").unwrap();
    let tc = tc_string(&[1, 3, 4, 7], &[]);
    let mut obj = json!({"consent": {"ad_user_data": "granted", "ad_personalization": "denied"},
                         "gdpr": 1, "gdpr_consent": tc.clone()})
    .as_object()
    .cloned()
    .unwrap();
    let signals = ConsentFields::take_from(&mut obj)
        .to_signals()
        .with_gpc(Some("1"))
        .with_cookies(Some(
            "OptanonConsent=consentId=0f1e2d3c-aaaa&groups=C0001%3A1%2CC0004%3A1; _fbp=fb.1.2.3",
        ));
    let region = RegionHint::new(Some("DE"), None);
    let d = decide(&policy, &signals, &region, Source::Browser);
    let e = full_event();
    let rec = AuditRecord::for_event(
        1_795_860_000_123,
        "1234567890",
        &e,
        Source::Browser,
        &d,
        &signals,
        &policy,
    );
    assert_eq!(rec.rule_id, "eea-uk-ch-opt-in");
    assert_eq!(rec.outcome, Outcome::Deliver);
    assert_eq!(rec.policy_version, "sluice-default-1");
    assert_eq!(rec.event_id.as_deref(), Some("order-7731"));
    for want in [
        "ad_user_data=granted",
        "ad_personalization=denied",
        "gdpr=1",
        "tcf=purposes:1,3,4,7;policy:4",
        "gpc=1",
        "onetrust=C0001:1,C0004:1",
    ] {
        assert!(
            rec.signals_seen.iter().any(|s| s == want),
            "{want} in {:?}",
            rec.signals_seen
        );
    }
    let json = serde_json::to_string(&rec).unwrap();
    println!("{json}");
    for secret in [tc.as_str(), "0f1e2d3c", HASH, "2001:db8", "fb.1."] {
        assert!(!json.contains(secret), "{secret} leaked: {json}");
    }
    let back: AuditRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rec);
}

#[test]
fn audit_cuts_long_sender_text() {
    let policy = Policy::preset("default").unwrap();
    let signals = ConsentSignals::default();
    let d = decide(&policy, &signals, &RegionHint::unknown(), Source::Backend);
    let mut e = full_event();
    e.event_id = Some("x".repeat(10_000));
    let rec = AuditRecord::for_event(0, "p", &e, Source::Backend, &d, &signals, &policy);
    assert_eq!(rec.event_id.map(|s| s.len()), Some(256));
}

#[test]
fn explain_names_the_rule_the_reason_and_the_alternatives() {
    let policy = Policy::preset("default").unwrap();
    let input = ExplainInput::from_json(
        r#"{"event_name": "Purchase", "event_id": "order-1", "event_time": 1,
            "action_source": "website", "user_data": {"country": "de"},
            "consent": {"ad_user_data": "denied"}}"#,
        Source::Backend,
    )
    .unwrap();
    assert_eq!(input.region.to_string(), "DE");
    let ex = explain(&policy, &input);
    assert_eq!(ex.decision.outcome, Outcome::Drop);
    let text = ex.to_string();
    for want in [
        "policy sluice-default-1",
        "event Purchase (event_id order-1), source backend, region DE",
        "ad_user_data=denied",
        "1. graph-as-sent",
        "skipped: source backend not in [graph]",
        "2. eea-uk-ch-opt-in",
        "MATCHED (region via EEA",
        "not reached",
        "decision: drop  (rule eea-uk-ch-opt-in, consent denied)",
        "with consent granted: deliver",
        "the refusal came from: ad_user_data",
        "tcf: a TC string (gdpr_consent or euconsent-v2) with consent for purposes 1,3,4,7",
        "OneTrust groups [C0004]",
        "not stored and not sent",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn explain_wrapper_sets_region_cookies_gpc_and_store() {
    let policy = Policy::preset("default").unwrap();
    let input = ExplainInput::from_json(
        r#"{"event": {"event_name": "Lead"},
            "source": "browser",
            "region": {"country": "US", "state": "CA"},
            "cookie": "OptanonConsent=groups=C0004%3A1",
            "sec_gpc": "1",
            "store": "timeout"}"#,
        Source::Backend,
    )
    .unwrap();
    let ex = explain(&policy, &input);
    assert_eq!(ex.decision.outcome, Outcome::DeliverLdu);
    let text = ex.to_string();
    assert!(text.contains("region US-CA"), "{text}");
    assert!(
        text.contains("data_processing_options [\"LDU\"], country 1, state 1000"),
        "{text}"
    );
    assert!(
        text.contains("gpc=1") && text.contains("store=failed:consent_store_timeout"),
        "{text}"
    );

    let none = ExplainInput::from_json(r#"{"event_name": "Lead"}"#, Source::Browser).unwrap();
    let text = explain(&policy, &none).to_string();
    assert!(
        text.contains("region unknown") && text.contains("unknown-region-opt-in"),
        "{text}"
    );
    assert!(text.contains("(none)"), "{text}");

    for bad in [
        "[]",
        "{\"event\": 1}",
        "{\"event\": {}, \"source\": \"web\"}",
        "nope",
        "{\"event\": {}, \"store\": \"maybe\"}",
    ] {
        assert!(
            ExplainInput::from_json(bad, Source::Backend).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn explain_with_no_matching_rule() {
    let policy = Policy::from_toml_str(
        "version = \"t\"\n[[rules]]\nid = \"eu\"\nregions = [\"EEA\"]\noutcome = \"deliver\"\n",
    )
    .unwrap();
    let input = ExplainInput::from_json(r#"{"event_name": "Lead"}"#, Source::Backend).unwrap();
    let text = explain(&policy, &input).to_string();
    assert!(
        text.contains("no rule matched; default_deny denies by default"),
        "{text}"
    );
}

#[test]
#[ignore = "prints a sample for humans"]
fn print_sample_explanation() {
    let policy = Policy::preset("default").unwrap();
    let tc = tc_string(&[1, 7], &[]);
    let text = format!(
        r#"{{"event": {{"event_name": "Purchase", "event_id": "o-1", "consent": {{"ad_user_data": "granted", "ad_personalization": "denied"}}, "gdpr": 1, "gdpr_consent": "{tc}"}}, "source": "browser", "region": {{"country": "FR"}}}}"#
    );
    let input = ExplainInput::from_json(&text, Source::Backend).unwrap();
    println!("{}", explain(&policy, &input));
    let input = ExplainInput::from_json(r#"{"event": {"event_name": "Lead", "consent": {"ad_personalization": "denied"}}, "source": "browser", "region": {"country": "US", "state": "TX"}, "sec_gpc": "1"}"#, Source::Backend).unwrap();
    println!("{}", explain(&policy, &input));
}
