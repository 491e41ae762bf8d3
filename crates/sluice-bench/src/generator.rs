//! The deterministic raw-input generator of `bench/sdk/README.md` (normative).
//!
//! The official SDK scripts (`workload.py`, `workload.js`) and this crate must build
//! byte-identical raw inputs, so the PRNG, the 36 draws per event, their order, the
//! pools and the templates follow the README exactly. [`RawEvent::fill`] reuses the
//! event's strings: after the first event no allocation happens here.

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

/// Default seed (`SDK_BENCH_SEED` unset or `0`).
pub const DEFAULT_SEED: u32 = 0x2545_F491;
/// `event_time` of event 0 (Unix seconds).
pub const BASE_TIME: i64 = 1_795_860_000;
/// Draws per event.
pub const DRAWS_PER_EVENT: usize = 36;

/// Marsaglia's xorshift32 with shifts (13, 17, 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XorShift32 {
    state: u32,
}

impl XorShift32 {
    /// A generator; seed `0` is replaced by [`DEFAULT_SEED`].
    pub const fn new(seed: u32) -> Self {
        XorShift32 {
            state: if seed == 0 { DEFAULT_SEED } else { seed },
        }
    }

    /// The next output (also the new state).
    #[inline]
    #[allow(clippy::should_implement_trait)] // named as in the README, not an iterator
    pub fn next(&mut self) -> u32 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        x
    }

    /// `next() % k` (plain modulo; the bias is part of the specification).
    #[inline]
    pub fn below(&mut self, k: u32) -> u32 {
        self.next() % k
    }

    /// The current state.
    pub const fn state(&self) -> u32 {
        self.state
    }
}

pub const FIRST_NAMES: [&str; 24] = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Mohammed",
    "Aiko",
    "Jos\u{e9}",
    "Zo\u{eb}",
];

pub const LAST_NAMES: [&str; 20] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Moore",
    "O'Brien",
    "Van der Berg",
    "Nakamura",
    "M\u{fc}ller",
];

/// One location: city, state, country (ISO 3166-1 alpha-2), phone calling code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub city: &'static str,
    pub state: &'static str,
    pub country: &'static str,
    pub calling_code: &'static str,
}

const fn loc(
    city: &'static str,
    state: &'static str,
    country: &'static str,
    calling_code: &'static str,
) -> Location {
    Location {
        city,
        state,
        country,
        calling_code,
    }
}

pub const LOCATIONS: [Location; 16] = [
    loc("New York", "NY", "US", "1"),
    loc("Los Angeles", "CA", "US", "1"),
    loc("Chicago", "IL", "US", "1"),
    loc("Houston", "TX", "US", "1"),
    loc("Phoenix", "AZ", "US", "1"),
    loc("San Francisco", "CA", "US", "1"),
    loc("St. Louis", "MO", "US", "1"),
    loc("Winston-Salem", "NC", "US", "1"),
    loc("Seattle", "WA", "US", "1"),
    loc("Miami", "FL", "US", "1"),
    loc("Toronto", "ON", "CA", "1"),
    loc("London", "LND", "GB", "44"),
    loc("Berlin", "BE", "DE", "49"),
    loc("M\u{fc}nchen", "BY", "DE", "49"),
    loc("Paris", "IDF", "FR", "33"),
    loc("Sydney", "NSW", "AU", "61"),
];

pub const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
];

pub const CURRENCIES: [&str; 4] = ["USD", "usd", "EUR", " Gbp "];

/// One item of `custom_data.contents`, as drawn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawContent {
    /// `SKU-{sku:05d}`.
    pub id: String,
    pub quantity: u32,
    pub item_price_cents: u32,
}

/// The raw (un-normalised) inputs of one event, as the SDK scripts build them.
///
/// Serializes as the README's `--dump-raw` record (same keys, same order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawEvent {
    pub n: u64,
    pub event_time: i64,
    pub event_id: String,
    pub event_source_url: String,
    pub em: String,
    pub ph: String,
    pub first_name: String,
    pub last_name: String,
    pub ct: String,
    pub st: String,
    pub zp: String,
    pub country: String,
    pub external_id: String,
    pub client_ip_address: String,
    pub client_user_agent: &'static str,
    pub fbc: String,
    pub fbp: String,
    pub currency: &'static str,
    pub value_cents: u64,
    pub contents: [RawContent; 3],
    pub order_id: String,
}

