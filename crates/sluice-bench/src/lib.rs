//! sluice's CPU path on the official SDKs' benchmark workload.
//!
//! `bench/sdk/` runs Meta's Python and Node SDKs over 100,000 Purchase events built by
//! a normative deterministic generator: build the events, normalize and SHA-256 the
//! personal data, serialize request bodies of 1,000 events, send nothing. This crate
//! does the same work through sluice's own types and normaliser:
//!
//! * [`generator`] reproduces the generator exactly (checked against the README's
//!   check values in `tests/generator.rs`);
//! * [`CpuPath`] fills one reused [`ServerEvent`] per raw event (strings and vectors
//!   keep their capacity), hashes `user_data` with `sluice-normalize`, and
//! * [`BodyWriter`] serializes the events with the model's JSON writer
//!   (`ServerEvent::write_json`, byte-identical to serde_json's typed output, no
//!   `serde_json::Value`) into one reused buffer as the Graph body
//!   `{"data":[…],"access_token":"…"}`.
//!
//! After the first batch the hot path does not allocate in [`Mode::Fields`] (the
//! default; only `phonenumber`'s parser does, for the numbers that need it).
//! [`Mode::UserData`] goes the gateway's way: raw values pushed into the event's
//! `UserData` (one small allocation each), then `hash_user_data_with` (the
//! gateway's `hash_user_data` without its scratch allocation). Both give the same bytes.

pub mod generator;
pub mod proc_stats;

use generator::{EVENT_NAME, RawEvent};
use serde::Serialize;
use sluice_core::user_data::HashedValues;
use sluice_core::{
    ActionSource, Content, CustomData, HashedKey, IdValue, Pii, ServerEvent, UserData,
    UserDataValue,
};
use sluice_normalize::{
    CountryCode, FieldHash, FieldRejection, NormalizeOptions, Normalized, PiiField, hash_field,
    normalize_currency, normalize_into, sha256,
};

/// How `user_data` is normalised and hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `hash_field` per value, straight from the raw strings into the event's
    /// `user_data` (no raw copy inside the event, no allocation).
    Fields,
    /// Raw values pushed into `user_data` as `UserDataValue::Raw`, then
    /// `sluice_normalize::hash_user_data_with` (the gateway's step).
    UserData,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Fields => "fields",
            Mode::UserData => "user-data",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "fields" => Some(Mode::Fields),
            "user-data" => Some(Mode::UserData),
            _ => None,
        }
    }
}

/// The hashed keys the workload fills, with the raw value of each.
fn hashed_inputs(raw: &RawEvent) -> [(HashedKey, PiiField, &str); 9] {
    [
        (HashedKey::Em, PiiField::Email, raw.em.as_str()),
        (HashedKey::Ph, PiiField::Phone, raw.ph.as_str()),
        (HashedKey::Fn, PiiField::FirstName, raw.first_name.as_str()),
        (HashedKey::Ln, PiiField::LastName, raw.last_name.as_str()),
        (HashedKey::Ct, PiiField::City, raw.ct.as_str()),
        (HashedKey::St, PiiField::State, raw.st.as_str()),
        (HashedKey::Zp, PiiField::Zip, raw.zp.as_str()),
        (HashedKey::Country, PiiField::Country, raw.country.as_str()),
        (
            HashedKey::ExternalId,
            PiiField::ExternalId,
            raw.external_id.as_str(),
        ),
    ]
}

/// Turns raw events into wire-ready [`ServerEvent`]s, reusing one event.
pub struct CpuPath {
    /// The event of the last [`CpuPath::fill`].
    pub event: ServerEvent,
    mode: Mode,
    opts: NormalizeOptions,
    scratch: String,
    rejections: Vec<FieldRejection>,
    /// Values refused by the normaliser (dropped from the event), over all events.
    pub rejected_values: u64,
    /// Currencies refused (left out of `custom_data`), over all events.
    pub rejected_currencies: u64,
}

