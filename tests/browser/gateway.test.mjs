// sluice.js + the real gateway (`sluice serve`) in headless Chromium: what only a real
// gateway does — first-party _fbp/_fbc cookies, consent re-checked on the server, and
// the browser and backend copies of one order reaching the emulator once (merged with
// the identity merge window on). Skipped against the built-in fake gateway.
//
// Environment (see README.md): SLUICE_BASE_URL + EVENTS_URL (a gateway without merge
// window), MERGE_BASE_URL + MERGE_EVENTS_URL (one with `[dedup] merge_window_secs` on),
// SLUICE_API_KEY (bearer for /v1/events; none in zero-config mode).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
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

const REAL = !!env.baseUrl;
const T = { timeout: 120000, skip: REAL ? false : 'needs a real gateway (SLUICE_BASE_URL)' };
const TM = {
  timeout: 120000,
  skip: !REAL ? 'needs a real gateway (SLUICE_BASE_URL)' : !env.mergeBaseUrl ? 'needs MERGE_BASE_URL (a gateway with merge_window_secs > 0)' : false,
};
const [P1] = env.pixels;
const FBP_RE = /^fb\.[0-2]\.\d{13}\.\d{1,10}$/;
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

let browser;
let target;
let merge;
let pages;

before(async () => {
  if (!REAL) return;
  target = await startTarget();
  if (env.mergeBaseUrl) {
    assert.ok(env.mergeEventsUrl, 'MERGE_BASE_URL is set: MERGE_EVENTS_URL must say where to read arrivals');
    merge = { fake: false, base: env.mergeBaseUrl, eventsUrl: env.mergeEventsUrl, close: async () => {} };
  }
  pages = await startPageServer();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (pages) await pages.close();
});

let counter = 0;
const uniq = (tag) => `${tag}-${process.pid}-${Date.now().toString(36)}-${++counter}`;
const init = (opts) => `sluice('init', ${JSON.stringify({ pixel: P1, consentRequired: false, ...opts })});`;
const arrivedFor = (id) => (events) => byId(events, id).some((e) => e.pixel_id === P1);

async function cookie(ctx, name) {
  const deadline = Date.now() + env.eventTimeoutMs;
  for (;;) {
    const found = (await ctx.cookies()).find((c) => c.name === name);
    if (found || Date.now() > deadline) return found;
    await new Promise((r) => setTimeout(r, 20));
  }
}

