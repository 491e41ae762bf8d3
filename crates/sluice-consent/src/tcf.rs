//! IAB TCF v2 (v2.2) TC strings: decoding into a [`TcfSummary`].
//!
//! The bit layout is decoded by the `iab_gpp` crate. Two things are done here
//! before the string reaches it, and both are deliberate:
//!
//! 1. **A structural pre-scan of the core segment** (`scan_core`). It checks the
//!    version, that every field is present, and adds up how many vendor ids the
//!    range entries expand to. A 2 KB string can declare hundreds of ranges of
//!    65 535 ids each; the decoder would expand them all (hundreds of MB, seconds of
//!    CPU) before we could look at the result. Strings whose ranges expand to more
//!    than [`MAX_EXPANDED_IDS`] ids are refused as `tcf_too_complex`.
//! 2. **Publisher restrictions are read by the pre-scan, not by `iab_gpp`.**
//!    `iab_gpp` 0.1.2 reads each restriction's vendor list as
//!    `MaxVendorId(16) + IsRange(1) + …`, while the TCF v2 specification has
//!    `NumEntries(12) + RangeEntry…` there. On a string with restrictions it
//!    returns the wrong vendors or fails outright (the differential tests against
//!    `lib_tcstring` show it). So the pre-scan decodes the restrictions itself and
//!    hands `iab_gpp` a copy of the core segment with `NumPubRestrictions = 0`.
//!
//! Only the core segment and the publisher-TC segment are decoded; the
//! disclosed-vendors and allowed-vendors segments say nothing about consent and
//! are skipped (which also removes their range expansions from the attack surface).
//!
//! Failure semantics: every failure is an [`ErrorCode`]; the string itself never
//! appears in an error, a log line or a panic message. The decoder call is wrapped
//! in `catch_unwind`, so a bug in the third-party decoder becomes
//! `tcf_decoder_panic` (no consent) instead of a crashed ingest worker.

use crate::signals::ErrorCode;
use iab_gpp::sections::SectionDecodeError;
use iab_gpp::sections::tcfeuv2::TcfEuV2;
use serde::Serialize;
use std::collections::BTreeSet;
use std::str::FromStr;

/// Longest TC string accepted. Real strings are a few hundred characters, rarely
/// above 2 000; the limit bounds the work done on hostile input.
pub const MAX_TC_STRING_LEN: usize = 8 * 1024;

/// Upper bound on vendor ids that the range entries of one core segment may
/// expand to (consents + legitimate interests + restrictions).
pub const MAX_EXPANDED_IDS: u64 = 4 * 65_536;

/// The consent facts sluice needs from a TC string; nothing that could identify
/// the user (the string has none) and no timestamps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TcfSummary {
    /// TCF policy version: 4 for TCF v2.2, 2 for v2.0/v2.1 strings.
    pub policy_version: u8,
    pub cmp_id: u16,
    /// Purposes (1–24; 1–11 defined by v2.2) the user consented to, for vendors.
    pub purpose_consents: BTreeSet<u8>,
    /// Purposes with legitimate-interest transparency established (not consent).
    pub purpose_legitimate_interests: BTreeSet<u8>,
    pub special_feature_optins: BTreeSet<u8>,
    /// Purpose 1 was not disclosed (publisher country without that requirement).
    pub purpose_one_treatment: bool,
    pub vendor_consents: BTreeSet<u16>,
    pub vendor_legitimate_interests: BTreeSet<u16>,
    /// Publisher restrictions, decoded per the TCF v2 specification.
    pub restrictions: Vec<TcfRestriction>,
    /// Publisher-TC segment: consents for the publisher's own processing.
    pub publisher_purpose_consents: BTreeSet<u8>,
}

/// One publisher restriction: a purpose, a restriction type and its vendors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TcfRestriction {
    pub purpose: u8,
    pub kind: RestrictionKind,
    pub vendors: BTreeSet<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestrictionKind {
    /// Type 0: the vendor may not process for this purpose at all.
    NotAllowed,
    /// Type 1: the vendor must rely on consent.
    RequireConsent,
    /// Type 2: the vendor must rely on legitimate interest (so not on consent).
    RequireLegitimateInterest,
    /// Type 3: undefined by the specification.
    Undefined,
}

