//! The default preset as a table: signals × regions × sources → outcome.
//!
//! Regions fall into three classes with one expected outcome each: opt-in
//! (EEA, UK, CH and unknown), US (LDU states and the rest), rest of world.

mod common;

use common::tc_encoder::tc_string;
use serde_json::{Value, json};
use sluice_consent::{
    ConsentAnswer, ConsentFields, ConsentSignals, LookupError, Outcome, Policy, RegionHint, Source,
    decide,
};

const OPT_IN: usize = 0;
const US: usize = 1;
const ROW: usize = 2;

use Outcome::{Deliver as D, DeliverLdu as L, Drop as X};

fn fields(v: Value) -> ConsentSignals {
    let mut obj = v.as_object().cloned().unwrap_or_default();
    ConsentFields::take_from(&mut obj).to_signals()
}

struct Row {
    name: &'static str,
    signals: ConsentSignals,
    want: [Outcome; 3],
    opt_out: [bool; 3],
}

fn row(name: &'static str, signals: ConsentSignals, want: [Outcome; 3]) -> Row {
    Row {
        name,
        signals,
        want,
        opt_out: [false; 3],
    }
}

fn rows() -> Vec<Row> {
    let tc_all = tc_string(&[1, 3, 4, 7], &[]);
    let tc_1_7 = tc_string(&[1, 7], &[]);
    let ot = |groups: &str| format!("OptanonConsent=isGpcEnabled=0&consentId=abc&groups={groups}");
    let none = ConsentSignals::default;
    vec![
        row("no signal", none(), [X, D, D]),
        row(
            "ad_user_data granted",
            fields(json!({"consent": {"ad_user_data": "granted"}})),
            [D, D, D],
        ),
        row(
            "ad_user_data denied",
            fields(json!({"consent": {"ad_user_data": "denied"}})),
            [X, L, X],
        ),
        Row {
            opt_out: [true; 3],
            ..row(
                "ad_user_data granted, ad_personalization denied",
                fields(
                    json!({"consent": {"ad_user_data": "granted", "ad_personalization": "denied"}}),
                ),
                [D, D, D],
            )
        },
        row(
            "tcf 1,3,4,7",
            fields(json!({"gdpr": 1, "gdpr_consent": tc_all})),
            [D, D, D],
        ),
        Row {
            opt_out: [false, true, true],
            ..row(
                "tcf 1,7 only",
                fields(json!({"gdpr": 1, "gdpr_consent": tc_1_7})),
                [X, D, D],
            )
        },
        row(
            "category marketing true",
            fields(json!({"consent": {"marketing": true}})),
            [D, D, D],
        ),
        row(
            "category marketing false",
            fields(json!({"consent": {"marketing": false}})),
            [X, L, X],
        ),
        row(
            "onetrust targeting on",
            none().with_cookies(Some(&ot("C0001%3A1%2CC0004%3A1"))),
            [D, D, D],
        ),
        row(
            "onetrust targeting off",
            none().with_cookies(Some(&ot("C0001%3A1%2CC0004%3A0"))),
            [X, L, X],
        ),
        row(
            "onetrust malformed",
            none().with_cookies(Some(&ot("C0001%3Ayes"))),
            [X, L, X],
        ),
        row(
            "cookiebot marketing true",
            none().with_cookies(Some(
                "CookieConsent={stamp:%27x%27%2Cnecessary:true%2Cmarketing:true}",
            )),
            [D, D, D],
        ),
        row(
            "cookiebot consent not required (-1)",
            none().with_cookies(Some("CookieConsent=-1")),
            [X, D, D],
        ),
        row("gpc header", none().with_gpc(Some("1")), [X, L, D]),
        row("gpc body field", fields(json!({"gpc": true})), [X, L, D]),
        row(
            "gpc + ad_user_data granted",
            fields(json!({"consent": {"ad_user_data": "granted"}})).with_gpc(Some("1")),
            [D, L, D],
        ),
        row(
            "gpc header invalid",
            none().with_gpc(Some("yes")),
            [X, L, D],
        ),
        row(
            "tcf malformed",
            fields(json!({"gdpr": 1, "gdpr_consent": "CPgarbage"})),
            [X, D, D],
        ),
        row(
            "tcf malformed + ad_user_data granted",
            fields(json!({"consent": {"ad_user_data": "granted"}, "gdpr_consent": "CPgarbage"})),
            [X, D, D],
        ),
        Row {
            opt_out: [false, true, false],
            ..row(
                "unknown consent value",
                fields(json!({"consent": {"ad_user_data": "maybe"}})),
                [X, L, X],
            )
        },
        Row {
            opt_out: [false, true, false],
            ..row(
                "consent object not an object",
                fields(json!({"consent": "granted"})),
                [X, L, X],
            )
        },
        row(
            "tcf grants, ad_user_data denies",
            fields(
                json!({"consent": {"ad_user_data": "denied"}, "gdpr_consent": tc_string(&[1, 3, 4, 7], &[])}),
            ),
            [X, L, X],
        ),
        row(
            "gdpr 0 without a string",
            fields(json!({"gdpr": 0})),
            [X, D, D],
        ),
        row(
            "consent_source default, granted",
            fields(json!({"consent": {"ad_user_data": "granted"}, "consent_source": "default"})),
            [X, D, D],
        ),
        row(
            "consent_source default, denied",
            fields(json!({"consent": {"ad_user_data": "denied"}, "consent_source": "default"})),
            [X, L, X],
        ),
        row(
            "store timeout",
            none().with_store(Err(LookupError::Timeout)),
            [X, L, X],
        ),
        row(
            "store garbage",
            none().with_store(Err(LookupError::Invalid)),
            [X, L, X],
        ),
        row(
            "store not found",
            none().with_store(Ok(ConsentAnswer::unknown())),
            [X, D, D],
        ),
        row(
            "store granted",
            none().with_store(Ok(ConsentAnswer::from_json(
                br#"{"ad_user_data":"granted"}"#,
            )
            .unwrap())),
            [D, D, D],
        ),
        row(
            "store withdraws what the event grants",
            fields(json!({"consent": {"ad_user_data": "granted"}})).with_store(Ok(
                ConsentAnswer::from_json(br#"{"ad_user_data":"denied"}"#).unwrap(),
            )),
            [X, L, X],
        ),
        row(
            "event grants, store times out",
            fields(json!({"consent": {"ad_user_data": "granted"}}))
                .with_store(Err(LookupError::Timeout)),
            [X, L, X],
        ),
    ]
}

/// (country, state, class, rule id, LDU state code)
type RegionCase = (
    Option<&'static str>,
    Option<&'static str>,
    usize,
    &'static str,
    i64,
);

const REGIONS: [RegionCase; 13] = [
    (Some("DE"), None, OPT_IN, "eea-uk-ch-opt-in", 0),
    (Some("FR"), None, OPT_IN, "eea-uk-ch-opt-in", 0),
    (Some("NO"), None, OPT_IN, "eea-uk-ch-opt-in", 0),
    (Some("GB"), None, OPT_IN, "eea-uk-ch-opt-in", 0),
    (Some("CH"), None, OPT_IN, "eea-uk-ch-opt-in", 0),
    (None, None, OPT_IN, "unknown-region-opt-in", 0),
    (Some("US"), Some("CA"), US, "us-ldu-states", 1000),
    (Some("US"), Some("TX"), US, "us-ldu-states", 0),
    (Some("US"), Some("WA"), US, "us-other", 0),
    (Some("US"), None, US, "us-other", 0),
    (Some("BR"), None, ROW, "rest-of-world", 0),
    (Some("JP"), None, ROW, "rest-of-world", 0),
    // Canada: the country code CA must not be mistaken for California.
    (Some("CA"), None, ROW, "rest-of-world", 0),
];

#[test]
fn default_preset_matrix() {
    let policy = Policy::preset("default").unwrap();
    let mut cases = 0;
    for r in rows() {
        for (country, state, class, rule, ldu_state) in REGIONS {
            let region = RegionHint::new(country, state);
            for source in [Source::Browser, Source::Backend, Source::Import] {
                let d = decide(&policy, &r.signals, &region, source);
                let ctx = format!("{} / {region} / {source}: {:?}", r.name, d.reasons);
                assert_eq!(d.outcome, r.want[class], "{ctx}");
                assert_eq!(d.rule_id, rule, "{ctx}");
                assert_eq!(d.policy_version, "sluice-default-1");
                if d.outcome.delivers() {
                    assert_eq!(d.opt_out, r.opt_out[class], "opt_out: {ctx}");
                }
                match d.outcome {
                    Outcome::DeliverLdu => {
                        let codes = d.ldu.expect("ldu codes");
                        assert_eq!((codes.country, codes.state), (1, ldu_state), "{ctx}");
                    }
                    _ => assert!(d.ldu.is_none(), "{ctx}"),
                }
                cases += 1;
            }
        }
    }
    assert!(cases > 1000, "{cases}");
}

#[test]
fn graph_source_is_delivered_as_sent_everywhere() {
    let policy = Policy::preset("default").unwrap();
    for r in rows() {
        for (country, state, ..) in REGIONS {
            let d = decide(
                &policy,
                &r.signals,
                &RegionHint::new(country, state),
                Source::Graph,
            );
            assert_eq!(d.outcome, Outcome::Deliver, "{}", r.name);
            assert_eq!(d.rule_id, "graph-as-sent");
            assert!(d.ldu.is_none());
        }
    }
    let plain = decide(
        &policy,
        &ConsentSignals::default(),
        &RegionHint::new(Some("DE"), None),
        Source::Graph,
    );
    assert!(!plain.opt_out);
    assert!(plain.reasons.contains(&"consent:not_required".to_owned()));
}

#[test]
fn decisions_are_deterministic_and_reasons_carry_no_input_text() {
    let policy = Policy::preset("default").unwrap();
    let s = fields(
        json!({"consent": {"ad_user_data": "secret-value@example.com"},
                          "gdpr_consent": "CPsecretsecret"}),
    );
    let region = RegionHint::new(Some("DE"), None);
    let a = decide(&policy, &s, &region, Source::Backend);
    let b = decide(&policy, &s, &region, Source::Backend);
    assert_eq!(a, b);
    let text = format!("{a:?}");
    assert!(!text.contains("secret"), "{text}");
    assert!(text.contains("consent_value_unknown"), "{text}");
}

fn custom(text: &str) -> Policy {
    Policy::from_toml_str(text).unwrap()
}

#[test]
fn no_matching_rule_is_default_deny() {
    let p = custom(
        "version = \"t\"\n[[rules]]\nid = \"eu\"\nregions = [\"EEA\"]\noutcome = \"deliver\"\n",
    );
    let d = decide(
        &p,
        &ConsentSignals::default(),
        &RegionHint::new(Some("US"), None),
        Source::Backend,
    );
    assert_eq!(
        (d.outcome, d.rule_id.as_str()),
        (Outcome::Drop, "default_deny")
    );
    assert!(d.reasons.contains(&"no_rule_matched".to_owned()));
}

#[test]
fn invalid_signals_get_the_stricter_of_missing_and_denied() {
    let p = custom(
        r#"
version = "t"
[[rules]]
id = "soft"
require = ["ad_user_data"]
outcome = "deliver"
on_missing = "deliver_ldu"
on_denied = "deliver_without_identifiers"
"#,
    );
    let region = RegionHint::new(Some("BR"), None);
    let check = |s: ConsentSignals, want: Outcome| {
        assert_eq!(decide(&p, &s, &region, Source::Backend).outcome, want);
    };
    check(ConsentSignals::default(), Outcome::DeliverLdu);
    check(
        fields(json!({"consent": {"ad_user_data": "denied"}})),
        Outcome::DeliverWithoutIdentifiers,
    );
    check(
        fields(json!({"consent": {"ad_user_data": "??"}})),
        Outcome::DeliverWithoutIdentifiers,
    );
    check(
        fields(json!({"consent": {"ad_user_data": "granted"}})),
        Outcome::Deliver,
    );
    // LDU outside the US: Meta geolocates (country 0, state 0).
    let d = decide(&p, &ConsentSignals::default(), &region, Source::Backend);
    let codes = d.ldu.unwrap();
    assert_eq!((codes.country, codes.state), (0, 0));
}

#[test]
fn require_mode_all_needs_every_check() {
    let p = custom(
        r#"
version = "t"
[[rules]]
id = "both"
require = ["ad_user_data", "tcf"]
require_mode = "all"
tcf_purposes = [1, 7]
outcome = "deliver"
"#,
    );
    let region = RegionHint::new(Some("DE"), None);
    let tc = tc_string(&[1, 7], &[]);
    let only_flag = fields(json!({"consent": {"ad_user_data": "granted"}}));
    let both = fields(json!({"consent": {"ad_user_data": "granted"}, "gdpr_consent": tc}));
    assert_eq!(
        decide(&p, &only_flag, &region, Source::Backend).outcome,
        Outcome::Drop
    );
    assert_eq!(
        decide(&p, &both, &region, Source::Backend).outcome,
        Outcome::Deliver
    );
}

#[test]
fn tcf_vendor_is_required_when_configured() {
    let p = custom(
        r#"
version = "t"
[[rules]]
id = "vendor"
require = ["tcf"]
tcf_purposes = [1, 3, 4, 7]
tcf_vendor = 89
outcome = "deliver"
"#,
    );
    let region = RegionHint::new(Some("DE"), None);
    let with = |vendors: &[u16]| {
        let s = fields(json!({"gdpr": 1, "gdpr_consent": tc_string(&[1, 3, 4, 7], vendors)}));
        decide(&p, &s, &region, Source::Browser)
    };
    assert_eq!(with(&[89]).outcome, Outcome::Deliver);
    let d = with(&[1, 2]);
    assert_eq!(d.outcome, Outcome::Drop);
    assert!(
        d.reasons
            .contains(&"tcf:vendor_not_consented:89".to_owned()),
        "{:?}",
        d.reasons
    );
}

#[test]
fn banner_mapping_is_configurable() {
    let p = custom(
        r#"
version = "t"
[banners.onetrust]
C0004 = ""
C0007 = "marketing"
[[rules]]
id = "eu"
require = ["category:marketing"]
outcome = "deliver"
"#,
    );
    let region = RegionHint::new(Some("DE"), None);
    let cookie = |g: &str| {
        ConsentSignals::default().with_cookies(Some(&format!("OptanonConsent=groups={g}")))
    };
    assert_eq!(
        decide(&p, &cookie("C0004:1"), &region, Source::Browser).outcome,
        Outcome::Drop
    );
    assert_eq!(
        decide(&p, &cookie("C0007:1"), &region, Source::Browser).outcome,
        Outcome::Deliver
    );
    assert_eq!(
        decide(&p, &cookie("C0007:0,C0004:1"), &region, Source::Browser).outcome,
        Outcome::Drop
    );
}

#[test]
fn a_rule_for_the_graph_source_overrides_the_preset() {
    let p = custom(
        r#"
version = "acme-1"
extends = "default"
[[rules]]
id = "graph-eu-needs-consent"
sources = ["graph"]
regions = ["EEA"]
require = ["ad_user_data"]
outcome = "deliver"
"#,
    );
    let d = decide(
        &p,
        &ConsentSignals::default(),
        &RegionHint::new(Some("DE"), None),
        Source::Graph,
    );
    assert_eq!(
        (d.outcome, d.rule_id.as_str()),
        (Outcome::Drop, "graph-eu-needs-consent")
    );
    let us = decide(
        &p,
        &ConsentSignals::default(),
        &RegionHint::new(Some("US"), None),
        Source::Graph,
    );
    assert_eq!(
        (us.outcome, us.rule_id.as_str()),
        (Outcome::Deliver, "graph-as-sent")
    );
    assert_eq!(us.policy_version, "acme-1");
}
