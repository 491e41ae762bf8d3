//! TCF decoding: encoder-built strings, a public example, and `lib_tcstring` as a
//! differential oracle.

mod common;

use common::tc_encoder::{BitWriter, Restriction, TcCore, VendorEncoding, tc_string};
use sluice_consent::tcf::{self, MAX_EXPANDED_IDS, RestrictionKind};
use sluice_consent::{ConsentSignals, ErrorCode, SignalSource};
use std::collections::BTreeSet;

fn set8(v: &[u8]) -> BTreeSet<u8> {
    v.iter().copied().collect()
}
fn set16(v: &[u16]) -> BTreeSet<u16> {
    v.iter().copied().collect()
}

/// Compares our summary with lib_tcstring's decoding of the same string.
fn assert_agrees_with_oracle(s: &str) {
    let ours = tcf::decode(s).unwrap_or_else(|e| panic!("ours failed: {e}"));
    let oracle = lib_tcstring::TcModelV2::try_from(s).expect("oracle decodes");
    assert_eq!(ours.purpose_consents, set8(&oracle.purposes_consent));
    assert_eq!(
        ours.purpose_legitimate_interests,
        set8(&oracle.purposes_li_transparency)
    );
    assert_eq!(
        ours.special_feature_optins,
        set8(&oracle.special_feature_opt_ins)
    );
    assert_eq!(ours.vendor_consents, set16(&oracle.vendors_consent));
    assert_eq!(
        ours.vendor_legitimate_interests,
        set16(&oracle.vendors_li_consent)
    );
    assert_eq!(u16::from(ours.policy_version), oracle.tcf_policy_version);
    assert_eq!(ours.cmp_id, oracle.cmp_id);
    assert_eq!(
        ours.publisher_purpose_consents,
        set8(&oracle.publisher_purposes_consent)
    );
    assert_eq!(ours.restrictions.len(), oracle.publisher_restrictions.len());
    for (a, b) in ours.restrictions.iter().zip(&oracle.publisher_restrictions) {
        assert_eq!(a.purpose, b.purpose_id);
        assert_eq!(a.vendors, set16(&b.vendor_list));
    }
}

#[test]
fn encoder_strings_decode_to_the_encoded_purposes() {
    let s = tc_string(&[1, 3, 4, 7], &[1, 89, 755]);
    let t = tcf::decode(&s).unwrap();
    assert_eq!(t.purpose_consents, set8(&[1, 3, 4, 7]));
    assert_eq!(t.vendor_consents, set16(&[1, 89, 755]));
    assert_eq!(t.policy_version, 4);
    assert!(t.restrictions.is_empty());
    assert_agrees_with_oracle(&s);
}

#[test]
fn differential_matrix_against_lib_tcstring() {
    let purpose_sets: [&[u8]; 5] = [
        &[],
        &[1],
        &[1, 3, 4, 7],
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        &[2, 24],
    ];
    let vendor_sets: [&[u16]; 4] = [&[], &[1], &[2, 3, 4, 5, 90, 91, 92, 1000], &[65_535]];
    for purposes in purpose_sets {
        for vendors in vendor_sets {
            for encoding in [VendorEncoding::Bitfield, VendorEncoding::Ranges] {
                let core = TcCore {
                    purpose_consents: purposes.to_vec(),
                    purpose_li: vec![2, 7, 10],
                    special_features: vec![1],
                    vendor_consents: vendors.to_vec(),
                    vendor_li: vendors.iter().copied().filter(|v| v % 2 == 0).collect(),
                    encoding,
                    publisher_purposes: Some(vec![1, 3]),
                    ..TcCore::default()
                };
                if vendors == [65_535] && encoding == VendorEncoding::Bitfield {
                    // Two 65 535-bit fields: ~22 000 characters, over the limit.
                    assert_eq!(tcf::decode(&core.encode()), Err(ErrorCode::TcfTooLong));
                    continue;
                }
                assert_agrees_with_oracle(&core.encode());
            }
        }
    }
}

/// `iab_gpp` 0.1.2 misreads publisher restrictions; ours must match the spec.
#[test]
fn publisher_restrictions_are_decoded_per_the_specification() {
    for encoding in [VendorEncoding::Bitfield, VendorEncoding::Ranges] {
        let core = TcCore {
            purpose_consents: vec![1, 3, 4, 7],
            vendor_consents: vec![1, 2, 3, 89, 755],
            encoding,
            restrictions: vec![
                Restriction {
                    purpose: 3,
                    restriction_type: 0,
                    vendors: vec![89, 90, 91],
                },
                Restriction {
                    purpose: 7,
                    restriction_type: 2,
                    vendors: vec![755],
                },
                Restriction {
                    purpose: 2,
                    restriction_type: 1,
                    vendors: vec![5, 9, 10, 11, 12],
                },
            ],
            ..TcCore::default()
        };
        let s = core.encode();
        assert_agrees_with_oracle(&s);
        let t = tcf::decode(&s).unwrap();
        assert_eq!(t.restrictions[0].kind, RestrictionKind::NotAllowed);
        assert_eq!(
            t.restrictions[1].kind,
            RestrictionKind::RequireLegitimateInterest
        );
        assert_eq!(t.restrictions[2].kind, RestrictionKind::RequireConsent);
        // Everything after the restrictions is still decoded right.
        assert_eq!(t.vendor_consents, set16(&[1, 2, 3, 89, 755]));
        // Vendor 1: consent, no restriction. 89: not allowed for purpose 3.
        // 755: must use legitimate interest for purpose 7, so not consent.
        assert!(t.vendor_may_use_consent_for(1, &[1, 3, 4, 7]));
        assert!(!t.vendor_may_use_consent_for(89, &[1, 3, 4, 7]));
        assert!(t.vendor_may_use_consent_for(89, &[1, 4]));
        assert!(!t.vendor_may_use_consent_for(755, &[7]));
        assert!(!t.vendor_may_use_consent_for(4, &[1]));
    }
}