impl CpuPath {
    /// `opts` is the gateway's configuration (no default region here: every event
    /// carries its `country`).
    pub fn new(mode: Mode, opts: NormalizeOptions) -> Self {
        let mut event = ServerEvent::builder(EVENT_NAME, 0, ActionSource::Website).build();
        event.custom_data = Some(CustomData {
            contents: Some(vec![
                Content::default(),
                Content::default(),
                Content::default(),
            ]),
            ..CustomData::default()
        });
        CpuPath {
            event,
            mode,
            opts,
            scratch: String::with_capacity(256),
            rejections: Vec::new(),
            rejected_values: 0,
            rejected_currencies: 0,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Clear and refill the event from `raw`: normalised, hashed, ready to serialize.
    pub fn fill(&mut self, raw: &RawEvent) -> &ServerEvent {
        let ev = &mut self.event;
        set(&mut ev.event_name, EVENT_NAME);
        ev.event_time = raw.event_time;
        ev.action_source = ActionSource::Website;
        set_opt(&mut ev.event_source_url, &raw.event_source_url);
        set_opt(&mut ev.event_id, &raw.event_id);

        match self.mode {
            Mode::Fields => {
                self.rejected_values +=
                    fill_user_data_fields(&mut ev.user_data, raw, &self.opts, &mut self.scratch);
            }
            Mode::UserData => {
                let ud = &mut ev.user_data;
                for (key, _, input) in hashed_inputs(raw) {
                    let values = ud.hashed_mut(key);
                    values.clear();
                    values.push(UserDataValue::Raw(Pii::new(input)));
                }
                self.rejections.clear();
                sluice_normalize::hash_user_data_with(
                    ud,
                    &self.opts,
                    &mut self.scratch,
                    &mut self.rejections,
                );
                self.rejected_values += self.rejections.len() as u64;
            }
        }
        let ud = &mut ev.user_data;
        set_opt(&mut ud.client_ip_address, &raw.client_ip_address);
        set_opt(&mut ud.client_user_agent, raw.client_user_agent);
        set_opt(&mut ud.fbc, &raw.fbc);
        set_opt(&mut ud.fbp, &raw.fbp);

        let cd = ev.custom_data.get_or_insert_with(CustomData::default);
        cd.value = serde_json::Number::from_f64(raw.value_cents as f64 / 100.0);
        match normalize_currency(raw.currency) {
            Ok(code) => set_opt(&mut cd.currency, code.as_str()),
            Err(_) => {
                cd.currency = None;
                self.rejected_currencies += 1;
            }
        }
        let contents = cd.contents.get_or_insert_with(Vec::new);
        contents.resize_with(raw.contents.len(), Content::default);
        for (content, rc) in contents.iter_mut().zip(&raw.contents) {
            match &mut content.id {
                Some(IdValue::Str(id)) => set(id, &rc.id),
                slot => *slot = Some(IdValue::Str(rc.id.clone())),
            }
            content.quantity = Some(rc.quantity.into());
            content.item_price =
                serde_json::Number::from_f64(f64::from(rc.item_price_cents) / 100.0);
        }
        set_opt(&mut cd.order_id, &raw.order_id);
        &self.event
    }
}

/// Hash the nine keys straight from the raw strings; returns the number of values
/// refused. Same rules and results as `hash_user_data` (the event's country is
/// normalised first and selects the phone/state/ZIP rules).
fn fill_user_data_fields(
    ud: &mut UserData,
    raw: &RawEvent,
    opts: &NormalizeOptions,
    scratch: &mut String,
) -> u64 {
    let mut rejected = 0;
    let country = &mut ud.country;
    country.clear();
    let mut event_country = None;
    match normalize_into(PiiField::Country, &raw.country, opts, scratch) {
        Ok(Normalized::Text(text)) => {
            event_country = CountryCode::from_alpha2(text);
            country.push(UserDataValue::Sha256(sha256(text)));
        }
        Ok(Normalized::Sha256(d)) => country.push(UserDataValue::Sha256(d)),
        Ok(Normalized::Md5(d)) => country.push(UserDataValue::Md5(d)),
        Ok(Normalized::Verbatim(v)) => country.push(UserDataValue::Verbatim(v.to_owned())),
        Ok(Normalized::Empty) => {}
        Err(_) => rejected += 1,
    }
    let opts = match opts.event_country {
        Some(_) => *opts,
        None => opts.with_event_country(event_country),
    };
    for (key, field, input) in hashed_inputs(raw) {
        if key == HashedKey::Country {
            continue;
        }
        let values = ud.hashed_mut(key);
        if !push_hash(values, field, input, &opts, scratch) {
            rejected += 1;
        }
    }
    rejected
}

/// Replace `values` with the hash of `input`; false when the value was refused.
#[inline]
fn push_hash(
    values: &mut HashedValues,
    field: PiiField,
    input: &str,
    opts: &NormalizeOptions,
    scratch: &mut String,
) -> bool {
    values.clear();
    match hash_field(field, input, opts, scratch) {
        Ok(FieldHash::Sha256(d)) => values.push(UserDataValue::Sha256(d)),
        Ok(FieldHash::Md5(d)) => values.push(UserDataValue::Md5(d)),
        Ok(FieldHash::Verbatim(v)) => values.push(UserDataValue::Verbatim(v.to_owned())),
        Ok(FieldHash::Empty) => {}
        Err(_) => return false,
    }
    true
}

fn set(s: &mut String, value: &str) {
    s.clear();
    s.push_str(value);
}

fn set_opt(slot: &mut Option<String>, value: &str) {
    match slot {
        Some(s) => set(s, value),
        None => *slot = Some(value.to_owned()),
    }
}

/// Serializes events into one reused buffer as a Graph request body:
/// `{"data":[<event>,…],"access_token":"…"}`.
pub struct BodyWriter {
    buf: Vec<u8>,
    events: usize,
    access_token: String,
}

impl BodyWriter {
    pub fn new(access_token: &str, capacity: usize) -> Self {
        BodyWriter {
            buf: Vec::with_capacity(capacity),
            events: 0,
            access_token: access_token.to_owned(),
        }
    }

    /// Start a new body (the buffer keeps its capacity).
    pub fn begin(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(b"{\"data\":[");
        self.events = 0;
    }

    /// Append one event with the model's JSON writer ([`ServerEvent::write_json`]: the
    /// same bytes as serde_json, which the tests check).
    pub fn push(&mut self, event: &ServerEvent) {
        if self.events > 0 {
            self.buf.push(b',');
        }
        event.write_json(&mut self.buf);
        self.events += 1;
    }

    /// Append one event through serde_json (the reference the writer is checked
    /// against; `cpu-path --serde`).
    pub fn push_serde<T: Serialize>(&mut self, event: &T) -> serde_json::Result<()> {
        if self.events > 0 {
            self.buf.push(b',');
        }
        serde_json::to_writer(&mut self.buf, event)?;
        self.events += 1;
        Ok(())
    }

    /// Close the body and return it.
    pub fn finish(&mut self) -> serde_json::Result<&[u8]> {
        self.buf.extend_from_slice(b"],\"access_token\":");
        serde_json::to_writer(&mut self.buf, &self.access_token)?;
        self.buf.push(b'}');
        Ok(&self.buf)
    }

    /// Events in the current body.
    pub fn events(&self) -> usize {
        self.events
    }

    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}
