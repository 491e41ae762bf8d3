//! A small TCF v2 TC-string *encoder*, for tests only.
//!
//! It writes the core segment bit by bit as laid out in the IAB TCF v2 "TC String"
//! specification (field order and widths below), pads to a whole byte and encodes
//! base64url without padding. The tests decode its output with the production
//! decoder and with an independent crate, so a wrong field width here shows up as a
//! disagreement, not as a silently passing test.

#![allow(dead_code)]

/// Appends bits most-significant first.
#[derive(Default)]
pub struct BitWriter {
    bits: Vec<bool>,
}

impl BitWriter {
    pub fn push(&mut self, value: u64, width: u32) {
        for i in (0..width).rev() {
            self.bits.push((value >> i) & 1 == 1);
        }
    }

    pub fn push_bool(&mut self, b: bool) {
        self.bits.push(b);
    }

    pub fn len(&self) -> usize {
        self.bits.len()
    }

    /// Pads with zero bits to a byte boundary and encodes as unpadded base64url.
    pub fn to_base64url(&self) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bits = self.bits.clone();
        while !bits.len().is_multiple_of(8) {
            bits.push(false);
        }
        while !bits.len().is_multiple_of(6) {
            bits.push(false);
        }
        bits.chunks(6)
            .map(|c| {
                let v = c.iter().fold(0usize, |acc, b| (acc << 1) | usize::from(*b));
                ALPHABET[v] as char
            })
            .collect()
    }
}

/// How a vendor list is written: a bitfield up to the max id, or ranges.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum VendorEncoding {
    Bitfield,
    Ranges,
}

#[derive(Clone)]
pub struct Restriction {
    pub purpose: u8,
    pub restriction_type: u8,
    pub vendors: Vec<u16>,
}

/// The fields of a TC string core segment that the tests vary.
#[derive(Clone)]
pub struct TcCore {
    pub version: u8,
    pub created_ds: u64,
    pub cmp_id: u16,
    pub cmp_version: u16,
    pub consent_screen: u8,
    pub language: [u8; 2],
    pub vendor_list_version: u16,
    pub policy_version: u8,
    pub is_service_specific: bool,
    pub special_features: Vec<u8>,
    pub purpose_consents: Vec<u8>,
    pub purpose_li: Vec<u8>,
    pub purpose_one_treatment: bool,
    pub publisher_cc: [u8; 2],
    pub vendor_consents: Vec<u16>,
    pub vendor_li: Vec<u16>,
    pub encoding: VendorEncoding,
    pub restrictions: Vec<Restriction>,
    /// Publisher TC segment: publisher purpose consents (None = no segment).
    pub publisher_purposes: Option<Vec<u8>>,
}

impl Default for TcCore {
    fn default() -> Self {
        TcCore {
            version: 2,
            // 2024-01-01T00:00:00Z in deciseconds.
            created_ds: 1_704_067_200 * 10,
            cmp_id: 7,
            cmp_version: 1,
            consent_screen: 1,
            language: *b"EN",
            vendor_list_version: 48,
            policy_version: 4,
            is_service_specific: true,
            special_features: vec![],
            purpose_consents: vec![],
            purpose_li: vec![],
            purpose_one_treatment: false,
            publisher_cc: *b"DE",
            vendor_consents: vec![],
            vendor_li: vec![],
            encoding: VendorEncoding::Bitfield,
            restrictions: vec![],
            publisher_purposes: None,
        }
    }
}

fn push_letters(w: &mut BitWriter, letters: [u8; 2]) {
    for l in letters {
        w.push(u64::from(l.saturating_sub(b'A')), 6);
    }
}

fn push_flags(w: &mut BitWriter, set: &[u8], width: u32) {
    for i in 1..=width {
        w.push_bool(set.contains(&(i as u8)));
    }
}

/// Groups sorted ids into inclusive runs.
fn runs(ids: &[u16]) -> Vec<(u16, u16)> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for id in sorted {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == id => *end = id,
            _ => out.push((id, id)),
        }
    }
    out
}

fn push_range_entries(w: &mut BitWriter, ids: &[u16]) {
    let runs = runs(ids);
    w.push(runs.len() as u64, 12);
    for (start, end) in runs {
        if start == end {
            w.push_bool(false);
            w.push(u64::from(start), 16);
        } else {
            w.push_bool(true);
            w.push(u64::from(start), 16);
            w.push(u64::from(end), 16);
        }
    }
}

fn push_vendor_section(w: &mut BitWriter, ids: &[u16], encoding: VendorEncoding) {
    let max = ids.iter().copied().max().unwrap_or(0);
    w.push(u64::from(max), 16);
    match encoding {
        VendorEncoding::Bitfield => {
            w.push_bool(false);
            for id in 1..=max {
                w.push_bool(ids.contains(&id));
            }
        }
        VendorEncoding::Ranges => {
            w.push_bool(true);
            push_range_entries(w, ids);
        }
    }
}

impl TcCore {
    pub fn core_segment(&self) -> String {
        let mut w = BitWriter::default();
        w.push(u64::from(self.version), 6);
        w.push(self.created_ds, 36);
        w.push(self.created_ds, 36);
        w.push(u64::from(self.cmp_id), 12);
        w.push(u64::from(self.cmp_version), 12);
        w.push(u64::from(self.consent_screen), 6);
        push_letters(&mut w, self.language);
        w.push(u64::from(self.vendor_list_version), 12);
        w.push(u64::from(self.policy_version), 6);
        w.push_bool(self.is_service_specific);
        w.push_bool(false); // UseNonStandardTexts
        push_flags(&mut w, &self.special_features, 12);
        push_flags(&mut w, &self.purpose_consents, 24);
        push_flags(&mut w, &self.purpose_li, 24);
        w.push_bool(self.purpose_one_treatment);
        push_letters(&mut w, self.publisher_cc);
        push_vendor_section(&mut w, &self.vendor_consents, self.encoding);
        push_vendor_section(&mut w, &self.vendor_li, self.encoding);
        w.push(self.restrictions.len() as u64, 12);
        for r in &self.restrictions {
            w.push(u64::from(r.purpose), 6);
            w.push(u64::from(r.restriction_type), 2);
            push_range_entries(&mut w, &r.vendors);
        }
        w.to_base64url()
    }

    /// The full TC string: core, plus the publisher TC segment when set.
    pub fn encode(&self) -> String {
        let mut s = self.core_segment();
        if let Some(purposes) = &self.publisher_purposes {
            let mut w = BitWriter::default();
            w.push(3, 3); // SegmentType = publisher TC
            push_flags(&mut w, purposes, 24);
            push_flags(&mut w, &[], 24);
            w.push(0, 6); // NumCustomPurposes
            s.push('.');
            s.push_str(&w.to_base64url());
        }
        s
    }
}

/// A TC string whose core grants the given purposes and vendors.
pub fn tc_string(purposes: &[u8], vendors: &[u16]) -> String {
    TcCore {
        purpose_consents: purposes.to_vec(),
        vendor_consents: vendors.to_vec(),
        ..TcCore::default()
    }
    .encode()
}
