#!/usr/bin/env node
// CPU-path benchmark of the official Node SDK (facebook-nodejs-business-sdk).
//
// Builds N Purchase events from the deterministic raw-input generator described in
// README.md (identical to workload.py), and pushes them, 1000 per request, through the
// SDK's own EventRequest.execute() code path (normalize + SHA-256). The request goes
// to a custom HttpServiceInterface that only serializes the JSON body the SDK's default
// transport (axios) would send and counts its bytes; nothing is sent anywhere.
//
// Usage:
//   node workload.js [EVENTS]            default 100000 (or $SDK_BENCH_EVENTS)
//   node workload.js --dump-raw K        print the first K raw inputs as JSON lines
//   node workload.js --dump-events K     print the first K SDK-normalized events
//
// Environment: SDK_BENCH_EVENTS, SDK_BENCH_SEED, SDK_BENCH_BATCH, SDK_BENCH_DIGEST=1
// (see README.md). Prints exactly one JSON line on stdout.
'use strict';

const t0 = process.hrtime.bigint(); // before the SDK is loaded: loading is part of the cost

const crypto = require('crypto');
const sdk = require('facebook-nodejs-business-sdk');

const {
  Content, CustomData, EventRequest, ServerEvent, UserData,
  HttpServiceInterface, CrashReporter,
} = sdk;

// ---------------------------------------------------------------------------
// Deterministic raw-input generator. MUST stay identical to workload.py and to
// the specification in README.md (the Rust benchmark reimplements it).
// ---------------------------------------------------------------------------

const DEFAULT_SEED = 0x2545F491;
const BASE_TIME = 1795860000;

const FIRST_NAMES = [
  'James', 'Mary', 'Robert', 'Patricia', 'John', 'Jennifer', 'Michael', 'Linda',
  'David', 'Elizabeth', 'William', 'Barbara', 'Richard', 'Susan', 'Joseph', 'Jessica',
  'Thomas', 'Sarah', 'Charles', 'Karen', 'Mohammed', 'Aiko', 'Jos\u00e9', 'Zo\u00eb',
];
const LAST_NAMES = [
  'Smith', 'Johnson', 'Williams', 'Brown', 'Jones', 'Garcia', 'Miller', 'Davis',
  'Rodriguez', 'Martinez', 'Hernandez', 'Lopez', 'Wilson', 'Anderson', 'Taylor', 'Moore',
  "O'Brien", 'Van der Berg', 'Nakamura', 'M\u00fcller',
];
// [city, state, country ISO 3166-1 alpha-2, phone country calling code]
const LOCATIONS = [
  ['New York', 'NY', 'US', '1'],
  ['Los Angeles', 'CA', 'US', '1'],
  ['Chicago', 'IL', 'US', '1'],
  ['Houston', 'TX', 'US', '1'],
  ['Phoenix', 'AZ', 'US', '1'],
  ['San Francisco', 'CA', 'US', '1'],
  ['St. Louis', 'MO', 'US', '1'],
  ['Winston-Salem', 'NC', 'US', '1'],
  ['Seattle', 'WA', 'US', '1'],
  ['Miami', 'FL', 'US', '1'],
  ['Toronto', 'ON', 'CA', '1'],
  ['London', 'LND', 'GB', '44'],
  ['Berlin', 'BE', 'DE', '49'],
  ['M\u00fcnchen', 'BY', 'DE', '49'],
  ['Paris', 'IDF', 'FR', '33'],
  ['Sydney', 'NSW', 'AU', '61'],
];
const USER_AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
    'Chrome/131.0.0.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 ' +
    '(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) ' +
    'Version/18.1 Safari/605.1.15',
  'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
];
const CURRENCIES = ['USD', 'usd', 'EUR', ' Gbp '];

// Marsaglia xorshift32 (13, 17, 5) on an unsigned 32-bit state.
class XorShift32 {
  constructor(seed) {
    this.x = (seed >>> 0) || DEFAULT_SEED;
  }

  next() {
    let x = this.x;
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    this.x = x;
    return x;
  }

  below(n) {
    return this.next() % n;
  }
}

const pad = (v, w) => String(v).padStart(w, '0');