pub const EVENT_NAME: &str = "Purchase";
pub const ACTION_SOURCE: &str = "website";

impl RawEvent {
    /// Draw event `n` from `rng` (exactly 36 draws) and format it into `self`,
    /// reusing every string's capacity.
    pub fn fill(&mut self, rng: &mut XorShift32, n: u64) {
        // --- the 36 draws, in the normative order ---
        let location = rng.below(16) as usize;
        let first = rng.below(24) as usize;
        let last = rng.below(20) as usize;
        let em_style = rng.below(4);
        let fn_style = rng.below(4);
        let ln_style = rng.below(4);
        let ct_style = rng.below(4);
        let st_style = rng.below(3);
        let country_style = rng.below(3);
        let area = 200 + rng.below(800);
        let exch = rng.below(1000);
        let line = rng.below(10_000);
        let ph_style = rng.below(4);
        let zip5 = rng.below(100_000);
        let zip_style = rng.below(3);
        let plus4 = rng.below(10_000);
        let ip_kind = rng.below(4);
        let a = 1 + rng.below(223);
        let b = rng.below(256);
        let c = rng.below(256);
        let d = 1 + rng.below(254);
        let ua = USER_AGENTS[rng.below(4) as usize];
        let fbc_age = rng.below(86_400_000);
        let fbc_tok = rng.next();
        let fbp_age = rng.below(2_592_000_000);
        let fbp_rand = rng.next();
        let currency = CURRENCIES[rng.below(4) as usize];
        let mut value_cents = 0u64;
        for content in &mut self.contents {
            let sku = rng.below(100_000);
            let qty = 1 + rng.below(3);
            let price_cents = 100 + rng.below(49_900);
            content.id.clear();
            content.id.push_str("SKU-");
            push_dec_pad(&mut content.id, u64::from(sku), 5);
            content.quantity = qty;
            content.item_price_cents = price_cents;
            value_cents += u64::from(qty) * u64::from(price_cents);
        }

        // --- formatting ---
        self.n = n;
        self.event_time = BASE_TIME + (n / 10) as i64;
        set(&mut self.event_id, "evt-");
        push_dec(&mut self.event_id, n);
        set(&mut self.event_source_url, "https://shop");
        push_dec(&mut self.event_source_url, n % 7);
        self.event_source_url
            .push_str(".example.com/checkout?order=");
        push_dec(&mut self.event_source_url, n);

        let em = &mut self.em;
        em.clear();
        match em_style {
            0 => {
                em.push_str("user");
                push_dec(em, n);
                em.push_str("@example");
                push_dec(em, n % 97);
                em.push_str(".com");
            }
            1 => {
                em.push_str("User");
                push_dec(em, n);
                em.push_str("@Example");
                push_dec(em, n % 97);
                em.push_str(".COM");
            }
            2 => {
                em.push_str("  USER.");
                push_dec(em, n);
                em.push_str("@EXAMPLE");
                push_dec(em, n % 97);
                em.push_str(".COM ");
            }
            _ => {
                em.push_str("\tuser_");
                push_dec(em, n);
                em.push_str("@Mail");
                push_dec(em, n % 13);
                em.push_str(".Example.org\n");
            }
        }

        let ph = &mut self.ph;
        let cc = LOCATIONS[location].calling_code;
        let (area, exch, line) = (u64::from(area), u64::from(exch), u64::from(line));
        ph.clear();
        match ph_style {
            0 => {
                ph.push('+');
                ph.push_str(cc);
                ph.push_str(" (");
                push_dec(ph, area);
                ph.push_str(") ");
                push_dec_pad(ph, exch, 3);
                ph.push('-');
                push_dec_pad(ph, line, 4);
            }
            1 => {
                ph.push_str(cc);
                push_dec(ph, area);
                push_dec_pad(ph, exch, 3);
                push_dec_pad(ph, line, 4);
            }
            2 => {
                ph.push_str("00");
                ph.push_str(cc);
                ph.push(' ');
                push_dec(ph, area);
                ph.push(' ');
                push_dec_pad(ph, exch, 3);
                ph.push(' ');
                push_dec_pad(ph, line, 4);
            }
            _ => {
                ph.push('+');
                ph.push_str(cc);
                ph.push('-');
                push_dec(ph, area);
                ph.push('-');
                push_dec_pad(ph, exch, 3);
                ph.push('-');
                push_dec_pad(ph, line, 4);
            }
        }

        // The pools are small: every styled variant is built once (same strings).
        let variants = &*VARIANTS;
        set(
            &mut self.first_name,
            &variants.first[first][fn_style as usize],
        );
        set(&mut self.last_name, &variants.last[last][ln_style as usize]);
        set(&mut self.ct, &variants.city[location][ct_style as usize]);
        // st and country: style 0 as is, 1 lower-cased, 2 one space each side.
        let st_style = [0, 2, 4][st_style as usize];
        set(&mut self.st, &variants.state[location][st_style]);
        let country_style = [0, 2, 4][country_style as usize];
        set(
            &mut self.country,
            &variants.country[location][country_style],
        );

        let zp = &mut self.zp;
        zp.clear();
        match zip_style {
            0 => push_dec_pad(zp, u64::from(zip5), 5),
            1 => {
                push_dec_pad(zp, u64::from(zip5), 5);
                zp.push('-');
                push_dec_pad(zp, u64::from(plus4), 4);
            }
            _ => {
                zp.push(' ');
                push_dec_pad(zp, u64::from(zip5), 5);
                zp.push(' ');
            }
        }

        set(&mut self.external_id, "ext-");
        push_dec(&mut self.external_id, n);

        let ip = &mut self.client_ip_address;
        ip.clear();
        if ip_kind == 3 {
            ip.push_str("2001:db8:");
            push_hex(ip, u64::from(a * 256 + b), 0);
            ip.push_str("::");
            push_hex(ip, u64::from(c * 256 + d), 0);
        } else {
            for (i, part) in [a, b, c, d].into_iter().enumerate() {
                if i > 0 {
                    ip.push('.');
                }
                push_dec(ip, u64::from(part));
            }
        }
        self.client_user_agent = ua;

        let millis = self.event_time * 1000;
        set(&mut self.fbc, "fb.1.");
        push_dec(&mut self.fbc, (millis - i64::from(fbc_age)) as u64);
        self.fbc.push_str(".IwAR");
        push_hex(&mut self.fbc, u64::from(fbc_tok), 8);
        set(&mut self.fbp, "fb.1.");
        push_dec(&mut self.fbp, (millis - i64::from(fbp_age)) as u64);
        self.fbp.push('.');
        push_dec(&mut self.fbp, u64::from(fbp_rand));

        self.currency = currency;
        self.value_cents = value_cents;
        set(&mut self.order_id, "order-");
        push_dec(&mut self.order_id, n);
    }
}

