//! Arbitrary bytes as a `Cookie` header and as the values of the OneTrust and
//! Cookiebot consent cookies: nothing may panic, and a cookie that does not parse
//! never grants consent in an opt-in region.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_consent::{
    ConsentSignals, Outcome, Policy, RegionHint, SignalSource, Source, cookies, decide,
};
use std::sync::OnceLock;

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| Policy::preset("default").expect("preset loads"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = cookies::parse_onetrust(s);
    let _ = cookies::parse_cookiebot(s);

    let region = RegionHint::new(Some("DE"), None);
    for header in [
        s.to_owned(),
        format!("OptanonConsent={s}"),
        format!("CookieConsent={s}"),
        format!("a=1; OptanonConsent={s}; CookieConsent={s}"),
    ] {
        let signals = ConsentSignals::default()
            .with_cookies(Some(&header))
            .with_gpc(Some(s));
        let d = decide(policy(), &signals, &region, Source::Browser);
        if signals.errors.iter().any(|e| e.source != SignalSource::Gpc) {
            assert_eq!(d.outcome, Outcome::Drop);
        }
        let _ = signals.summary(&[]);
    }
});