impl RestrictionKind {
    fn from_bits(v: u64) -> Self {
        match v {
            0 => RestrictionKind::NotAllowed,
            1 => RestrictionKind::RequireConsent,
            2 => RestrictionKind::RequireLegitimateInterest,
            _ => RestrictionKind::Undefined,
        }
    }
}

// === impl TcfSummary ===

impl TcfSummary {
    /// True when the vendor has consent and no publisher restriction forbids it
    /// to rely on consent for any of `purposes`.
    pub fn vendor_may_use_consent_for(&self, vendor: u16, purposes: &[u8]) -> bool {
        self.vendor_consents.contains(&vendor)
            && !self.restrictions.iter().any(|r| {
                purposes.contains(&r.purpose)
                    && r.vendors.contains(&vendor)
                    && matches!(
                        r.kind,
                        RestrictionKind::NotAllowed | RestrictionKind::RequireLegitimateInterest
                    )
            })
    }

    /// The purposes of `required` the user did not consent to.
    pub fn missing_purposes(&self, required: &[u8]) -> Vec<u8> {
        required
            .iter()
            .copied()
            .filter(|p| !self.purpose_consents.contains(p))
            .collect()
    }

    /// What two strings for the same event agree on: when the event field and the
    /// cookie carry different strings, only consent present in both counts.
    pub fn intersect(&self, other: &TcfSummary) -> TcfSummary {
        let mut restrictions = self.restrictions.clone();
        restrictions.extend(other.restrictions.iter().cloned());
        TcfSummary {
            policy_version: self.policy_version.min(other.policy_version),
            cmp_id: self.cmp_id,
            purpose_consents: &self.purpose_consents & &other.purpose_consents,
            purpose_legitimate_interests: &self.purpose_legitimate_interests
                & &other.purpose_legitimate_interests,
            special_feature_optins: &self.special_feature_optins & &other.special_feature_optins,
            purpose_one_treatment: self.purpose_one_treatment || other.purpose_one_treatment,
            vendor_consents: &self.vendor_consents & &other.vendor_consents,
            vendor_legitimate_interests: &self.vendor_legitimate_interests
                & &other.vendor_legitimate_interests,
            restrictions,
            publisher_purpose_consents: &self.publisher_purpose_consents
                & &other.publisher_purpose_consents,
        }
    }
}

/// Decodes a bare TC string (`core[.segment…]`), as found in `gdpr_consent` or
/// the `euconsent-v2` cookie.
pub fn decode(tc_string: &str) -> Result<TcfSummary, ErrorCode> {
    let s = tc_string.trim();
    if s.is_empty() {
        return Err(ErrorCode::TcfEmpty);
    }
    if s.len() > MAX_TC_STRING_LEN {
        return Err(ErrorCode::TcfTooLong);
    }
    if !s.bytes().all(|b| b == b'.' || base64url_value(b).is_some()) {
        return Err(ErrorCode::TcfInvalidCharacter);
    }

    let mut segments = s.split('.');
    let core = segments.next().unwrap_or_default();
    let scan = scan_core(core)?;

    let mut publisher_tc: Option<&str> = None;
    for segment in segments {
        let Some(first) = segment.bytes().next().and_then(base64url_value) else {
            return Err(ErrorCode::TcfInvalidSegment);
        };
        match first >> 3 {
            // Disclosed vendors / allowed vendors: no consent information.
            1 | 2 => {}
            3 if publisher_tc.is_none() => publisher_tc = Some(segment),
            _ => return Err(ErrorCode::TcfInvalidSegment),
        }
    }

    let mut for_decoder = scan.core_without_restrictions;
    if let Some(p) = publisher_tc {
        for_decoder.push('.');
        for_decoder.push_str(p);
    }

    let decoded = std::panic::catch_unwind(|| TcfEuV2::from_str(&for_decoder))
        .map_err(|_| ErrorCode::TcfDecoderPanic)?
        .map_err(|e| map_decode_error(&e))?;

    let core = &decoded.core;
    Ok(TcfSummary {
        policy_version: core.policy_version,
        cmp_id: core.cmp_id,
        purpose_consents: small_ids(&core.purpose_consents),
        purpose_legitimate_interests: small_ids(&core.purpose_legitimate_interests),
        special_feature_optins: small_ids(&core.special_feature_optins),
        purpose_one_treatment: core.purpose_one_treatment,
        vendor_consents: core.vendor_consents.clone(),
        vendor_legitimate_interests: core.vendor_legitimate_interests.clone(),
        restrictions: scan.restrictions,
        publisher_purpose_consents: decoded
            .publisher_purposes
            .as_ref()
            .map(|p| small_ids(&p.consents))
            .unwrap_or_default(),
    })
}