/// Field-by-field like `json.dumps(raw)` in `workload.py --dump-raw`.
impl Serialize for RawEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Contents<'a>(&'a [RawContent; 3]);
        impl Serialize for Contents<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter().map(|c| ContentRecord {
                    id: &c.id,
                    quantity: c.quantity,
                    item_price_cents: c.item_price_cents,
                }))
            }
        }
        #[derive(Serialize)]
        struct ContentRecord<'a> {
            id: &'a str,
            quantity: u32,
            item_price_cents: u32,
        }

        let mut s = serializer.serialize_struct("RawEvent", 23)?;
        s.serialize_field("n", &self.n)?;
        s.serialize_field("event_name", EVENT_NAME)?;
        s.serialize_field("event_time", &self.event_time)?;
        s.serialize_field("event_id", &self.event_id)?;
        s.serialize_field("event_source_url", &self.event_source_url)?;
        s.serialize_field("action_source", ACTION_SOURCE)?;
        s.serialize_field("em", &self.em)?;
        s.serialize_field("ph", &self.ph)?;
        s.serialize_field("fn", &self.first_name)?;
        s.serialize_field("ln", &self.last_name)?;
        s.serialize_field("ct", &self.ct)?;
        s.serialize_field("st", &self.st)?;
        s.serialize_field("zp", &self.zp)?;
        s.serialize_field("country", &self.country)?;
        s.serialize_field("external_id", &self.external_id)?;
        s.serialize_field("client_ip_address", &self.client_ip_address)?;
        s.serialize_field("client_user_agent", self.client_user_agent)?;
        s.serialize_field("fbc", &self.fbc)?;
        s.serialize_field("fbp", &self.fbp)?;
        s.serialize_field("currency", self.currency)?;
        s.serialize_field("value_cents", &self.value_cents)?;
        s.serialize_field("contents", &Contents(&self.contents))?;
        s.serialize_field("order_id", &self.order_id)?;
        s.end()
    }
}

