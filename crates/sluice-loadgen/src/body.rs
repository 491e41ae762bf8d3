//! Request bodies: one raw website `Purchase` per event, as a shop's backend
//! would post it to `/v1/events` (personal data not yet normalized or hashed).
//!
//! Every event gets a unique `event_id` (`lg<run>-<n>`), the current
//! `event_time`, and personal data drawn from small lists by a xorshift
//! generator, so the gateway's normalizer sees varied input (casing, spaces,
//! phone formats) and its dedup ledger sees only new keys. Bodies are written
//! straight into a reused buffer; [`measure_generation`] reports what that
//! costs per body, to keep in mind when reading the generator's CPU use.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

const FIRST_NAMES: [&str; 16] = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "Jennifer",
    "Michael",
    "Linda",
    "Elizabeth",
    "William",
    "Barbara",
    "Jessica",
    "Thomas",
    "Mohammed",
    "Aiko",
    "Jos\u{e9}",
    "Zo\u{eb}",
];

const LAST_NAMES: [&str; 16] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Wilson",
    "Anderson",
    "Taylor",
    "O'Brien",
    "Van der Berg",
    "Nakamura",
    "M\u{fc}ller",
];

/// City, state, country, phone prefix, area codes (national numbers).
const LOCATIONS: [(&str, &str, &str, &str, [&str; 2]); 8] = [
    ("New York", "NY", "US", "+1", ["212", "646"]),
    ("San Francisco", "CA", "US", "+1", ["415", "628"]),
    ("Chicago", "IL", "US", "+1", ["312", "773"]),
    ("Houston", "TX", "US", "+1", ["713", "832"]),
    ("Seattle", "WA", "US", "+1", ["206", "425"]),
    ("Miami", "FL", "US", "+1", ["305", "786"]),
    ("St. Louis", "MO", "US", "+1", ["314", "636"]),
    ("Winston-Salem", "NC", "US", "+1", ["336", "743"]),
];

const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
];

/// Title, brand, category.
const PRODUCTS: [(&str, &str, &str); 8] = [
    (
        "Merino crew-neck sweater, charcoal",
        "Northwind Apparel",
        "Apparel & Accessories > Clothing > Sweaters",
    ),
    (
        "Stainless steel insulated bottle 750 ml",
        "Contoso Outdoors",
        "Sporting Goods > Outdoor Recreation > Camping",
    ),
    (
        "Wireless noise-cancelling headphones",
        "Fabrikam Audio",
        "Electronics > Audio > Headphones",
    ),
    (
        "Organic cotton bath towel set (4 pcs)",
        "Tailspin Home",
        "Home & Garden > Linens & Bedding > Towels",
    ),
    (
        "Trail running shoes, men's, size 10",
        "Contoso Outdoors",
        "Apparel & Accessories > Shoes > Athletic Shoes",
    ),
    (
        "Cast-iron skillet 12 inch, pre-seasoned",
        "Tailspin Home",
        "Home & Garden > Kitchen & Dining > Cookware",
    ),
    (
        "Mechanical keyboard, tenkeyless, brown switches",
        "Fabrikam Audio",
        "Electronics > Computers > Keyboards",
    ),
    (
        "Leather card holder, tan",
        "Northwind Apparel",
        "Apparel & Accessories > Handbags & Wallets",
    ),
];

const CURRENCIES: [&str; 3] = ["USD", "usd", "EUR"];

/// Marsaglia xorshift64 (13, 7, 17): cheap and good enough to vary inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// What every body of a run has in common.
#[derive(Debug, Clone)]
pub struct BodySpec {
    /// Events per request: 1 posts a bare event object (with `pixel_id` on
    /// it); more posts `{"pixel_id": ..., "data": [...]}`.
    pub events_per_request: usize,
    pub pixel_id: String,
    /// Prefix of every `event_id`, unique per run (`lg<hex>-`).
    pub id_prefix: String,
}

/// Writes bodies into a reused buffer.
#[derive(Debug)]
pub struct BodyWriter {
    spec: BodySpec,
    rng: Rng,
    num: [u8; 20],
}

impl BodyWriter {
    pub fn new(spec: BodySpec, seed: u64) -> Self {
        BodyWriter {
            spec,
            rng: Rng::new(seed),
            num: [0; 20],
        }
    }