/// A public example: this string appears with its expected decoding in the test
/// data of both `iab_gpp` (tests/data/tcfeuv2_with_publisher_purposes.json) and
/// `lib_tcstring` (src/decode/tcf_2.rs): purposes 1–3, vendors 2, 6, 8,
/// publisher purposes 3 and 16, CMP 27, policy version 2.
#[test]
fn public_example_string() {
    let s = "COvFyGBOvFyGBAbAAAENAPCAAOAAAAAAAAAAAEEUACCKAAA.ZAAgH9794ulA";
    let t = tcf::decode(s).unwrap();
    assert_eq!(t.purpose_consents, set8(&[1, 2, 3]));
    assert_eq!(t.vendor_consents, set16(&[2, 6, 8]));
    assert_eq!(t.vendor_legitimate_interests, set16(&[2, 6, 8]));
    assert_eq!(t.publisher_purpose_consents, set8(&[3, 16]));
    assert_eq!((t.cmp_id, t.policy_version), (27, 2));
    assert_agrees_with_oracle(s);
    // With a disclosed-vendors segment too (segment type 1 is skipped).
    let with_disclosed = "COvFyGBOvFyGBAbAAAENAPCAAOAAAAAAAAAAAEEUACCKAAA.IFoEUQQgAIQwgIwQABAEAAAAOIAACAIAAAAQAIAgEAACEAAAAAgAQBAAAAAAAGBAAgAAAAAAAFAAECAAAgAAQARAEQAAAAAJAAIAAgAAAYQEAAAQmAgBC3ZAYzUw";
    assert_eq!(
        tcf::decode(with_disclosed).unwrap().purpose_consents,
        set8(&[1, 2, 3])
    );
}

#[test]
fn malformed_strings_get_codes() {
    let good = tc_string(&[1, 3, 4, 7], &[1]);
    let cases: Vec<(String, ErrorCode)> = vec![
        (String::new(), ErrorCode::TcfEmpty),
        ("!!!".to_owned(), ErrorCode::TcfInvalidCharacter),
        (format!("{good}="), ErrorCode::TcfInvalidCharacter),
        (good[..20].to_owned(), ErrorCode::TcfTruncated),
        (
            "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA".to_owned(),
            ErrorCode::TcfUnsupportedVersion,
        ),
        (format!("{good}."), ErrorCode::TcfInvalidSegment),
        // Segment type 0 (a second core) is not a valid optional segment.
        (format!("{good}.{good}"), ErrorCode::TcfInvalidSegment),
        // Two publisher-TC segments.
        (
            format!("{good}.eAAAAAAAAAA.eAAAAAAAAAA"),
            ErrorCode::TcfInvalidSegment,
        ),
    ];
    for (s, want) in cases {
        assert_eq!(tcf::decode(&s), Err(want), "{s:?}");
    }
}

/// Range entries that would expand to millions of ids are refused before any
/// expansion happens.
#[test]
fn range_bombs_are_refused() {
    let mut w = BitWriter::default();
    w.push(2, 6);
    for _ in 0..2 {
        w.push(1_704_067_200 * 10, 36);
    }
    w.push(7, 12);
    w.push(1, 12);
    w.push(1, 6);
    w.push(4, 6);
    w.push(3, 6); // "EN"
    w.push(48, 12);
    w.push(4, 6);
    w.push(1, 1);
    w.push(0, 1);
    w.push(0, 12);
    w.push(0xFF_FFFF, 24);
    w.push(0, 24);
    w.push(0, 1);
    w.push(3, 6);
    w.push(4, 6); // "DE"
    // Vendor consents: range encoding, 600 entries of 1..=65535.
    w.push(65_535, 16);
    w.push(1, 1);
    w.push(600, 12);
    for _ in 0..600 {
        w.push(1, 1);
        w.push(1, 16);
        w.push(65_535, 16);
    }
    let s = w.to_base64url();
    assert!(s.len() < tcf::MAX_TC_STRING_LEN);
    const { assert!(600 * 65_535 > MAX_EXPANDED_IDS) };
    assert_eq!(tcf::decode(&s), Err(ErrorCode::TcfTooComplex));
}

#[test]
fn field_and_cookie_strings_are_intersected() {
    let field = tc_string(&[1, 3, 4, 7], &[1, 2]);
    let cookie = tc_string(&[1, 3, 4], &[2, 3]);
    let s = ConsentSignals::from_event_fields(None, None, Some(&field))
        .with_cookies(Some(&format!("euconsent-v2={cookie}")));
    let t = s.tcf.unwrap();
    assert_eq!(t.purpose_consents, set8(&[1, 3, 4]));
    assert_eq!(t.vendor_consents, set16(&[2]));
    assert!(s.errors.is_empty());
}

#[test]
fn malformed_field_is_a_tcf_error_and_no_summary() {
    let s = ConsentSignals::from_event_fields(None, None, Some("CPnotatcstring"));
    assert!(s.tcf.is_none());
    assert!(s.has_errors_from(SignalSource::Tcf));
    let text = format!("{:?} {:?}", s.errors, s.summary(&[]));
    assert!(!text.contains("CPnotatcstring"));
}
