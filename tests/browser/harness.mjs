// Test harness for sluice.js in real headless Chromium.
//
// Two HTTP servers on 127.0.0.1 (different ports = different origins, same site, like a
// shop on www.example.com and the gateway on t.example.com):
//   - the page server (always this process): serves the test pages;
//   - the target gateway, which serves /sluice.js and /collect. By default a fake in this
//     process that records what /collect receives; with SLUICE_BASE_URL a real gateway
//     (`sluice serve`), whose arrivals are read from EVENTS_URL.
// See README.md for the environment variables.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));

export const env = {
  chromium: process.env.CHROMIUM || '/usr/bin/chromium',
  baseUrl: (process.env.SLUICE_BASE_URL || '').replace(/\/+$/, ''),
  eventsUrl: process.env.EVENTS_URL || '',
  scriptPath: process.env.SLUICE_JS
    ? path.resolve(process.cwd(), process.env.SLUICE_JS)
    : path.join(here, '..', '..', 'js', 'dist', 'sluice.min.js'),
  pagePort: Number(process.env.TEST_PAGE_PORT || 0),
  pixels: (process.env.PIXEL_IDS || '1111111111111111,2222222222222222')
    .split(',').map((s) => s.trim()).filter(Boolean),
  eventTimeoutMs: Number(process.env.EVENT_TIMEOUT_MS || 10000),
  // A second real gateway with the identity merge window on (gateway.test.mjs).
  mergeBaseUrl: (process.env.MERGE_BASE_URL || '').replace(/\/+$/, ''),
  mergeEventsUrl: process.env.MERGE_EVENTS_URL || '',
  // Bearer key for the backend API (/v1/events); none in zero-config mode.
  apiKey: process.env.SLUICE_API_KEY || '',
};