/// Every `styled` variant (0-4) of every pool string, built once.
struct Variants {
    first: Vec<[String; 5]>,
    last: Vec<[String; 5]>,
    city: Vec<[String; 5]>,
    state: Vec<[String; 5]>,
    country: Vec<[String; 5]>,
}

static VARIANTS: std::sync::LazyLock<Variants> = std::sync::LazyLock::new(|| {
    let all = |s: &str| {
        std::array::from_fn(|style| {
            let mut out = String::new();
            styled(&mut out, s, style as u32);
            out
        })
    };
    Variants {
        first: FIRST_NAMES.iter().map(|s| all(s)).collect(),
        last: LAST_NAMES.iter().map(|s| all(s)).collect(),
        city: LOCATIONS.iter().map(|l| all(l.city)).collect(),
        state: LOCATIONS.iter().map(|l| all(l.state)).collect(),
        country: LOCATIONS.iter().map(|l| all(l.country)).collect(),
    }
});

fn set(s: &mut String, prefix: &str) {
    s.clear();
    s.push_str(prefix);
}

/// `styled(s, style)` of the README for fn/ln/ct (0 as is, 1 upper, 2 lower,
/// 3 two spaces before and one after); style 4 (st, country) is one space each side.
fn styled(out: &mut String, s: &str, style: u32) {
    out.clear();
    match style {
        0 => out.push_str(s),
        1 => s.chars().for_each(|c| out.extend(c.to_uppercase())),
        2 => s.chars().for_each(|c| out.extend(c.to_lowercase())),
        3 => {
            out.push_str("  ");
            out.push_str(s);
            out.push(' ');
        }
        _ => {
            out.push(' ');
            out.push_str(s);
            out.push(' ');
        }
    }
}

/// Decimal, left-padded with zeros to at least `width` digits.
#[inline]
pub fn push_dec_pad(out: &mut String, v: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(v);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

/// Decimal, no padding.
#[inline]
pub fn push_dec(out: &mut String, v: u64) {
    push_dec_pad(out, v, 1);
}

/// Lower-case hex, left-padded with zeros to at least `width` digits.
#[inline]
pub fn push_hex(out: &mut String, mut v: u64, width: usize) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [b'0'; 16];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(v & 0xf) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    let start = i.min(buf.len() - width.min(buf.len()));
    out.extend(buf[start..].iter().map(|&d| char::from(d)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_helpers() {
        let mut s = String::new();
        push_dec_pad(&mut s, 7, 5);
        s.push('|');
        push_dec(&mut s, 0);
        s.push('|');
        push_dec(&mut s, u64::MAX);
        s.push('|');
        push_hex(&mut s, 0x922, 0);
        s.push('|');
        push_hex(&mut s, 0xd9, 8);
        s.push('|');
        push_dec_pad(&mut s, 123_456, 3);
        assert_eq!(s, "00007|0|18446744073709551615|922|000000d9|123456");
    }

    #[test]
    fn styles() {
        let mut s = String::new();
        styled(&mut s, "Jos\u{e9}", 1);
        assert_eq!(s, "JOS\u{c9}");
        styled(&mut s, "M\u{fc}nchen", 2);
        assert_eq!(s, "m\u{fc}nchen");
        styled(&mut s, "Karen", 3);
        assert_eq!(s, "  Karen ");
        styled(&mut s, "CA", 4);
        assert_eq!(s, " CA ");
    }
}
