//! Arbitrary bytes as a TC string (the `gdpr_consent` field and the
//! `euconsent-v2` cookie): nothing may panic, a decoded summary holds only
//! purpose ids 1–24, and a string that does not decode never grants consent in
//! an opt-in region.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_consent::{ConsentSignals, Outcome, Policy, RegionHint, Source, decide, tcf};
use std::sync::OnceLock;

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| Policy::preset("default").expect("preset loads"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let decoded = tcf::decode(s);
    if let Ok(t) = &decoded {
        assert!(t.purpose_consents.iter().all(|p| (1..=24).contains(p)));
        assert!(t.purpose_legitimate_interests.iter().all(|p| (1..=24).contains(p)));
    }

    let signals = ConsentSignals::from_event_fields(None, None, Some(s))
        .with_cookies(Some(&format!("euconsent-v2={s}")));
    let d = decide(policy(), &signals, &RegionHint::new(Some("DE"), None), Source::Browser);
    if decoded.is_err() {
        assert_eq!(d.outcome, Outcome::Drop);
    }
});
