// sluice.js in real headless Chromium. Run with ./run.sh (or `node --test` in this dir
// after ./setup.sh). Against the built-in fake gateway by default; against a real one with
// SLUICE_BASE_URL + EVENTS_URL (see README.md).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  env,
  launchBrowser,
  startPageServer,
  startTarget,
  waitForEvents,
  arrivedEvents,
  byId,
  pageHtml,
  openPage,
  waitLoaded,
  STUB_SNIPPET,
} from './harness.mjs';

let browser;
let target;
let pages;
const [P1, P2] = env.pixels;
const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const T = { timeout: 60000 };

before(async () => {
  assert.ok(P1 && P2, 'PIXEL_IDS must list at least two pixel ids');
  target = await startTarget();
  pages = await startPageServer();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (pages) await pages.close();
  if (target) await target.close();
});

let counter = 0;
const uniq = (tag) => `${tag}-${process.pid}-${Date.now().toString(36)}-${++counter}`;
const js = (x) => JSON.stringify(x);
const init = (opts) => `sluice('init', ${js({ pixel: P1, consentRequired: false, ...opts })});`;
const fbqCalls = (page) => page.evaluate(() => window.__fbqCalls);
const fakeBody = (id) => {
  const rec = target.records.filter((r) => r.json && r.json.event_id === id);
  assert.equal(rec.length, 1, `exactly one /collect body with event_id ${id}`);
  return rec[0];
};
async function waitCollects(p, n) {
  const deadline = Date.now() + env.eventTimeoutMs;
  while (p.collects.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return p.collects.length;
}
const arrivedFor = (id, pixels = [P1]) => (events) =>
  pixels.every((px) => byId(events, id).some((e) => e.pixel_id === px));

// Loads a page whose only job is to init (consentRequired:false) and track one event, and
// waits until it arrived: proves that everything sent earlier from other pages was seen.
async function barrier() {
  const id = uniq('barrier');
  const p = await openPage(browser, target, pages, pageHtml(target, { before: STUB_SNIPPET + init({}) }));
  await waitLoaded(p.page);
  await p.page.evaluate((id) => sluice('track', 'BarrierEvent', {}, { eventId: id }), id);
  await waitForEvents(target, arrivedFor(id), `barrier ${id}`);
  await p.close();
}

test('request contract: one text/plain POST per event with the documented body, cookies, no preflight', T, async () => {
  const order = uniq('contract');
  const preflightsBefore = target.fake ? target.preflights.length : 0;
  const fbp = 'fb.1.1700000000000.1234567890';
  const fbc = 'fb.1.1700000000001.IwAR0AbCdEf_GhIj';
  const html = pageHtml(target, {
    before: STUB_SNIPPET + init({ userData: { em: ' Jane.Doe@Example.COM ', external_id: 'user-42' } }),
  });
  const p = await openPage(browser, target, pages, html, {
    query: '?fbclid=IwAR0AbCdEf_GhIj&utm_source=x',
    cookies: [{ name: '_fbp', value: fbp }, { name: '_fbc', value: fbc }],
    referer: `${pages.origin}/landing?from=ad`,
  });
  await waitLoaded(p.page);
  const t0 = Math.floor(Date.now() / 1000);
  const id = await p.page.evaluate(
    (order) =>
      sluice('track', 'Purchase', {
        value: 49.9,
        currency: 'EUR',
        content_ids: ['sku-1', 'sku-2'],
        contents: [{ id: 'sku-1', quantity: 1, item_price: 49.9 }],
        content_type: 'product',
        order_id: order,
        set_cookie_probe: true,
      }),
    order,
  );
  assert.equal(id, `order-${order}`);
  await waitForEvents(target, arrivedFor(id), `Purchase ${id}`);
  assert.equal(await waitCollects(p, 1), 1, 'one POST for one event');
  const req = p.collects[0];
  assert.equal(req.method(), 'POST');
  const headers = await req.allHeaders();
  assert.match(headers['content-type'], /^text\/plain;\s*charset=utf-8$/i);

  if (target.fake) {
    const rec = fakeBody(id);
    const b = rec.json;
    assert.deepEqual(Object.keys(b).sort(), [
      'consent', 'consent_source', 'custom_data', 'event_id', 'event_name', 'event_source_url',
      'event_time', 'fbc', 'fbp', 'pixel_ids', 'referrer_url', 'user_data',
    ]);
    assert.deepEqual(b.pixel_ids, [P1]);
    assert.equal(b.event_name, 'Purchase');
    assert.equal(b.event_id, id);
    assert.ok(Number.isInteger(b.event_time) && b.event_time >= t0 - 5 && b.event_time <= t0 + 60, `event_time ${b.event_time} is Unix seconds`);
    assert.equal(b.event_source_url, p.url, 'event_source_url is location.href, query (fbclid) included');
    assert.equal(b.referrer_url, `${pages.origin}/landing?from=ad`);
    assert.deepEqual(b.custom_data, {
      value: 49.9, currency: 'EUR', content_ids: ['sku-1', 'sku-2'],
      contents: [{ id: 'sku-1', quantity: 1, item_price: 49.9 }], content_type: 'product',
      order_id: order, set_cookie_probe: true,
    });
    assert.deepEqual(b.user_data, { em: ' Jane.Doe@Example.COM ', external_id: 'user-42' }, 'raw, unhashed, untouched');
    assert.equal(b.fbp, fbp);
    assert.equal(b.fbc, fbc);
    assert.deepEqual(b.consent, {
      ad_storage: 'granted', ad_user_data: 'granted', ad_personalization: 'granted', analytics_storage: 'granted',
    });
    assert.equal(b.consent_source, 'default');
    assert.match(rec.headers['content-type'], /^text\/plain;\s*charset=utf-8$/i);
    assert.equal(rec.headers.origin, pages.origin, 'cross-origin POST from the page origin');
    assert.match(rec.headers.cookie || '', /(^|; )_fbp=fb\.1\.1700000000000\.1234567890(;|$)/, 'cookies are sent (credentials)');
    assert.equal(target.preflights.length, preflightsBefore, 'no CORS preflight: a simple request');
    const cookies = await p.ctx.cookies(pages.origin);
    assert.ok(cookies.some((c) => c.name === '_sluice_probe'), 'Set-Cookie on the /collect response is stored');
  }
  assert.deepEqual(p.errors, []);
  await p.close();
});

test('the eventID given to fbq equals the event_id posted to /collect (random ids)', T, async () => {
  const p = await openPage(browser, target, pages, pageHtml(target, { before: STUB_SNIPPET + init({}) }));
  await waitLoaded(p.page);
  const [a, b, c] = await p.page.evaluate(() => [
    sluice('track', 'AddToCart', { value: 5, currency: 'EUR', content_ids: ['a'] }),
    sluice('track', 'AddToCart', { value: 5, currency: 'EUR', content_ids: ['a'] }),
    sluice('track', 'NewsletterOpened', { topic: 'x' }),
  ]);
  for (const id of [a, b, c]) assert.match(id, UUID4);
  assert.notEqual(a, b, 'two calls, two ids');
  const calls = await fbqCalls(p.page);
  assert.deepEqual(calls, [
    ['track', 'AddToCart', { value: 5, currency: 'EUR', content_ids: ['a'] }, { eventID: a }],
    ['track', 'AddToCart', { value: 5, currency: 'EUR', content_ids: ['a'] }, { eventID: b }],
    ['trackCustom', 'NewsletterOpened', { topic: 'x' }, { eventID: c }],
  ]);
  const events = await waitForEvents(target, (ev) => [a, b, c].every((id) => arrivedFor(id)(ev)), 'three events');
  for (const [call, id] of [[calls[0], a], [calls[1], b], [calls[2], c]]) {
    const got = byId(events, call[3].eventID);
    assert.equal(got.length, 1);
    assert.equal(got[0].event_id, id);
    assert.equal(got[0].event_name, call[1]);
  }
  await p.close();
});

test('order_id gives the deterministic event_id order-<order_id> on both sides, on every page load', T, async () => {
  const order = uniq('ord');
  const explicit = uniq('explicit');
  const ids = [];
  for (let load = 0; load < 2; load++) { // the thank-you page visited twice
    const p = await openPage(browser, target, pages, pageHtml(target, { before: STUB_SNIPPET + init({}) }));
    await waitLoaded(p.page);
    const got = await p.page.evaluate(
      ([order, explicit]) => [
        sluice('track', 'Purchase', { value: 10, currency: 'EUR', order_id: order }),
        sluice('track', 'Purchase', { value: 1, currency: 'EUR', order_id: 7731 }),
        sluice('track', 'Purchase', { value: 10, currency: 'EUR', order_id: order }, { eventId: explicit }),
      ],
      [order, explicit],
    );
    assert.deepEqual(got, [`order-${order}`, 'order-7731', explicit]);
    const calls = await fbqCalls(p.page);
    assert.deepEqual(calls.map((c) => c[3].eventID), got);
    ids.push(...got);
    await waitForEvents(target, (ev) => arrivedFor(`order-${order}`)(ev) && arrivedFor(explicit)(ev), 'Purchase events');
    await p.close();
  }
  const events = await waitForEvents(target, (ev) => byId(ev, `order-${order}`).length >= (target.fake ? 2 : 1), 'both loads');
  assert.ok(byId(events, `order-${order}`).every((e) => e.event_name === 'Purchase'));
  assert.equal(ids[0], ids[3], 'same order, same id across page loads');
});

test('calls made before the script loads are queued by the stub and replayed in order', T, async () => {
  const first = uniq('early');
  const order = uniq('queued');
  const before =
    STUB_SNIPPET +
    `sluice('track', 'ViewContent', {content_ids: ['p-1']}, {eventId: ${js(first)}});` + // even before init
    init({}) +
    `sluice('track', 'Purchase', {value: 3, currency: 'EUR', order_id: ${js(order)}});` +
    `window.__stubWasFunction = typeof window.sluice === 'function' && !window.sluice.loaded;` +
    `window.__queued = window.sluice.q.length;`;
  const p = await openPage(browser, target, pages, pageHtml(target, { before }));
  await waitLoaded(p.page);
  assert.equal(await p.page.evaluate(() => window.__stubWasFunction), true);
  assert.equal(await p.page.evaluate(() => window.__queued), 3, 'three calls queued before load');
  const calls = await fbqCalls(p.page);
  assert.deepEqual(calls.map((c) => [c[0], c[1], c[3].eventID]), [
    ['track', 'ViewContent', first],
    ['track', 'Purchase', `order-${order}`],
  ]);
  await waitForEvents(target, (ev) => arrivedFor(first)(ev) && arrivedFor(`order-${order}`)(ev), 'replayed events');
  assert.equal(await waitCollects(p, 2), 2);
  await p.close();
});

test('several pixels: trackSingle / trackSingleCustom per pixel, one POST with pixel_ids', T, async () => {
  const order = uniq('multi');
  const only2 = uniq('only2');
  const p = await openPage(browser, target, pages, pageHtml(target, { before: STUB_SNIPPET + init({ pixel: [P1, P2] }) }));
  await waitLoaded(p.page);
  const [a, b] = await p.page.evaluate(
    ([order, only2, P2]) => [
      sluice('track', 'Purchase', { value: 9, currency: 'USD', order_id: order }),
      sluice('track', 'QuizDone', { score: 3 }),
      sluice('track', 'Lead', {}, { eventId: only2, pixel: P2 }),
    ],
    [order, only2, P2],
  );
  const calls = await fbqCalls(p.page);
  assert.deepEqual(calls, [
    ['trackSingle', P1, 'Purchase', { value: 9, currency: 'USD', order_id: order }, { eventID: a }],
    ['trackSingle', P2, 'Purchase', { value: 9, currency: 'USD', order_id: order }, { eventID: a }],
    ['trackSingleCustom', P1, 'QuizDone', { score: 3 }, { eventID: b }],
    ['trackSingleCustom', P2, 'QuizDone', { score: 3 }, { eventID: b }],
    ['trackSingle', P2, 'Lead', {}, { eventID: only2 }],
  ]);
  await waitForEvents(
    target,
    (ev) => arrivedFor(a, [P1, P2])(ev) && arrivedFor(b, [P1, P2])(ev) && arrivedFor(only2, [P2])(ev),
    'events for both pixels',
  );
  assert.equal(await waitCollects(p, 3), 3, 'one POST per event, not per pixel');
  if (target.fake) {
    assert.deepEqual(fakeBody(a).json.pixel_ids, [P1, P2]);
    assert.deepEqual(fakeBody(only2).json.pixel_ids, [P2]);
  }
  await barrier();
  assert.deepEqual(byId(await arrivedEvents(target), only2).map((e) => e.pixel_id), [P2], 'per-event pixel option');
  await p.close();
});

test('consent denied: nothing is posted and fbq is not called; denied events are dropped, not held', T, async () => {
  const denied = uniq('denied');
  const later = uniq('later');
  const p = await openPage(browser, target, pages, pageHtml(target, { before: STUB_SNIPPET + init({ consent: 'denied' }) }));
  await waitLoaded(p.page);
  const id = await p.page.evaluate((denied) => sluice('track', 'Purchase', { value: 1, currency: 'EUR' }, { eventId: denied }), denied);
  assert.equal(id, denied, 'track still returns the id');
  assert.deepEqual(await fbqCalls(p.page), []);
  // The user changes their mind: only events tracked from now on are sent.
  await p.page.evaluate((later) => {
    sluice('consent', 'granted');
    sluice('track', 'Purchase', { value: 2, currency: 'EUR' }, { eventId: later });
  }, later);
  const events = await waitForEvents(target, arrivedFor(later), 'event after grant');
  assert.equal(byId(events, denied).length, 0, 'the denied event never arrives');
  await barrier();
  assert.equal(byId(await arrivedEvents(target), denied).length, 0);
  assert.equal(p.collects.length, 1, 'only the event after the grant was posted');
  assert.deepEqual((await fbqCalls(p.page)).map((c) => c[3].eventID), [later]);

  // sluice('consent', {ad_user_data: 'denied'}) with everything else granted: still nothing.
  const q = await openPage(browser, target, pages, pageHtml(target, { before: STUB_SNIPPET + init({}) }));
  await waitLoaded(q.page);
  const noUserData = uniq('no-aud');
  await q.page.evaluate((id) => {
    sluice('consent', { ad_storage: 'granted', ad_user_data: 'denied', ad_personalization: 'granted', analytics_storage: 'granted' });
    sluice('track', 'Lead', {}, { eventId: id });
  }, noUserData);
  await barrier();
  assert.equal(byId(await arrivedEvents(target), noUserData).length, 0);
  assert.equal(q.collects.length, 0);
  assert.deepEqual(await fbqCalls(q.page), []);
  await p.close();
  await q.close();
});

test('consent pending (the default without CMP or consentRequired:false) then granted: posted exactly once', T, async () => {
  const a = uniq('pending-a');
  const b = uniq('pending-b');
  const p = await openPage(browser, target, pages, pageHtml(target, {
    before: STUB_SNIPPET + `sluice('init', {pixel: ${js(P1)}}); sluice('track', 'ViewContent', {}, {eventId: ${js(a)}});`,
  }));
  await waitLoaded(p.page);
  assert.deepEqual(await fbqCalls(p.page), [], 'held while pending: no pixel call');
  await p.page.evaluate(() => sluice('consent', { ad_storage: 'granted', ad_user_data: 'granted', ad_personalization: 'denied' }));
  const calls = await fbqCalls(p.page);
  assert.deepEqual(calls.map((c) => c[3].eventID), [a], 'released on grant');
  await p.page.evaluate((b) => {
    sluice('consent', 'granted'); // a second grant must not send the held event again
    sluice('track', 'ViewContent', {}, { eventId: b });
  }, b);
  await waitForEvents(target, (ev) => arrivedFor(a)(ev) && arrivedFor(b)(ev), 'held + new event');
  await barrier();
  const events = await arrivedEvents(target);
  assert.equal(byId(events, a).length, 1, 'the held event arrives once');
  assert.equal(p.collects.length, 2);
  assert.deepEqual((await fbqCalls(p.page)).map((c) => c[3].eventID), [a, b]);
  if (target.fake) {
    const body = fakeBody(a).json;
    assert.deepEqual(body.consent, { ad_storage: 'granted', ad_user_data: 'granted', ad_personalization: 'denied' });
    assert.equal(body.consent_source, 'page');
  }
  await p.close();
});

test('TCF: waits for the CMP, forwards gdpr/gdpr_consent, maps purposes; the page overrides', T, async () => {
  const a = uniq('tcf-a');
  const b = uniq('tcf-b');
  const c = uniq('tcf-c');
  const tcfStub = `
    window.__tcfListeners = [];
    window.__tcfapi = function (cmd, version, cb) {
      if (cmd === 'addEventListener' && version === 2) window.__tcfListeners.push(cb);
    };
    window.__tcfFire = function (tc) { window.__tcfListeners.forEach(function (cb) { cb(tc, true); }); };`;
  // consentRequired:false is ignored while a CMP is present: the CMP decides.
  const p = await openPage(browser, target, pages, pageHtml(target, { before: tcfStub + STUB_SNIPPET + init({}) }));
  await waitLoaded(p.page);
  const fire = (tc) => p.page.evaluate((tc) => window.__tcfFire(tc), tc);
  assert.equal(await p.page.evaluate(() => window.__tcfListeners.length), 1, 'one addEventListener');
  await p.page.evaluate((a) => sluice('track', 'Purchase', { value: 1, currency: 'EUR' }, { eventId: a }), a);
  await fire({ eventStatus: 'cmpuishown', gdprApplies: true, tcString: 'CP-shown', purpose: { consents: {} } });
  assert.deepEqual(await fbqCalls(p.page), [], 'still pending while the banner is shown');
  await fire({
    eventStatus: 'useractioncomplete', gdprApplies: true, tcString: 'CP-accepted.AAA',
    purpose: { consents: { 1: true, 3: false, 4: false, 7: true } },
  });
  assert.deepEqual((await fbqCalls(p.page)).map((x) => x[3].eventID), [a], 'purposes 1+7 → sent');
  // The user withdraws purpose 7 in the CMP: ad_user_data denied → dropped.
  await fire({ eventStatus: 'useractioncomplete', gdprApplies: true, tcString: 'CP-withdrawn', purpose: { consents: { 1: true } } });
  await p.page.evaluate((b) => sluice('track', 'Purchase', { value: 1, currency: 'EUR' }, { eventId: b }), b);
  // An explicit page decision wins over later TCF updates.
  await p.page.evaluate(() => sluice('consent', 'granted'));
  await fire({ eventStatus: 'useractioncomplete', gdprApplies: true, tcString: 'CP-late', purpose: { consents: {} } });
  await p.page.evaluate((c) => sluice('track', 'Purchase', { value: 1, currency: 'EUR' }, { eventId: c }), c);
  assert.deepEqual((await fbqCalls(p.page)).map((x) => x[3].eventID), [a, c]);
  assert.equal(await waitCollects(p, 2), 2);
  if (target.fake) { // a real gateway may refuse these made-up TC strings; the browser side is checked above
    await waitForEvents(target, (ev) => arrivedFor(a)(ev) && arrivedFor(c)(ev), 'TCF events');
    const ba = fakeBody(a).json;
    assert.equal(ba.gdpr, 1);
    assert.equal(ba.gdpr_consent, 'CP-accepted.AAA');
    assert.equal(ba.consent_source, 'tcf');
    assert.deepEqual(ba.consent, { ad_storage: 'granted', ad_user_data: 'granted', ad_personalization: 'denied', analytics_storage: 'granted' });
    assert.equal(ba.fbp, undefined);
    const bc = fakeBody(c).json;
    assert.equal(bc.gdpr_consent, 'CP-late', 'the latest TC string is forwarded');
    assert.equal(bc.consent_source, 'page');
    assert.equal(bc.consent.ad_user_data, 'granted');
    assert.equal(target.records.filter((r) => r.json && r.json.event_id === b).length, 0);
  }
  await p.close();
});

test('an fbq that throws breaks neither the other pixel calls nor the POST', T, async () => {
  const order = uniq('fbq-throws');
  const p = await openPage(browser, target, pages, pageHtml(target, { fbq: 'throw', before: STUB_SNIPPET + init({ pixel: [P1, P2] }) }));
  await waitLoaded(p.page);
  const id = await p.page.evaluate((order) => sluice('track', 'Purchase', { value: 5, currency: 'EUR', order_id: order }), order);
  assert.equal(id, `order-${order}`);
  assert.equal((await fbqCalls(p.page)).length, 2, 'both pixels attempted although the first call threw');
  await waitForEvents(target, arrivedFor(id, [P1, P2]), 'event despite fbq errors');
  assert.deepEqual(p.errors, [], 'no uncaught error reached the page');
  await p.close();
});

test('_fbp/_fbc cookies are read and sent as fbp/fbc; not when ad_storage is denied', T, async () => {
  const fbp = 'fb.1.1712345678901.987654321';
  const fbc = 'fb.1.1712345678999.IwAR2xYzAbC-DeF_gHi';
  const cookies = [{ name: '_fbp', value: fbp }, { name: '_fbc', value: fbc }, { name: 'other', value: 'x_fbp=no' }];
  const a = uniq('cookies');
  const p = await openPage(browser, target, pages, pageHtml(target, { before: STUB_SNIPPET + init({}) }), { cookies });
  await waitLoaded(p.page);
  await p.page.evaluate((a) => sluice('track', 'ViewContent', {}, { eventId: a }), a);
  const got = byId(await waitForEvents(target, arrivedFor(a), 'cookie event'), a)[0];
  assert.equal(got.fbp, fbp);
  assert.equal(got.fbc, fbc, 'byte for byte, case kept');
  await p.close();

  const b = uniq('no-storage');
  const q = await openPage(browser, target, pages, pageHtml(target, {
    before: STUB_SNIPPET + init({ consent: { ad_storage: 'denied', ad_user_data: 'granted' } }),
  }), { cookies });
  await waitLoaded(q.page);
  await q.page.evaluate((b) => sluice('track', 'ViewContent', {}, { eventId: b }), b);
  const got2 = byId(await waitForEvents(target, arrivedFor(b), 'no-storage event'), b)[0];
  assert.equal(got2.fbp, undefined, 'fbp not sent without ad_storage');
  assert.equal(got2.fbc, undefined);
  if (target.fake) {
    assert.equal(fakeBody(b).json.consent_source, 'init');
    assert.equal(fakeBody(b).json.consent.ad_storage, 'denied');
  }
  await q.close();
});

test('never throws into the page, whatever the arguments; still works afterwards', T, async () => {
  const ok = uniq('after-garbage');
  // Garbage queued through the stub before load, too.
  const before = STUB_SNIPPET + `sluice(); sluice(null); sluice('track'); sluice('init', 42); sluice('consent', {});`;
  const p = await openPage(browser, target, pages, pageHtml(target, { before }));
  await waitLoaded(p.page);
  const result = await p.page.evaluate(() => {
    const thrown = [];
    const cyclic = { a: 1 };
    cyclic.self = cyclic;
    const evil = { get pixel() { throw new Error('getter'); } };
    const garbage = [
      [], [undefined], [null], [42], [{}], ['nope'], [Symbol('s')], [() => 1], ['constructor'], ['__proto__'],
      ['init'], ['init', null], ['init', {}], ['init', 'str'], ['init', { pixel: [] }], ['init', { pixel: {} }],
      ['init', { pixel: [null, {}, []] }], ['init', evil], ['init', { pixel: 'x', endpoint: 'http://[bad' }],
      ['track'], ['track', null], ['track', 42, 'x'], ['track', ''], ['track', {}, {}],
      ['track', 'Purchase', 'not-an-object', 'nor-this'], ['track', 'Purchase', cyclic],
      ['track', 'Purchase', { value: 10n }], ['track', 'Purchase', { toJSON() { throw new Error('toJSON'); } }],
      ['track', 'Purchase', [], []], ['track', 'Purchase', {}, { userData: cyclic }],
      ['consent'], ['consent', 'maybe'], ['consent', { ad_storage: 7 }], ['consent', null], ['consent', cyclic],
      ['userData', 'x'], ['userData', cyclic], ['userData', null],
    ];
    for (const args of garbage) {
      try {
        window.sluice(...args);
      } catch (e) {
        thrown.push(String(args[0]) + ': ' + e);
      }
    }
    return { thrown, fbq: window.__fbqCalls.length };
  });
  assert.deepEqual(result.thrown, []);
  assert.equal(result.fbq, 0, 'nothing was tracked: no valid init yet');
  assert.equal(p.collects.length, 0);
  // The browser without fbq at all, and an fbq that is not a function.
  await p.page.evaluate(() => { window.fbq = 'not a function'; });
  await p.page.evaluate(`${init({})}`);
  const id = await p.page.evaluate((ok) => sluice('track', 'Lead', { note: 'ok' }, { eventId: ok }), ok);
  assert.equal(id, ok);
  await waitForEvents(target, arrivedFor(ok), 'event after garbage');
  assert.deepEqual(p.errors, []);
  await p.close();
});

test('without sendBeacon (or when it refuses) the POST goes through fetch keepalive, same contract', T, async () => {
  for (const [label, initScript] of [
    ['no sendBeacon', () => { delete Navigator.prototype.sendBeacon; }],
    ['sendBeacon refuses', () => { Navigator.prototype.sendBeacon = function () { return false; }; }],
  ]) {
    const id = uniq('fetch');
    const p = await openPage(browser, target, pages, pageHtml(target, { before: STUB_SNIPPET + init({}) }), {
      initScript,
      cookies: [{ name: '_fbp', value: 'fb.1.1700000000000.42' }],
    });
    await waitLoaded(p.page);
    await p.page.evaluate((id) => sluice('track', 'Contact', {}, { eventId: id }), id);
    await waitForEvents(target, arrivedFor(id), `${label}: event`);
    assert.equal(await waitCollects(p, 1), 1, label);
    const req = p.collects[0];
    assert.equal(req.resourceType(), 'fetch', label);
    assert.match((await req.allHeaders())['content-type'], /^text\/plain;\s*charset=utf-8$/i, label);
    if (target.fake) {
      assert.match(fakeBody(id).headers.cookie || '', /_fbp=fb\.1\.1700000000000\.42/, `${label}: credentials included`);
    }
    assert.deepEqual(p.errors, [], label);
    await p.close();
  }
  if (target.fake) assert.equal(target.preflights.length, 0, 'no preflight in any test so far');
});

test('userData is sent raw in the body only: never in cookies or storage, never given to fbq', T, async () => {
  const a = uniq('ud-a');
  const b = uniq('ud-b');
  const p = await openPage(browser, target, pages, pageHtml(target, {
    before: STUB_SNIPPET + init({ userData: { em: 'jane.secret@example.com', ph: '+1 (555) 010-9999' } }),
  }));
  await waitLoaded(p.page);
  await p.page.evaluate(([a, b]) => {
    sluice('track', 'Lead', {}, { eventId: a, userData: { fn: 'Janesecret' } });
    sluice('userData', { external_id: 'user-9' }); // e.g. after login: replaces
    sluice('track', 'Lead', {}, { eventId: b });
  }, [a, b]);
  await waitForEvents(target, (ev) => arrivedFor(a)(ev) && arrivedFor(b)(ev), 'userData events');
  const leaks = await p.page.evaluate(() => JSON.stringify([document.cookie, { ...localStorage }, { ...sessionStorage }, window.__fbqCalls]));
  // Not a bare /555/: a real gateway's minted _fbp (random digits) may contain it.
  const PERSONAL = /secret|\(555\)|5550109999|user-9/i;
  assert.doesNotMatch(leaks, PERSONAL);
  const cookies = JSON.stringify(await p.ctx.cookies());
  assert.doesNotMatch(cookies, PERSONAL);
  if (target.fake) {
    assert.deepEqual(fakeBody(a).json.user_data, { em: 'jane.secret@example.com', ph: '+1 (555) 010-9999', fn: 'Janesecret' });
    assert.deepEqual(fakeBody(b).json.user_data, { external_id: 'user-9' });
  }
  await p.close();
});

test('while consent is pending at most 50 events are held (oldest dropped)', T, async () => {
  const tag = uniq('held');
  const p = await openPage(browser, target, pages, pageHtml(target, { before: STUB_SNIPPET + `sluice('init', {pixel: ${js(P1)}});` }));
  await waitLoaded(p.page);
  await p.page.evaluate((tag) => {
    for (let i = 0; i < 60; i++) sluice('track', 'ViewContent', { i }, { eventId: `${tag}-${i}` });
    sluice('consent', 'granted');
  }, tag);
  const ids = Array.from({ length: 60 }, (_, i) => `${tag}-${i}`);
  await waitForEvents(target, (ev) => ids.slice(10).every((id) => arrivedFor(id)(ev)), 'the last 50 events');
  await barrier();
  const events = await arrivedEvents(target);
  for (const id of ids.slice(0, 10)) assert.equal(byId(events, id).length, 0, `${id} was dropped`);
  assert.equal(p.collects.length, 50);
  assert.deepEqual((await fbqCalls(p.page)).map((c) => c[3].eventID), ids.slice(10), 'in order');
  await p.close();
});

test('the script included twice keeps one instance: one fbq call, one POST', T, async () => {
  const id = uniq('twice');
  const html = pageHtml(target, { before: STUB_SNIPPET + init({}), after: '' })
    .replace('</head>', `<script src="${target.base}/sluice.js"></script></head>`);
  const p = await openPage(browser, target, pages, html);
  await waitLoaded(p.page);
  await p.page.waitForLoadState('load');
  await p.page.evaluate((id) => sluice('track', 'Schedule', {}, { eventId: id }), id);
  await waitForEvents(target, arrivedFor(id), 'event');
  await barrier();
  assert.equal(byId(await arrivedEvents(target), id).length, 1);
  assert.equal(p.collects.length, 1);
  assert.equal((await fbqCalls(p.page)).length, 1);
  await p.close();
});

test('Global Privacy Control and testEventCode are forwarded; a custom endpoint is honoured', T, async () => {
  const id = uniq('gpc');
  const p = await openPage(browser, target, pages, pageHtml(target, {
    // endpoint given as an absolute URL (same place as the default, so a real gateway gets it too)
    before: STUB_SNIPPET + init({ testEventCode: 'TEST123', endpoint: `${target.base}/collect?src=page` }),
  }), {
    initScript: () => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true, configurable: true }),
  });
  await waitLoaded(p.page);
  await p.page.evaluate((id) => sluice('track', 'Lead', {}, { eventId: id }), id);
  // A real gateway may drop GPC events by policy: arrival is only required from the fake.
  if (target.fake) await waitForEvents(target, arrivedFor(id), 'GPC event');
  assert.equal(await waitCollects(p, 1), 1);
  assert.equal(p.collects[0].url(), `${target.base}/collect?src=page`);
  if (target.fake) {
    const b = fakeBody(id).json;
    assert.equal(b.gpc, true);
    assert.equal(b.test_event_code, 'TEST123');
  }
  await p.close();
});