// The gateway answered the page's POST: the event is committed (a beacon's response
// is observed by the browser, not by the page).
async function committed(p, n = 1) {
  const deadline = Date.now() + env.eventTimeoutMs;
  while (p.collects.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(p.collects.length >= n, `${n} POST(s) to /collect`);
  const response = await p.collects[n - 1].response();
  assert.ok(response, 'the /collect request got an answer');
  assert.equal(response.status(), 204);
}

async function backend(gateway, event) {
  const res = await fetch(`${gateway.base}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(env.apiKey ? { authorization: `Bearer ${env.apiKey}` } : {}) },
    body: JSON.stringify(event),
  });
  const body = await res.json();
  assert.ok(res.ok, `POST /v1/events: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body;
}

// What the shop's order system sends for the same order: no event_id (the gateway
// derives order-<order_id>, like sluice.js), the buyer's e-mail and phone, the page
// and user agent recorded at checkout.
const backendPurchase = (order, email) => ({
  pixel_id: P1,
  event_name: 'Purchase',
  action_source: 'website',
  event_source_url: `${pages.origin}/checkout`,
  custom_data: { value: 31.5, currency: 'EUR', order_id: order, contents: [{ id: 'sku-9', quantity: 3 }] },
  user_data: { em: email, ph: '+1 650 555 0100', client_user_agent: 'recorded at checkout' },
  consent: { ad_user_data: 'granted' },
});

// Waits until a backend event sent now has arrived: everything due earlier on this
// pixel's lane was delivered by then (browser events may be held on a merge gateway).
async function serverBarrier(gateway) {
  const id = uniq('server-barrier');
  await backend(gateway, { ...backendPurchase(uniq('barrier'), 'barrier@example.com'), event_name: 'Lead', event_id: id });
  await waitForEvents(gateway, arrivedFor(id), `server barrier ${id}`);
}

test('the gateway mints _fbp: a first-party cookie, well-formed, stable across reloads', T, async () => {
  const a = uniq('fbp-a');
  const b = uniq('fbp-b');
  const p = await openPage(browser, target, pages, pageHtml(target, { before: STUB_SNIPPET + init({}) }));
  await waitLoaded(p.page);
  assert.equal((await p.ctx.cookies()).find((c) => c.name === '_fbp'), undefined, 'no _fbp before');
  await p.page.evaluate((id) => sluice('track', 'ViewContent', {}, { eventId: id }), a);
  const first = byId(await waitForEvents(target, arrivedFor(a), 'first event'), a)[0];
  assert.match(first.fbp, FBP_RE);
  const created = Number(first.fbp.split('.')[2]);
  assert.ok(Math.abs(created - Date.now()) < 10 * 60 * 1000, `fbp creation time ${created} is now, in ms`);
  const stored = await cookie(p.ctx, '_fbp');
  assert.ok(stored, '_fbp stored from the /collect response');
  assert.equal(stored.value, first.fbp);
  assert.equal(stored.httpOnly, false, 'the pixel must be able to read it');
  assert.ok(stored.expires * 1000 > Date.now() + 80 * 86400 * 1000, 'long-lived (first-party, set by the server)');
  const visible = await p.page.evaluate(() => (document.cookie.match(/(?:^|; )_fbp=([^;]*)/) || [])[1]);
  assert.equal(visible, first.fbp, 'readable by the page');

  await p.page.reload();
  await waitLoaded(p.page);
  await p.page.evaluate((id) => sluice('track', 'ViewContent', {}, { eventId: id }), b);
  const second = byId(await waitForEvents(target, arrivedFor(b), 'event after reload'), b)[0];
  assert.equal(second.fbp, first.fbp, 'same _fbp after a reload');
  assert.equal((await cookie(p.ctx, '_fbp')).value, first.fbp, 'cookie not replaced');
  await p.close();
});

test('a URL with fbclid yields the _fbc cookie and the event fbc', T, async () => {
  const click = `IwAR${Date.now().toString(36)}x${++counter}Zq_9-k`;
  const a = uniq('fbc-a');
  const b = uniq('fbc-b');
  const html = pageHtml(target, { before: STUB_SNIPPET + init({}) });
  const p = await openPage(browser, target, pages, html, { query: `?utm_source=fb&fbclid=${click}` });
  await waitLoaded(p.page);
  await p.page.evaluate((id) => sluice('track', 'ViewContent', {}, { eventId: id }), a);
  const got = byId(await waitForEvents(target, arrivedFor(a), 'event with fbclid'), a)[0];
  assert.match(got.fbc, new RegExp(`^fb\\.[0-2]\\.\\d{13}\\.${click}$`), 'fbc built from fbclid, case kept');
  const stored = await cookie(p.ctx, '_fbc');
  assert.ok(stored, '_fbc stored');
  assert.equal(stored.value, got.fbc);

  // Another page of the site, without fbclid: the click id comes from the cookie.
  const page2 = await p.ctx.newPage();
  await page2.goto(pages.origin + pages.add(html));
  await waitLoaded(page2);
  await page2.evaluate((id) => sluice('track', 'ViewContent', {}, { eventId: id }), b);
  const later = byId(await waitForEvents(target, arrivedFor(b), 'event without fbclid'), b)[0];
  assert.equal(later.fbc, got.fbc);
  assert.equal(later.fbp, got.fbp);
  await p.close();
});

test('the gateway re-checks consent: nothing forbidden reaches the emulator', T, async () => {
  const denied = uniq('srv-denied');
  const noStorage = uniq('srv-no-storage');
  const ok = uniq('srv-ok');
  const fbp = 'fb.1.1700000000000.555';
  const fbc = 'fb.1.1700000000000.IwARforbidden';
  // A page posting by hand (not sluice.js): the gateway must not trust the browser.
  const p = await openPage(browser, target, pages, pageHtml(target, { load: false }), {
    cookies: [{ name: '_fbp', value: fbp }, { name: '_fbc', value: fbc }],
  });
  const post = (body) =>
    p.page.evaluate(
      async ([url, body]) => {
        const res = await fetch(url, {
          method: 'POST',
          body: JSON.stringify({ ...body, event_time: Math.floor(Date.now() / 1000), event_source_url: location.href }),
          headers: { 'content-type': 'text/plain;charset=UTF-8' },
          credentials: 'include',
        });
        return res.status;
      },
      [`${target.base}/collect`, body],
    );
  const base = { pixel_ids: [P1], event_name: 'Lead', custom_data: {}, user_data: { em: 'forbidden@example.com' }, consent_source: 'page' };
  assert.equal(
    await post({ ...base, event_id: denied, consent: { ad_storage: 'granted', ad_user_data: 'denied' } }),
    204,
    'dropped by policy, answered like success',
  );
  assert.equal(
    await post({ ...base, event_id: noStorage, fbp, fbc, consent: { ad_storage: 'denied', ad_user_data: 'granted' } }),
    204,
  );
  assert.equal(await post({ ...base, event_id: ok, consent: { ad_storage: 'granted', ad_user_data: 'granted' } }), 204);
  const events = await waitForEvents(target, (ev) => arrivedFor(noStorage)(ev) && arrivedFor(ok)(ev), 'allowed events');
  assert.equal(byId(events, denied).length, 0, 'ad_user_data denied: never sent');
  const stripped = byId(events, noStorage)[0];
  assert.equal(stripped.fbp, undefined, 'ad_storage denied: no fbp, neither from the body nor from the cookie');
  assert.equal(stripped.fbc, undefined);
  assert.equal(byId(events, ok)[0].fbp, fbp, 'with ad_storage granted the cookie is used');
  const cookies = await p.ctx.cookies();
  assert.equal(cookies.find((c) => c.name === '_fbp').value, fbp, 'no cookie rewritten');
  await serverBarrier(target);
  assert.equal(byId(await arrivedEvents(target), denied).length, 0);
  await p.close();
});

test('a Purchase sent by the page and by the backend with the same order id reaches the emulator once', T, async () => {
  const order = uniq('dual');
  const p = await openPage(browser, target, pages, pageHtml(target, { before: STUB_SNIPPET + init({}) }));
  await waitLoaded(p.page);
  const id = await p.page.evaluate(
    (order) => sluice('track', 'Purchase', { value: 31.5, currency: 'EUR', order_id: order }),
    order,
  );
  assert.equal(id, `order-${order}`);
  const calls = await p.page.evaluate(() => window.__fbqCalls);
  assert.equal(calls[0][3].eventID, id, 'the pixel gets the same id');
  await committed(p);
  const answer = await backend(target, backendPurchase(order, 'buyer@example.com'));
  assert.equal(answer.results[0].status, 'duplicate', JSON.stringify(answer));
  assert.equal(answer.results[0].event_id, id);
  assert.equal(answer.results[0].first_source, 'browser');
  await serverBarrier(target);
  const got = byId(await arrivedEvents(target), id);
  assert.equal(got.length, 1, 'once');
  assert.equal(got[0].user_data.em, undefined, 'the first copy (the browser one) was sent as it came');
  await p.close();
});

test('with the merge window on, the backend copy is merged into the page copy: once, with both identities', TM, async () => {
  const order = uniq('merged');
  const email = `buyer-${counter}@example.com`;
  const p = await openPage(browser, merge, pages, pageHtml(merge, { before: STUB_SNIPPET + init({}) }), {
    query: '?fbclid=IwARmergeTest',
  });
  await waitLoaded(p.page);
  const ua = await p.page.evaluate(() => navigator.userAgent);
  const id = await p.page.evaluate(
    (order) => sluice('track', 'Purchase', { value: 29.9, currency: 'EUR', order_id: order }),
    order,
  );
  assert.equal((await p.page.evaluate(() => window.__fbqCalls))[0][3].eventID, id);
  await committed(p);
  assert.equal(byId(await arrivedEvents(merge), id).length, 0, 'the page copy waits for the backend copy');

  const answer = await backend(merge, backendPurchase(order, email));
  const result = answer.results[0];
  assert.equal(result.status, 'merged', JSON.stringify(answer));
  assert.equal(result.event_id, id);
  assert.equal(result.merged_into, 'browser');

  const got = byId(await waitForEvents(merge, arrivedFor(id), 'merged Purchase'), id);
  assert.equal(got.length, 1);
  const e = got[0];
  assert.match(e.fbp, FBP_RE, 'fbp from the browser');
  assert.equal(e.fbp, (await cookie(p.ctx, '_fbp')).value);
  assert.match(e.fbc, /^fb\.[0-2]\.\d{13}\.IwARmergeTest$/, 'fbc from the page URL');
  assert.equal(e.user_data.client_user_agent, ua, "the browser's user agent, not the one recorded at checkout");
  assert.equal(e.user_data.client_ip_address, '127.0.0.1');
  assert.equal(e.user_data.em, sha256(email), 'hashed e-mail from the backend');
  assert.ok(e.user_data.ph, 'hashed phone from the backend');
  assert.equal(e.custom_data.value, 31.5, "the backend's value wins");
  assert.deepEqual(e.custom_data.contents, [{ id: 'sku-9', quantity: 3 }]);
  assert.equal(e.raw.event.action_source, 'website');

  const again = await backend(merge, backendPurchase(order, email));
  assert.equal(again.results[0].status, 'duplicate', 'a later copy is a duplicate');
  await serverBarrier(merge);
  assert.equal(byId(await arrivedEvents(merge), id).length, 1, 'once');
  await p.close();
});
