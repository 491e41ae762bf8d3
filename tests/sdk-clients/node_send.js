#!/usr/bin/env node
// Send Conversions API events with the official Node SDK (facebook-nodejs-business-sdk)
// to another base URL, and print one JSON line saying exactly what the SDK returned or
// threw.
//
// Usage: node node_send.js BASE_URL PIXEL_ID ACCESS_TOKEN CASE
//
// BASE_URL is e.g. http://127.0.0.1:8080 (the SDK appends /v24.0/PIXEL_ID/events).
// Only the SDK's Graph base URL is changed: EventRequest.execute() takes its default
// path (AdsPixel.createEvent -> FacebookAdsApi.call -> Http.request -> axios) with the
// real JSON body encoding (see README.md).
//
// CASE:
//   ok         2 valid website Purchase events
//   bad_token  same events; meant to be run with a token the server rejects
//   stale      1 event whose event_time is 8 days old
//   batch      $SDK_EVENTS events (default 1000) in one request
//
// Environment: SDK_TEST_EVENT_CODE, SDK_PARTNER_AGENT, SDK_APP_SECRET (adds
// appsecret_proof), SDK_EVENTS (CASE=batch).
//
// Output (stdout, one line), exit code 0 whenever a line was printed:
//   {"ok":true,"sdk":"node","case":...,"events_received":2,"fbtrace_id":"...",
//    "messages":[],"id":null,"num_processed_entries":null,"result_type":"EventResponse"}
//   {"ok":false,"sdk":"node","case":...,"exception":"FacebookRequestError","code":190,
//    "subcode":463,"type":"OAuthException","status":400,"transient":false,
//    "message":"...","error_user_title":null,"error_user_msg":null,"fbtrace_id":"...",
//    "body":{...}}
//   {"ok":false,...,"exception":"SyntaxError","message":"..."}   (any other error)
// Exit code 2: bad usage.
'use strict';

// Talk to the loopback server directly even if the environment names a proxy.
for (const v of ['NO_PROXY', 'no_proxy']) {
  process.env[v] = [process.env[v], '127.0.0.1,localhost,::1'].filter(Boolean).join(',');
}

const sdk = require('facebook-nodejs-business-sdk');

const {
  Content, CustomData, EventRequest, ServerEvent, UserData, FacebookAdsApi, CrashReporter,
} = sdk;

const CASES = ['ok', 'bad_token', 'stale', 'batch'];

function makeEvent(i, eventTime) {
  const userData = new UserData()
    .setEmails([`Tester${i}@Example.com `])
    .setPhones([`+1 (650) 555-01${String(i % 100).padStart(2, '0')}`])
    .setFirstName('Jane')
    .setLastName('Doe')
    .setCity('Menlo Park')
    .setState('CA')
    .setZip('94025')
    .setCountry('us')
    .setExternalId(`ext-${i}`)
    .setClientIpAddress('203.0.113.7')
    .setClientUserAgent('Mozilla/5.0 (X11; Linux x86_64) sluice-sdk-client-test')
    .setFbc('fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890')
    .setFbp('fb.1.1558571054389.1098115397');
  const customData = new CustomData()
    .setValue(49.9 + i)
    .setCurrency('usd')
    .setContents([new Content().setId(`sku-${i}`).setQuantity(1).setItemPrice(49.9 + i)])
    .setOrderId(`order-${i}`);
  return new ServerEvent()
    .setEventName('Purchase')
    .setEventTime(eventTime)
    .setEventId(`evt-node-${i}`)
    .setEventSourceUrl('https://shop.example.com/checkout/done')
    .setActionSource('website')
    .setUserData(userData)
    .setCustomData(customData);
}

function buildEvents(kase) {
  const now = Math.floor(Date.now() / 1000);
  if (kase === 'stale') return [makeEvent(0, now - 8 * 86400)];
  if (kase === 'batch') {
    const count = Number(process.env.SDK_EVENTS || 1000);
    return Array.from({length: count}, (_, i) => makeEvent(i, now));
  }
  return [makeEvent(0, now), makeEvent(1, now)];
}

function describeResponse(kase, r) {
  return {
    ok: true,
    sdk: 'node',
    case: kase,
    result_type: r && r.constructor ? r.constructor.name : typeof r,
    events_received: r ? r.events_received ?? null : null,
    fbtrace_id: r ? r.fbtrace_id ?? null : null,
    messages: r ? r.messages ?? null : null,
    id: r ? r.id ?? null : null,
    num_processed_entries: r ? r.num_processed_entries ?? null : null,
  };
}

function describeError(kase, err) {
  const out = {ok: false, sdk: 'node', case: kase, exception: (err && err.name) || typeof err};
  if (err && err.name === 'FacebookRequestError') {
    // err.response is the body's "error" object when it has one, else the whole body.
    const body = err.response;
    const e = body && typeof body === 'object' ? body : {};
    Object.assign(out, {
      code: e.code ?? null,
      subcode: e.error_subcode ?? null,
      type: e.type ?? null,
      status: err.status ?? null,
      transient: e.is_transient ?? null,
      message: err.message ?? null,
      error_user_title: e.error_user_title ?? null,
      error_user_msg: e.error_user_msg ?? null,
      fbtrace_id: e.fbtrace_id ?? null,
      body: body ?? null,
    });
  } else {
    out.message = err && err.message !== undefined ? String(err.message) : String(err);
  }
  return out;
}

async function main(argv) {
  if (argv.length !== 6 || !CASES.includes(argv[5])) {
    process.stderr.write(
      `usage: node node_send.js BASE_URL PIXEL_ID ACCESS_TOKEN CASE  (CASE: ${CASES.join('|')})\n`);
    return 2;
  }
  const baseUrl = argv[2].replace(/\/+$/, '');
  const [pixelId, accessToken, kase] = argv.slice(3);

  // The one change: the Graph base URL. FacebookAdsApi.GRAPH is a static getter that
  // FacebookAdsApi.call() (and EventRequest's HttpService path) read on every request;
  // it is configurable, so redefine it.
  Object.defineProperty(FacebookAdsApi, 'GRAPH', {get: () => baseUrl, configurable: true});

  const request = new EventRequest(accessToken, pixelId, buildEvents(kase));
  // The EventRequest constructor calls FacebookAdsApi.init(), which installs the SDK's
  // crash reporter (it would post crash reports on an uncaught error): keep it off.
  CrashReporter.disable();
  if (process.env.SDK_TEST_EVENT_CODE) request.setTestEventCode(process.env.SDK_TEST_EVENT_CODE);
  if (process.env.SDK_PARTNER_AGENT) request.setPartnerAgent(process.env.SDK_PARTNER_AGENT);
  if (process.env.SDK_APP_SECRET) request.setAppSecret(process.env.SDK_APP_SECRET);

  let out;
  try {
    out = describeResponse(kase, await request.execute());
  } catch (err) {
    out = describeError(kase, err);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  return 0;
}

main(process.argv).then((code) => {
  process.exitCode = code;
}, (err) => {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 1;
});
