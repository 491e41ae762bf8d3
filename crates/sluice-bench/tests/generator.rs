//! The generator reproduces bench/sdk/README.md exactly (its check values), and the
//! CPU path hashes event 0 as documented.

use sha2::{Digest, Sha256};
use sluice_bench::generator::{DEFAULT_SEED, RawEvent, XorShift32};
use sluice_bench::{BodyWriter, CpuPath, Mode};
use sluice_core::HashedKey;
use sluice_normalize::{NormalizeOptions, sha256_hex};

#[test]
fn prng_first_outputs_and_seed_zero() {
    let mut rng = XorShift32::new(DEFAULT_SEED);
    let first: Vec<u32> = (0..5).map(|_| rng.next()).collect();
    assert_eq!(
        first,
        [
            3_777_279_546,
            2_342_155_435,
            1_692_513_196,
            1_525_286,
            4_071_472_047
        ]
    );
    assert_eq!(XorShift32::new(0), XorShift32::new(DEFAULT_SEED));
}

#[test]
fn whole_run_check_values() {
    let mut rng = XorShift32::new(DEFAULT_SEED);
    let mut raw = RawEvent::default();
    let mut sha = Sha256::new();
    let mut value_cents = 0u64;
    let mut line = Vec::new();
    for n in 0..100_000 {
        raw.fill(&mut rng, n);
        if n == 0 {
            assert_eq!(rng.state(), 767_136_652, "state after event 0");
        }
        value_cents += raw.value_cents;
        line.clear();
        serde_json::to_writer(&mut line, &raw).unwrap();
        line.push(b'\n');
        sha.update(&line);
    }
    assert_eq!(rng.state(), 2_377_677_632, "state after 100,000 events");
    assert_eq!(value_cents, 15_082_217_626);
    assert_eq!(
        const_hex::encode(sha.finalize()),
        "59dec737bba813f9cf5ee217234d1ecded78f794bd7a7f2b3a88eb522b8fa97a"
    );
}

#[test]
fn raw_records_match_the_readme() {
    let mut rng = XorShift32::new(DEFAULT_SEED);
    let mut raw = RawEvent::default();
    raw.fill(&mut rng, 0);
    assert_eq!(
        serde_json::to_string(&raw).unwrap(),
        r#"{"n":0,"event_name":"Purchase","event_time":1795860000,"event_id":"evt-0","event_source_url":"https://shop0.example.com/checkout?order=0","action_source":"website","em":"  USER.0@EXAMPLE0.COM ","ph":"+1 (217) 661-2433","fn":"  Karen ","ln":"  O'Brien ","ct":"toronto","st":"on","zp":"40766","country":"CA","external_id":"ext-0","client_ip_address":"2001:db8:922::9d31","client_user_agent":"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0","fbc":"fb.1.1795810033701.IwAR78d703d9","fbp":"fb.1.1793492209297.1667760697","currency":"EUR","value_cents":79740,"contents":[{"id":"SKU-75246","quantity":2,"item_price_cents":27196},{"id":"SKU-85602","quantity":3,"item_price_cents":432},{"id":"SKU-48195","quantity":1,"item_price_cents":24052}],"order_id":"order-0"}"#
    );
    raw.fill(&mut rng, 1);
    assert_eq!(
        serde_json::to_string(&raw).unwrap(),
        r#"{"n":1,"event_name":"Purchase","event_time":1795860000,"event_id":"evt-1","event_source_url":"https://shop1.example.com/checkout?order=1","action_source":"website","em":"User1@Example1.COM","ph":"17940453854","fn":"KAREN","ln":"williams","ct":"SEATTLE","st":" WA ","zp":" 34549 ","country":"US","external_id":"ext-1","client_ip_address":"177.148.138.121","client_user_agent":"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1","fbc":"fb.1.1795837991744.IwAR74b57f9d","fbp":"fb.1.1795439378178.147000905","currency":"USD","value_cents":117846,"contents":[{"id":"SKU-23964","quantity":1,"item_price_cents":4440},{"id":"SKU-27769","quantity":2,"item_price_cents":26430},{"id":"SKU-09904","quantity":3,"item_price_cents":20182}],"order_id":"order-1"}"#
    );
}