function styled(name, style) {
  if (style === 0) return name;
  if (style === 1) return name.toUpperCase();
  if (style === 2) return name.toLowerCase();
  return '  ' + name + ' ';
}

// Raw (un-normalized) inputs of event n. The draw order is normative.
function genRaw(rng, n) {
  const [city, state, country, cc] = LOCATIONS[rng.below(LOCATIONS.length)];
  const first = FIRST_NAMES[rng.below(FIRST_NAMES.length)];
  const last = LAST_NAMES[rng.below(LAST_NAMES.length)];
  const emStyle = rng.below(4);
  const fnStyle = rng.below(4);
  const lnStyle = rng.below(4);
  const ctStyle = rng.below(4);
  const stStyle = rng.below(3);
  const countryStyle = rng.below(3);
  const area = 200 + rng.below(800);
  const exch = rng.below(1000);
  const line = rng.below(10000);
  const phStyle = rng.below(4);
  const zip5 = rng.below(100000);
  const zipStyle = rng.below(3);
  const plus4 = rng.below(10000);
  const ipKind = rng.below(4);
  const a = 1 + rng.below(223);
  const b = rng.below(256);
  const c = rng.below(256);
  const d = 1 + rng.below(254);
  const ua = USER_AGENTS[rng.below(USER_AGENTS.length)];
  const fbcAge = rng.below(86400000);
  const fbcTok = rng.next();
  const fbpAge = rng.below(2592000000);
  const fbpRand = rng.next();
  const currency = CURRENCIES[rng.below(CURRENCIES.length)];
  const contents = [];
  let valueCents = 0;
  for (let i = 0; i < 3; i++) {
    const sku = rng.below(100000);
    const qty = 1 + rng.below(3);
    const priceCents = 100 + rng.below(49900);
    contents.push({id: `SKU-${pad(sku, 5)}`, quantity: qty, item_price_cents: priceCents});
    valueCents += qty * priceCents;
  }

  const eventTime = BASE_TIME + Math.floor(n / 10);
  const em = [
    `user${n}@example${n % 97}.com`,
    `User${n}@Example${n % 97}.COM`,
    `  USER.${n}@EXAMPLE${n % 97}.COM `,
    `\tuser_${n}@Mail${n % 13}.Example.org\n`,
  ][emStyle];
  const e3 = pad(exch, 3);
  const l4 = pad(line, 4);
  const ph = [
    `+${cc} (${area}) ${e3}-${l4}`,
    `${cc}${area}${e3}${l4}`,
    `00${cc} ${area} ${e3} ${l4}`,
    `+${cc}-${area}-${e3}-${l4}`,
  ][phStyle];
  const st = [state, state.toLowerCase(), ' ' + state + ' '][stStyle];
  const countryRaw = [country, country.toLowerCase(), ' ' + country + ' '][countryStyle];
  const z5 = pad(zip5, 5);
  const zp = [z5, `${z5}-${pad(plus4, 4)}`, ` ${z5} `][zipStyle];
  const ip = ipKind === 3
    ? `2001:db8:${(a * 256 + b).toString(16)}::${(c * 256 + d).toString(16)}`
    : `${a}.${b}.${c}.${d}`;
  return {
    n,
    event_name: 'Purchase',
    event_time: eventTime,
    event_id: `evt-${n}`,
    event_source_url: `https://shop${n % 7}.example.com/checkout?order=${n}`,
    action_source: 'website',
    em,
    ph,
    fn: styled(first, fnStyle),
    ln: styled(last, lnStyle),
    ct: styled(city, ctStyle),
    st,
    zp,
    country: countryRaw,
    external_id: `ext-${n}`,
    client_ip_address: ip,
    client_user_agent: ua,
    fbc: `fb.1.${eventTime * 1000 - fbcAge}.IwAR${pad(fbcTok.toString(16), 8)}`,
    fbp: `fb.1.${eventTime * 1000 - fbpAge}.${fbpRand}`,
    currency,
    value_cents: valueCents,
    contents,
    order_id: `order-${n}`,
  };
}

// ---------------------------------------------------------------------------
// SDK side
// ---------------------------------------------------------------------------