/// Purpose and feature ids are 1–24 by construction of the fixed bitfields.
fn small_ids(ids: &BTreeSet<u16>) -> BTreeSet<u8> {
    ids.iter().filter_map(|id| u8::try_from(*id).ok()).collect()
}

fn map_decode_error(e: &SectionDecodeError) -> ErrorCode {
    match e {
        SectionDecodeError::Read { .. } | SectionDecodeError::UnexpectedEndOfString(_) => {
            ErrorCode::TcfTruncated
        }
        SectionDecodeError::InvalidCharacter { .. } => ErrorCode::TcfInvalidCharacter,
        SectionDecodeError::InvalidSectionVersion { .. } => ErrorCode::TcfUnsupportedVersion,
        SectionDecodeError::UnknownSegmentVersion { .. }
        | SectionDecodeError::UnknownSegmentType { .. }
        | SectionDecodeError::DuplicateSegmentType { .. } => ErrorCode::TcfInvalidSegment,
        _ => ErrorCode::TcfDecodeFailed,
    }
}

/// The value of one base64url character (the TC string alphabet).
pub(crate) fn base64url_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Reads big-endian bit fields out of base64url text, six bits per character.
struct BitReader<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(text: &'a str) -> Self {
        BitReader {
            text: text.as_bytes(),
            pos: 0,
        }
    }

    fn bit_len(&self) -> usize {
        self.text.len() * 6
    }

    fn bit_at(&self, i: usize) -> Result<bool, ErrorCode> {
        let c = self
            .text
            .get(i / 6)
            .copied()
            .ok_or(ErrorCode::TcfTruncated)?;
        let v = base64url_value(c).ok_or(ErrorCode::TcfInvalidCharacter)?;
        Ok((v >> (5 - i % 6)) & 1 == 1)
    }

    fn read(&mut self, width: u32) -> Result<u64, ErrorCode> {
        let mut v = 0u64;
        for _ in 0..width {
            v = (v << 1) | u64::from(self.bit_at(self.pos)?);
            self.pos += 1;
        }
        Ok(v)
    }

    fn skip(&mut self, bits: usize) -> Result<(), ErrorCode> {
        if self.pos + bits > self.bit_len() {
            return Err(ErrorCode::TcfTruncated);
        }
        self.pos += bits;
        Ok(())
    }
}

/// What the pre-scan learned about a core segment.
struct CoreScan {
    restrictions: Vec<TcfRestriction>,
    /// The core segment re-encoded with `NumPubRestrictions = 0`, or the original
    /// text when it had none.
    core_without_restrictions: String,
}

/// Bits from `LastUpdated` through `PublisherCC`, after the 6-bit version and
/// the 36-bit `Created` field (TCF v2 core segment layout).
const CORE_HEADER_BITS_AFTER_CREATED: usize =
    36 + 12 + 12 + 6 + 12 + 12 + 6 + 1 + 1 + 12 + 24 + 24 + 1 + 12;