/// Event 0's hashes: the SDKs' (README) where sluice's rules agree; `ln` differs by
/// design (sluice drops ASCII punctuation from names: `o'brien` → `obrien`), and
/// sluice hashes `external_id`, which the SDKs send as is.
#[test]
fn event_0_hashes_in_both_modes() {
    let sdk = [
        (
            HashedKey::Em,
            "efcd3d94fb55529a58b2d42a26fa1ac567cb38addc3e83ccf4c17f48ee2ad60e",
        ),
        (
            HashedKey::Ph,
            "455e3ec2037ff3722d8db08c9d382c2a187f64a07c14d9f251118486a8811cd8",
        ),
        (
            HashedKey::Fn,
            "904294d8c54b1c63e40832fa1d95bcde534b310df6d42882ce4baf28f3e0184a",
        ),
        (
            HashedKey::Ct,
            "141256c5c1405ee342242e7937a27643cc87da3a54a0fb5cf6a703015ba9b0a5",
        ),
        (
            HashedKey::St,
            "b8d31e852725afb1e26d53bab6095b2bff1749c9275be13ed1c05a56ed31ec09",
        ),
        (
            HashedKey::Zp,
            "e2572ccfd78a79a9f1b5dfbf0ab1db990d87d1605147759bd8f6a6a2a1f2064c",
        ),
        (
            HashedKey::Country,
            "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126",
        ),
    ];
    let mut rng = XorShift32::new(DEFAULT_SEED);
    let mut raw = RawEvent::default();
    raw.fill(&mut rng, 0);
    let mut bodies = Vec::new();
    for mode in [Mode::Fields, Mode::UserData] {
        let mut path = CpuPath::new(mode, NormalizeOptions::new(2026));
        let event = path.fill(&raw).clone();
        let hex = |k: HashedKey| event.user_data.hashed(k).values[0].hashed_text().unwrap();
        for (key, want) in sdk {
            assert_eq!(hex(key), want, "{key} ({mode:?})");
        }
        assert_eq!(hex(HashedKey::Ln), sha256_hex("obrien").as_str());
        assert_eq!(hex(HashedKey::ExternalId), sha256_hex("ext-0").as_str());
        let mut fast = Vec::new();
        event.write_json(&mut fast);
        assert_eq!(fast, serde_json::to_vec(&event).unwrap(), "writer = serde");
        let mut body = BodyWriter::new("bench-token", 0);
        body.begin();
        body.push(&event);
        body.push_serde(&event).unwrap();
        bodies.push(body.finish().unwrap().to_vec());
    }
    assert_eq!(bodies[0], bodies[1], "both modes give the same bytes");
    let body: serde_json::Value = serde_json::from_slice(&bodies[0]).unwrap();
    assert_eq!(body["access_token"], "bench-token");
    let ev = &body["data"][1];
    assert_eq!(ev["event_id"], "evt-0");
    assert_eq!(ev["custom_data"]["currency"], "EUR");
    assert_eq!(ev["custom_data"]["value"], 797.4);
    assert_eq!(ev["custom_data"]["contents"][1]["item_price"], 4.32);
    assert_eq!(ev["user_data"]["em"].as_array().map(Vec::len), Some(1));
}

/// Refilling the reused event for many events gives the same bytes as a fresh
/// event each time (nothing leaks from one event into the next).
#[test]
fn reuse_leaves_nothing_behind() {
    let opts = NormalizeOptions::new(2026);
    let mut rng = XorShift32::new(DEFAULT_SEED);
    let mut raw = RawEvent::default();
    let mut reused = CpuPath::new(Mode::Fields, opts);
    for n in 0..2_000 {
        raw.fill(&mut rng, n);
        let a = serde_json::to_string(reused.fill(&raw)).unwrap();
        let b = serde_json::to_string(CpuPath::new(Mode::UserData, opts).fill(&raw)).unwrap();
        assert_eq!(a, b, "event {n}");
    }
}