function buildEvent(raw) {
  const userData = new UserData()
    .setEmail(raw.em)
    .setPhone(raw.ph)
    .setFirstName(raw.fn)
    .setLastName(raw.ln)
    .setCity(raw.ct)
    .setState(raw.st)
    .setZip(raw.zp)
    .setCountry(raw.country)
    .setExternalId(raw.external_id)
    .setClientIpAddress(raw.client_ip_address)
    .setClientUserAgent(raw.client_user_agent)
    .setFbc(raw.fbc)
    .setFbp(raw.fbp);
  const customData = new CustomData()
    .setValue(raw.value_cents / 100)
    .setCurrency(raw.currency)
    .setContents(raw.contents.map((c) => new Content()
      .setId(c.id)
      .setQuantity(c.quantity)
      .setItemPrice(c.item_price_cents / 100)))
    .setOrderId(raw.order_id);
  return new ServerEvent()
    .setEventName(raw.event_name)
    .setEventTime(raw.event_time)
    .setEventId(raw.event_id)
    .setEventSourceUrl(raw.event_source_url)
    .setActionSource(raw.action_source)
    .setUserData(userData)
    .setCustomData(customData);
}

// Serializes the body exactly as the SDK's default transport does (axios sends
// JSON.stringify(params) as application/json), counts bytes, sends nothing.
class SerializeOnlyService extends HttpServiceInterface {
  constructor(digest) {
    super();
    this.bytes = 0;
    this.requests = 0;
    this.digest = digest ? crypto.createHash('sha256') : null;
  }

  executeRequest(url, method, headers, params) {
    const body = JSON.stringify(params);
    this.bytes += Buffer.byteLength(body, 'utf8');
    this.requests += 1;
    if (this.digest) this.digest.update(body, 'utf8');
    return Promise.resolve({events_received: params.data.length, messages: [], fbtrace_id: 'local'});
  }
}

async function main(argv) {
  const seed = Number(process.env.SDK_BENCH_SEED || DEFAULT_SEED);
  const args = argv.slice(2);
  if (args[0] === '--dump-raw' || args[0] === '--dump-events') {
    const k = args.length > 1 ? Number(args[1]) : 5;
    const rng = new XorShift32(seed);
    for (let n = 0; n < k; n++) {
      const raw = genRaw(rng, n);
      const out = args[0] === '--dump-raw' ? raw : buildEvent(raw).normalize();
      process.stdout.write(JSON.stringify(out) + '\n');
    }
    return;
  }

  const events = Number(args.length ? args[0] : (process.env.SDK_BENCH_EVENTS || 100000));
  const batch = Number(process.env.SDK_BENCH_BATCH || 1000);
  const service = new SerializeOnlyService(process.env.SDK_BENCH_DIGEST === '1');

  const rng = new XorShift32(seed);
  let received = 0;
  let n = 0;
  while (n < events) {
    const size = Math.min(batch, events - n);
    const batchEvents = new Array(size);
    for (let i = 0; i < size; i++) batchEvents[i] = buildEvent(genRaw(rng, n + i));
    n += size;
    const request = new EventRequest('bench-token', '1234567890', batchEvents)
      .setHttpService(service);
    // The EventRequest constructor calls FacebookAdsApi.init(), which installs the
    // SDK's crash reporter (it would phone home on an uncaught error): keep it off.
    CrashReporter.disable();
    const response = await request.execute();
    received += response.events_received;
  }
  if (received !== events) {
    throw new Error(`service saw ${received} events, expected ${events}`);
  }

  // From the first line of this script: includes loading the SDK, excludes the runtime's
  // own start-up (reported separately as process_seconds = process.uptime()).
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const usage = process.resourceUsage();
  const out = {
    impl: 'node-sdk',
    events,
    seconds: Number(wall.toFixed(4)),
    events_per_sec: Number((events / wall).toFixed(1)),
    bytes: service.bytes,
    max_rss_kb: usage.maxRSS,
    cpu_seconds: Number(((usage.userCPUTime + usage.systemCPUTime) / 1e6).toFixed(4)),
    process_seconds: Number(process.uptime().toFixed(4)),
    requests: service.requests,
    encoding: 'json',
    seed,
  };
  if (service.digest) out.body_sha256 = service.digest.digest('hex');
  process.stdout.write(JSON.stringify(out) + '\n');
}

main(process.argv).catch((err) => {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