fn scan_core(core: &str) -> Result<CoreScan, ErrorCode> {
    let mut r = BitReader::new(core);
    let version = r.read(6)?;
    if version != 2 {
        return Err(ErrorCode::TcfUnsupportedVersion);
    }
    r.skip(36 + CORE_HEADER_BITS_AFTER_CREATED)?;

    let mut expanded: u64 = 0;
    for _vendor_section in 0..2 {
        let max_vendor_id = r.read(16)?;
        let is_range = r.read(1)? == 1;
        if is_range {
            scan_range_entries(&mut r, &mut expanded, None)?;
        } else {
            r.skip(usize::try_from(max_vendor_id).unwrap_or(usize::MAX))?;
        }
    }

    let restrictions_at = r.pos;
    let count = r.read(12)?;
    let mut restrictions = Vec::new();
    for _ in 0..count {
        let purpose = u8::try_from(r.read(6)?).unwrap_or(u8::MAX);
        let kind = RestrictionKind::from_bits(r.read(2)?);
        let mut vendors = BTreeSet::new();
        scan_range_entries(&mut r, &mut expanded, Some(&mut vendors))?;
        restrictions.push(TcfRestriction {
            purpose,
            kind,
            vendors,
        });
    }

    let core_without_restrictions = if count == 0 {
        core.to_owned()
    } else {
        let mut bits: Vec<bool> = Vec::with_capacity(restrictions_at + 12);
        for i in 0..restrictions_at {
            bits.push(r.bit_at(i)?);
        }
        bits.extend(std::iter::repeat_n(false, 12));
        encode_bits(&bits)
    };

    Ok(CoreScan {
        restrictions,
        core_without_restrictions,
    })
}

/// `NumEntries(12)` then per entry `IsARange(1) Start(16) [End(16)]`. Adds the
/// number of ids the entries expand to, refusing before any expansion happens
/// when the total would pass [`MAX_EXPANDED_IDS`]; collects them when asked.
fn scan_range_entries(
    r: &mut BitReader<'_>,
    expanded: &mut u64,
    mut collect: Option<&mut BTreeSet<u16>>,
) -> Result<(), ErrorCode> {
    let entries = r.read(12)?;
    for _ in 0..entries {
        let is_range = r.read(1)? == 1;
        let start = r.read(16)?;
        let end = if is_range { r.read(16)? } else { start };
        let size = if end >= start { end - start + 1 } else { 0 };
        *expanded += size;
        if *expanded > MAX_EXPANDED_IDS {
            return Err(ErrorCode::TcfTooComplex);
        }
        if let Some(set) = collect.as_deref_mut() {
            for id in start..=end {
                if let Ok(id) = u16::try_from(id) {
                    set.insert(id);
                }
            }
        }
    }
    Ok(())
}

/// Bits to base64url text, zero-padded to a whole character.
fn encode_bits(bits: &[bool]) -> String {
    bits.chunks(6)
        .map(|chunk| {
            let mut v = 0usize;
            for i in 0..6 {
                v = (v << 1) | usize::from(chunk.get(i).copied().unwrap_or(false));
            }
            char::from(BASE64URL[v])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_cheap_garbage_with_codes() {
        assert_eq!(decode(""), Err(ErrorCode::TcfEmpty));
        assert_eq!(decode("   "), Err(ErrorCode::TcfEmpty));
        assert_eq!(decode("CP$x"), Err(ErrorCode::TcfInvalidCharacter));
        assert_eq!(decode("CPX"), Err(ErrorCode::TcfTruncated));
        assert_eq!(
            decode(&"A".repeat(MAX_TC_STRING_LEN + 1)),
            Err(ErrorCode::TcfTooLong)
        );
        // A TCF v1 consent string starts with version 1 ("B…").
        assert_eq!(
            decode("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA"),
            Err(ErrorCode::TcfUnsupportedVersion)
        );
    }

    #[test]
    fn bit_reader_reads_big_endian_six_bit_groups() {
        // "C" = 2 = 000010, "P" = 15 = 001111
        let mut r = BitReader::new("CP");
        assert_eq!(r.read(6).unwrap(), 2);
        assert_eq!(r.read(3).unwrap(), 1);
        assert_eq!(r.read(3).unwrap(), 7);
        assert_eq!(r.read(1), Err(ErrorCode::TcfTruncated));
    }

    #[test]
    fn encode_bits_round_trips_through_the_reader() {
        let bits = [true, false, true, true, false, false, true, true, true];
        let text = encode_bits(&bits);
        let mut r = BitReader::new(&text);
        for b in bits {
            assert_eq!(r.read(1).unwrap() == 1, b);
        }
    }
}