    pub fn spec(&self) -> &BodySpec {
        &self.spec
    }

    /// Writes one request body into `out` (cleared first). `first_n` is the
    /// sequence number of its first event; events get `first_n..first_n+k`.
    pub fn write(&mut self, out: &mut Vec<u8>, first_n: u64, now_s: i64) {
        out.clear();
        let k = self.spec.events_per_request.max(1);
        if k == 1 {
            self.event(out, first_n, now_s, true);
            return;
        }
        out.extend_from_slice(b"{\"pixel_id\":\"");
        out.extend_from_slice(self.spec.pixel_id.as_bytes());
        out.extend_from_slice(b"\",\"data\":[");
        for i in 0..k {
            if i > 0 {
                out.push(b',');
            }
            self.event(out, first_n + i as u64, now_s, false);
        }
        out.extend_from_slice(b"]}");
    }

    fn int(&mut self, out: &mut Vec<u8>, mut v: u64, width: usize) {
        let mut i = self.num.len();
        loop {
            i -= 1;
            self.num[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        while self.num.len() - i < width {
            i -= 1;
            self.num[i] = b'0';
        }
        out.extend_from_slice(&self.num[i..]);
    }

    fn styled(&mut self, out: &mut Vec<u8>, text: &str) {
        match self.rng.below(4) {
            0 => out.extend_from_slice(text.as_bytes()),
            1 => out.extend_from_slice(text.to_uppercase().as_bytes()),
            2 => out.extend_from_slice(text.to_lowercase().as_bytes()),
            _ => {
                out.extend_from_slice(b"  ");
                out.extend_from_slice(text.as_bytes());
                out.push(b' ');
            }
        }
    }

    fn event(&mut self, out: &mut Vec<u8>, n: u64, now_s: i64, with_pixel: bool) {
        let now_s = u64::try_from(now_s).unwrap_or(0);
        let (city, state, country, cc, areas) = self.rng.pick(&LOCATIONS);
        out.push(b'{');
        if with_pixel {
            out.extend_from_slice(b"\"pixel_id\":\"");
            out.extend_from_slice(self.spec.pixel_id.as_bytes());
            out.extend_from_slice(b"\",");
        }
        out.extend_from_slice(b"\"event_name\":\"Purchase\",\"event_time\":");
        self.int(out, now_s, 1);
        out.extend_from_slice(b",\"event_id\":\"");
        out.extend_from_slice(self.spec.id_prefix.as_bytes());
        self.int(out, n, 1);
        out.extend_from_slice(
            b"\",\"action_source\":\"website\",\"event_source_url\":\"https://shop",
        );
        self.int(out, n % 7, 1);
        out.extend_from_slice(b".example.com/checkout/complete?order=");
        self.int(out, n, 8);
        out.extend_from_slice(
            b"&utm_source=facebook&utm_medium=paid_social&utm_campaign=spring_sale_2026\"",
        );

        // user_data, raw.
        out.extend_from_slice(b",\"user_data\":{\"em\":\"");
        match self.rng.below(3) {
            0 => {
                out.extend_from_slice(b"customer");
                self.int(out, n, 1);
                out.extend_from_slice(b"@example");
                self.int(out, n % 97, 1);
                out.extend_from_slice(b".com");
            }
            1 => {
                out.extend_from_slice(b"  Customer.");
                self.int(out, n, 1);
                out.extend_from_slice(b"@Example");
                self.int(out, n % 97, 1);
                out.extend_from_slice(b".COM ");
            }
            _ => {
                out.extend_from_slice(b"CUSTOMER_");
                self.int(out, n, 1);
                out.extend_from_slice(b"@MAIL");
                self.int(out, n % 13, 1);
                out.extend_from_slice(b".EXAMPLE.ORG");
            }
        }
        out.extend_from_slice(b"\",\"ph\":\"");
        let area = self.rng.pick(&areas);
        let exchange = 201 + self.rng.below(798);
        let line = self.rng.below(10_000);
        match self.rng.below(3) {
            0 => {
                out.extend_from_slice(cc.as_bytes());
                out.extend_from_slice(b" (");
                out.extend_from_slice(area.as_bytes());
                out.extend_from_slice(b") ");
                self.int(out, exchange, 3);
                out.push(b'-');
                self.int(out, line, 4);
            }
            1 => {
                out.extend_from_slice(area.as_bytes());
                out.push(b'.');
                self.int(out, exchange, 3);
                out.push(b'.');
                self.int(out, line, 4);
            }
            _ => {
                out.extend_from_slice(cc.as_bytes());
                out.extend_from_slice(area.as_bytes());
                self.int(out, exchange, 3);
                self.int(out, line, 4);
            }
        }
        out.extend_from_slice(b"\",\"fn\":\"");
        let first = self.rng.pick(&FIRST_NAMES);
        self.styled(out, first);
        out.extend_from_slice(b"\",\"ln\":\"");
        let last = self.rng.pick(&LAST_NAMES);
        self.styled(out, last);
        out.extend_from_slice(b"\",\"ct\":\"");
        self.styled(out, city);
        out.extend_from_slice(b"\",\"st\":\"");
        out.extend_from_slice(state.as_bytes());
        out.extend_from_slice(b"\",\"zp\":\"");
        let zip = 10_000 + self.rng.below(89_999);
        self.int(out, zip, 5);
        if self.rng.below(2) == 0 {
            out.push(b'-');
            let plus4 = self.rng.below(10_000);
            self.int(out, plus4, 4);
        }
        out.extend_from_slice(b"\",\"country\":\"");
        out.extend_from_slice(country.as_bytes());
        out.extend_from_slice(b"\",\"external_id\":\"crm-");
        self.int(out, n, 10);
        out.extend_from_slice(b"\",\"client_ip_address\":\"");
        if self.rng.below(4) == 0 {
            out.extend_from_slice(b"2001:db8:");
            let a = self.rng.below(0xffff);
            write_hex(out, a);
            out.extend_from_slice(b"::");
            let b = 1 + self.rng.below(0xfffe);
            write_hex(out, b);
        } else {
            out.extend_from_slice(b"198.51.");
            let a = self.rng.below(100);
            self.int(out, a, 1);
            out.push(b'.');
            let b = 1 + self.rng.below(254);
            self.int(out, b, 1);
        }
        out.extend_from_slice(b"\",\"client_user_agent\":\"");
        let ua = self.rng.pick(&USER_AGENTS);
        out.extend_from_slice(ua.as_bytes());
        let now_ms = now_s * 1000;
        out.extend_from_slice(b"\",\"fbc\":\"fb.1.");
        let click_age = self.rng.below(86_400_000);
        self.int(out, now_ms.saturating_sub(click_age), 1);
        out.extend_from_slice(b".IwAR");
        let click = self.rng.next_u64();
        write_hex(out, click);
        out.extend_from_slice(b"\",\"fbp\":\"fb.1.");
        let visit_age = self.rng.below(2_592_000_000);
        self.int(out, now_ms.saturating_sub(visit_age), 1);
        out.push(b'.');
        let visitor = self.rng.below(10_000_000_000);
        self.int(out, visitor, 10);
        out.extend_from_slice(b"\"}");

        // custom_data: three products.
        out.extend_from_slice(b",\"custom_data\":{\"currency\":\"");
        let currency = self.rng.pick(&CURRENCIES);
        out.extend_from_slice(currency.as_bytes());
        out.extend_from_slice(b"\",\"order_id\":\"ORD-");
        self.int(out, n, 8);
        let products = [
            self.rng.pick(&PRODUCTS),
            self.rng.pick(&PRODUCTS),
            self.rng.pick(&PRODUCTS),
        ];
        out.extend_from_slice(b"\",\"content_name\":\"");
        out.extend_from_slice(products[0].0.as_bytes());
        out.extend_from_slice(b"\",\"content_category\":\"");
        out.extend_from_slice(products[0].2.as_bytes());
        out.extend_from_slice(b"\",\"content_type\":\"product\",\"num_items\":3,\"contents\":[");
        let mut total_cents = 0;
        for (i, (title, brand, category)) in products.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let sku = self.rng.below(100_000);
            let quantity = 1 + self.rng.below(3);
            let cents = 499 + self.rng.below(19_500);
            total_cents += quantity * cents;
            out.extend_from_slice(b"{\"id\":\"SKU-");
            self.int(out, sku, 5);
            out.extend_from_slice(b"\",\"quantity\":");
            self.int(out, quantity, 1);
            out.extend_from_slice(b",\"item_price\":");
            self.money(out, cents);
            out.extend_from_slice(b",\"title\":\"");
            out.extend_from_slice(title.as_bytes());
            out.extend_from_slice(b"\",\"brand\":\"");
            out.extend_from_slice(brand.as_bytes());
            out.extend_from_slice(b"\",\"category\":\"");
            out.extend_from_slice(category.as_bytes());
            out.extend_from_slice(b"\"}");
        }
        out.extend_from_slice(b"],\"value\":");
        self.money(out, total_cents);
        out.extend_from_slice(b"}}");
    }

    fn money(&mut self, out: &mut Vec<u8>, cents: u64) {
        self.int(out, cents / 100, 1);
        out.push(b'.');
        self.int(out, cents % 100, 2);
    }
}

fn write_hex(out: &mut Vec<u8>, mut v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Unix seconds now.
pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What generating bodies costs on this machine, single-threaded.
#[derive(Debug, Clone, Copy)]
pub struct GenerationCost {
    pub bodies: u64,
    pub mean_bytes: f64,
    pub ns_per_body: f64,
}

/// Writes `bodies` bodies and times it (one thread, the loop the load
/// generator runs per request).
pub fn measure_generation(spec: &BodySpec, bodies: u64) -> GenerationCost {
    let mut writer = BodyWriter::new(spec.clone(), 0x9E37_79B9_7F4A_7C15);
    let mut buf = Vec::with_capacity(2048 * spec.events_per_request.max(1));
    let now = now_s();
    let started = Instant::now();
    let mut bytes = 0u64;
    for i in 0..bodies {
        writer.write(&mut buf, i * spec.events_per_request as u64, now);
        bytes += buf.len() as u64;
    }
    let elapsed = started.elapsed();
    GenerationCost {
        bodies,
        mean_bytes: bytes as f64 / bodies.max(1) as f64,
        ns_per_body: elapsed.as_nanos() as f64 / bodies.max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn spec(k: usize) -> BodySpec {
        BodySpec {
            events_per_request: k,
            pixel_id: "1234567890".into(),
            id_prefix: "lgtest-".into(),
        }
    }

    #[test]
    fn single_event_bodies_are_valid_json_of_realistic_size() {
        let mut w = BodyWriter::new(spec(1), 7);
        let mut buf = Vec::new();
        let mut total = 0;
        for n in 0..500 {
            w.write(&mut buf, n, 1_795_860_000);
            let v: Value = serde_json::from_slice(&buf).unwrap_or_else(|e| {
                panic!("{e}: {}", String::from_utf8_lossy(&buf));
            });
            assert_eq!(v["event_id"], format!("lgtest-{n}"));
            assert_eq!(v["pixel_id"], "1234567890");
            assert_eq!(v["user_data"].as_object().map(|o| o.len()), Some(13));
            total += buf.len();
        }
        let mean = total / 500;
        assert!((1300..=1700).contains(&mean), "mean body {mean} bytes");
    }

    #[test]
    fn batch_bodies_carry_consecutive_unique_ids() {
        let mut w = BodyWriter::new(spec(100), 9);
        let mut buf = Vec::new();
        w.write(&mut buf, 1000, 1_795_860_000);
        let v: Value = serde_json::from_slice(&buf).unwrap();
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 100);
        assert_eq!(v["pixel_id"], "1234567890");
        assert_eq!(data[0]["event_id"], "lgtest-1000");
        assert_eq!(data[99]["event_id"], "lgtest-1099");
        assert!(data[0].get("pixel_id").is_none());
    }

    #[test]
    fn numbers_are_padded_and_money_has_two_decimals() {
        let mut w = BodyWriter::new(spec(1), 1);
        let mut out = Vec::new();
        w.int(&mut out, 42, 5);
        out.push(b' ');
        w.money(&mut out, 1205);
        out.push(b' ');
        w.int(&mut out, 0, 1);
        assert_eq!(String::from_utf8(out).unwrap(), "00042 12.05 0");
    }
}