export const BROWSER_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// playwright's launch() always starts Chromium with a fresh temporary --user-data-dir of
// its own (it refuses one in `args`), so every run starts from an empty profile.
export async function launchBrowser() {
  if (!fs.existsSync(env.chromium)) {
    throw new Error(`${env.chromium} not found: run tests/browser/setup.sh (installs Debian chromium)`);
  }
  return chromium.launch({ executablePath: env.chromium, headless: true, args: BROWSER_ARGS });
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`));
  });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// ---- page server ----------------------------------------------------------------------

export async function startPageServer() {
  const pages = new Map();
  let n = 0;
  const server = http.createServer((req, res) => {
    const html = pages.get(new URL(req.url, 'http://x').pathname);
    if (html === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(html);
  });
  const origin = await listen(server, env.pagePort);
  return {
    origin,
    // Registers a page and returns its URL path.
    add(html) {
      const p = `/p/${++n}`;
      pages.set(p, html);
      return p;
    },
    close: () => new Promise((r) => server.close(r)),
  };
}

// ---- target gateway: fake (default) or real -------------------------------------------

export async function startFakeGateway(port = 0) {
  const records = []; // every POST /collect
  const preflights = []; // every OPTIONS (a "simple request" must cause none)
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const cors = {
      'access-control-allow-origin': req.headers.origin || '*',
      'access-control-allow-credentials': 'true',
      vary: 'Origin',
    };
    try {
      if (req.method === 'GET' && url.pathname === '/sluice.js') {
        const js = fs.readFileSync(env.scriptPath);
        res.writeHead(200, { 'content-type': 'application/javascript; charset=utf-8', 'cache-control': 'no-store' });
        res.end(js);
      } else if (req.method === 'OPTIONS') {
        preflights.push({ url: req.url, headers: req.headers });
        res.writeHead(204, {
          ...cors,
          'access-control-allow-methods': 'POST',
          'access-control-allow-headers': 'content-type',
        });
        res.end();
      } else if (req.method === 'POST' && url.pathname === '/collect') {
        const text = await readBody(req);
        let json = null;
        try {
          json = JSON.parse(text);
        } catch {
          /* recorded as unparsable */
        }
        records.push({ headers: req.headers, text, json, at: Date.now() });
        const headers = { ...cors };
        // Lets one test check that a Set-Cookie on the /collect response is stored.
        if (json && json.custom_data && json.custom_data.set_cookie_probe === true) {
          headers['set-cookie'] = '_sluice_probe=1; Path=/; Max-Age=60; SameSite=Lax';
        }
        res.writeHead(204, headers);
        res.end();
      } else if (req.method === 'GET' && url.pathname === '/__events') {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(JSON.stringify(records));
      } else if (req.method === 'GET' && url.pathname === '/__graph') {
        // The same arrivals shaped like Graph API requests (one per pixel), the shape a real
        // gateway's emulator is expected to report: used to test the EVENTS_URL path.
        const graph = [];
        for (const r of records) {
          const b = r.json;
          if (!b || !Array.isArray(b.pixel_ids)) continue;
          const { pixel_ids, fbp, fbc, user_data, ...rest } = b;
          for (const pixel_id of pixel_ids) {
            graph.push({ pixel_id, data: [{ ...rest, action_source: 'website', user_data: { ...user_data, fbp, fbc } }] });
          }
        }
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(JSON.stringify({ requests: graph }));
      } else {
        res.writeHead(404, cors);
        res.end();
      }
    } catch (e) {
      res.writeHead(500);
      res.end(String(e));
    }
  });
  const base = await listen(server, port);
  return {
    fake: true,
    base,
    eventsUrl: `${base}/__events`,
    records,
    preflights,
    close: () => new Promise((r) => server.close(r)),
  };
}

export async function startTarget() {
  if (!env.baseUrl) return startFakeGateway();
  if (!env.eventsUrl) throw new Error('SLUICE_BASE_URL is set: EVENTS_URL must say where to read arrived events');
  return { fake: false, base: env.baseUrl, eventsUrl: env.eventsUrl, records: null, preflights: null, close: async () => {} };
}

// One arrived event per pixel, whatever the source: the fake's raw /collect bodies, or
// what a real gateway delivered downstream (Graph-API-shaped requests or flat events).
function normalize(list) {
  const out = [];
  const flat = (e, pixel, raw) => {
    const ud = e.user_data || {};
    out.push({
      pixel_id: String(pixel ?? e.pixel_id ?? ''),
      event_name: e.event_name,
      event_id: e.event_id,
      fbp: e.fbp ?? ud.fbp,
      fbc: e.fbc ?? ud.fbc,
      user_data: ud,
      custom_data: e.custom_data || {},
      raw,
    });
  };
  for (const item of list) {
    if (!item || typeof item !== 'object') continue;
    if (item.json !== undefined && item.headers) { // fake record
      const b = item.json;
      if (b && Array.isArray(b.pixel_ids)) for (const p of b.pixel_ids) flat(b, p, item);
      else if (b) flat(b, b.pixel_id, item);
    } else if (Array.isArray(item.data)) { // a Graph /{pixel}/events request body
      const pixel = item.pixel_id ?? item.pixel ?? item.dataset_id;
      for (const e of item.data) flat(e, pixel ?? e.pixel_id, item);
    } else if (item.event && typeof item.event === 'object' && item.pixel_id !== undefined) {
      // sluice's emulator / sandbox (`GET /_emulator/events`): one recorded event per pixel
      flat(item.event, item.pixel_id, item);
    } else if (item.event_name) {
      flat(item, item.pixel_id, item);
    }
  }
  return out;
}

export async function arrivedEvents(target) {
  const res = await fetch(target.eventsUrl, { headers: { accept: 'application/json' } });
  if (!res.ok) throw new Error(`GET ${target.eventsUrl}: HTTP ${res.status}`);
  const body = await res.json();
  const list = Array.isArray(body) ? body : body.events || body.data || body.requests || [];
  return normalize(list);
}

// Polls until `pred(events)` holds; returns the events. Fails with what did arrive.
export async function waitForEvents(target, pred, what) {
  const deadline = Date.now() + env.eventTimeoutMs;
  let events = [];
  for (;;) {
    events = await arrivedEvents(target);
    if (pred(events)) return events;
    if (Date.now() > deadline) {
      const seen = events.map((e) => `${e.pixel_id}/${e.event_name}/${e.event_id}`).slice(-20);
      throw new Error(`timed out waiting for ${what}; last arrivals: ${JSON.stringify(seen)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const byId = (events, id) => events.filter((e) => e.event_id === id);

// ---- test pages -------------------------------------------------------------------------

export const STUB_SNIPPET =
  'window.sluice=window.sluice||function(){(sluice.q=sluice.q||[]).push(arguments)};';

// A page with a recording `fbq` stub (window.__fbqCalls), optional inline code that runs
// before the script, and (unless load:false) an async <script> for the target's /sluice.js.
export function pageHtml(target, { before = '', after = '', load = true, fbq = 'record' } = {}) {
  const fbqStub =
    fbq === 'none'
      ? ''
      : `<script>
window.__fbqCalls = [];
window.fbq = function () {
  window.__fbqCalls.push(JSON.parse(JSON.stringify([].slice.call(arguments))));
  ${fbq === 'throw' ? "throw new Error('fbq exploded');" : ''}
};
</script>`;
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>sluice test page</title>
${fbqStub}
${before ? `<script>${before}</script>` : ''}
${load ? `<script async src="${target.base}/sluice.js"></script>` : ''}
${after ? `<script>${after}</script>` : ''}
</head><body><h1>sluice test page</h1></body></html>`;
}

// Opens a page in a fresh browser context and records requests to /collect and page errors.
export async function openPage(browser, target, pages, html, { query = '', initScript, cookies, referer } = {}) {
  const ctx = await browser.newContext();
  if (cookies) await ctx.addCookies(cookies.map((c) => ({ domain: '127.0.0.1', path: '/', ...c })));
  if (initScript) await ctx.addInitScript(initScript);
  const page = await ctx.newPage();
  const collects = [];
  const errors = [];
  const consoleErrors = [];
  const collectUrl = `${target.base}/collect`;
  page.on('request', (r) => {
    if (r.url().split('?')[0] === collectUrl) collects.push(r);
  });
  page.on('pageerror', (e) => errors.push(e));
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  const url = pages.origin + pages.add(html) + query;
  await page.goto(url, referer ? { referer } : undefined);
  return { ctx, page, url, collects, errors, consoleErrors, close: () => ctx.close() };
}

export async function waitLoaded(page) {
  await page.waitForFunction(() => !!(window.sluice && window.sluice.loaded), null, { timeout: 10000 });
}
