/*! sluice.js | browser side of the sluice Conversions API gateway | no dependencies */
/*
 * One call per conversion, two deliveries with the same event_id:
 *   sluice('track', 'Purchase', {value: 49.9, currency: 'EUR', order_id: '7731'});
 *   -> fbq('track', 'Purchase', {...}, {eventID: 'order-7731'})   (when the Meta Pixel is on the page)
 *   -> POST <endpoint> (default: origin of this script + '/collect'), same event_id
 * The request contract, the consent rules and the page snippet are in js/README.md.
 * Every entry point is wrapped: nothing in here may throw into the page.
 */
(function (w, d) {
  'use strict';

  var prev = w.sluice;
  if (prev && prev.loaded) return; // the script is on the page twice: keep the first copy

  var STANDARD = ('AddPaymentInfo AddToCart AddToWishlist CompleteRegistration Contact ' +
    'CustomizeProduct Donate FindLocation InitiateCheckout Lead PageView Purchase Schedule ' +
    'Search StartTrial SubmitApplication Subscribe ViewContent').split(' ');
  var CONSENT_KEYS = ['ad_storage', 'ad_user_data', 'ad_personalization', 'analytics_storage'];
  var MAX_HELD = 50; // events kept in memory while consent is pending (oldest dropped first)
  var BODY_TYPE = 'text/plain;charset=UTF-8'; // keeps the POST a CORS "simple request"
  var KEEPALIVE_MAX = 60000; // browsers cap in-flight keepalive/beacon bodies at 64 KiB

  var cfg = null; // set by 'init'
  var user = {}; // advanced-matching fields, raw; memory only
  var early = []; // events tracked before 'init'
  var held = []; // events waiting for consent
  var consent = {}; // CONSENT_KEYS -> 'granted' | 'denied'; a missing key = not decided yet
  var consentSource = 'default';
  var explicit = false; // the page called sluice('consent', ...): the TCF no longer decides
  var tcf = null; // {gdpr, gdpr_consent} from __tcfapi
  var tcfHooked = false;
  var noted = false;
  var origin = scriptOrigin();

  function note(msg, err) {
    try {
      if (!noted || (cfg && cfg.debug)) {
        noted = true;
        console.debug('sluice: ' + msg, err === undefined ? '' : err);
      }
    } catch (e) { /* no console */ }
  }

  // Origin of the <script src> that loaded us; the gateway serves both the script and /collect.
  function scriptOrigin() {
    var src = d.currentScript && d.currentScript.src;
    if (!src) {
      var all = d.getElementsByTagName('script');
      for (var i = all.length - 1; i >= 0 && !src; i--) {
        if (/\/sluice(\.min)?\.js([?#]|$)/.test(all[i].src)) src = all[i].src;
      }
    }
    try {
      return new URL(src || location.href, location.href).origin;
    } catch (e) {
      return location.origin;
    }
  }

  function isObject(x) {
    return x !== null && typeof x === 'object' && !Array.isArray(x);
  }

  // A deep copy taken when the call is made, so later changes by the page do not leak in.
  function snapshot(x) {
    return isObject(x) ? JSON.parse(JSON.stringify(x)) : {};
  }

  function list(x) {
    var out = [];
    [].concat(x).forEach(function (p) {
      if ((typeof p === 'string' && p) || typeof p === 'number') out.push(String(p));
    });
    return out;
  }

  function uuid4() {
    var b = new Uint8Array(16);
    var c = w.crypto;
    if (c && c.getRandomValues) c.getRandomValues(b);
    else for (var i = 0; i < 16; i++) b[i] = Math.random() * 256;
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    var h = '';
    for (var j = 0; j < 16; j++) {
      h += (b[j] + 256).toString(16).slice(1) + (j === 3 || j === 5 || j === 7 || j === 9 ? '-' : '');
    }
    return h;
  }

  // The one rule shared with the gateway: explicit id, else "order-" + order_id, else random.
  function eventId(data, opts) {
    var id = opts.eventId != null ? opts.eventId : opts.eventID;
    if ((typeof id === 'string' && id) || typeof id === 'number') return String(id);
    var order = data.order_id;
    if ((typeof order === 'string' && order) || typeof order === 'number') return 'order-' + order;
    return uuid4();
  }

  function cookie(name) {
    var m = d.cookie.match(new RegExp('(?:^|;\\s*)' + name + '=([^;]*)'));
    return m ? m[1] : undefined;
  }

  // ---- consent -------------------------------------------------------------------------

  function consentValue(v) {
    return v === true || v === 'granted' ? 'granted' : v === false || v === 'denied' ? 'denied' : undefined;
  }

  // 'granted' | 'denied' | true | false for every key, or an object with Consent Mode v2 keys.
  function parseConsent(arg) {
    var out = {};
    CONSENT_KEYS.forEach(function (k) {
      var v = consentValue(isObject(arg) ? arg[k] : arg);
      if (v) out[k] = v;
    });
    return out;
  }

  // 1 = may send, -1 = denied (drop), 0 = pending (hold). ad_user_data is the gate.
  function status() {
    var v = consent.ad_user_data;
    return v === 'granted' ? 1 : v === 'denied' ? -1 : 0;
  }

  function applyConsent(update, source) {
    for (var k in update) consent[k] = update[k];
    consentSource = source;
    var s = status();
    if (s < 0) held.length = 0;
    else if (s > 0) held.splice(0).forEach(dispatch);
  }

  function pageConsent(arg) {
    var update = parseConsent(arg);
    for (var k in update) { // at least one usable key
      explicit = true;
      applyConsent(update, 'page');
      return;
    }
    note('consent: expected granted|denied or Consent Mode keys');
  }

  // IAB TCF v2: forward the TC string; decide from purposes while the page has not decided.
  function hookTcf() {
    if (tcfHooked || typeof w.__tcfapi !== 'function') return;
    tcfHooked = true;
    try {
      w.__tcfapi('addEventListener', 2, onTcData);
    } catch (e) {
      note('__tcfapi threw', e);
    }
  }

  function onTcData(tc, ok) {
    try {
      if (!ok || !isObject(tc)) return;
      tcf = {};
      if (typeof tc.gdprApplies === 'boolean') tcf.gdpr = tc.gdprApplies ? 1 : 0;
      if (typeof tc.tcString === 'string' && tc.tcString) tcf.gdpr_consent = tc.tcString;
      if (explicit || (tc.eventStatus !== 'tcloaded' && tc.eventStatus !== 'useractioncomplete')) return;
      if (tc.gdprApplies === false) return applyConsent(parseConsent('granted'), 'tcf');
      var p = (tc.purpose && tc.purpose.consents) || {};
      var all = function () {
        return [].every.call(arguments, function (n) { return p[n] === true; }) ? 'granted' : 'denied';
      };
      applyConsent({
        ad_storage: all(1),
        ad_user_data: all(1, 7),
        ad_personalization: all(3, 4),
        analytics_storage: all(1)
      }, 'tcf');
    } catch (e) {
      note('tcf', e);
    }
  }

  // ---- commands ------------------------------------------------------------------------

  function init(o) {
    var pixels = isObject(o) ? list(o.pixel || o.pixels) : [];
    if (!pixels.length) return note('init: {pixel: "<id>" or ["<id>", ...]} is required');
    var first = !cfg;
    cfg = {
      pixels: pixels,
      endpoint: o.endpoint ? new URL(o.endpoint, location.href).href : origin + '/collect',
      fbq: o.fbq !== false,
      debug: !!o.debug,
      test: typeof o.testEventCode === 'string' ? o.testEventCode : undefined
    };
    if (o.userData !== undefined) user = snapshot(o.userData);
    var cmp = typeof w.__tcfapi === 'function';
    if (first && !explicit) {
      // The initial state: init's `consent` if given; a CMP decides when present; else
      // consentRequired:false means granted; anything else waits for sluice('consent', ...).
      if (o.consent !== undefined && o.consent !== 'pending') applyConsent(parseConsent(o.consent), 'init');
      else if (!cmp && o.consent === undefined && o.consentRequired === false) {
        applyConsent(parseConsent('granted'), 'default');
      }
    }
    hookTcf();
    early.splice(0).forEach(gate);
  }

  function track(name, data, opts) {
    if (typeof name !== 'string' || !name) return note('track: event name must be a string');
    data = snapshot(data);
    opts = isObject(opts) ? opts : {};
    var ev = {
      name: name,
      data: data,
      id: eventId(data, opts),
      time: Math.floor(Date.now() / 1000),
      pixels: opts.pixel != null ? list(opts.pixel) : null,
      user: isObject(opts.userData) ? snapshot(opts.userData) : null,
      url: location.href,
      ref: d.referrer
    };
    if (!cfg) {
      if (early.push(ev) > MAX_HELD) early.shift();
    } else {
      gate(ev);
    }
    return ev.id;
  }

  function gate(ev) {
    hookTcf();
    var s = status();
    if (s > 0) dispatch(ev);
    else if (s === 0 && held.push(ev) > MAX_HELD) held.shift();
    // s < 0: consent denied, the event is dropped here and now
  }

  // ---- delivery ------------------------------------------------------------------------

  function dispatch(ev) {
    try {
      var pixels = ev.pixels && ev.pixels.length ? ev.pixels : cfg.pixels;
      var body = JSON.stringify(payload(ev, pixels));
      if (cfg.fbq) callPixel(ev, pixels);
      post(cfg.endpoint, body);
    } catch (e) {
      note('send', e);
    }
  }

  function callPixel(ev, pixels) {
    var fbq = w.fbq;
    if (typeof fbq !== 'function') return;
    var custom = STANDARD.indexOf(ev.name) < 0;
    var call = function (args) {
      try {
        fbq.apply(w, args);
      } catch (e) {
        note('fbq threw', e);
      }
    };
    if (cfg.pixels.length === 1 && pixels.length === 1 && pixels[0] === cfg.pixels[0]) {
      call([custom ? 'trackCustom' : 'track', ev.name, snapshot(ev.data), { eventID: ev.id }]);
    } else {
      pixels.forEach(function (p) {
        call([custom ? 'trackSingleCustom' : 'trackSingle', p, ev.name, snapshot(ev.data), { eventID: ev.id }]);
      });
    }
  }

  function payload(ev, pixels) {
    var ud = {};
    var k;
    for (k in user) ud[k] = user[k];
    for (k in ev.user) ud[k] = ev.user[k];
    var storage = consent.ad_storage === 'granted';
    var body = {
      pixel_ids: pixels,
      event_name: ev.name,
      event_id: ev.id,
      event_time: ev.time,
      event_source_url: ev.url,
      referrer_url: ev.ref || undefined,
      custom_data: ev.data,
      user_data: Object.keys(ud).length ? ud : undefined,
      fbp: storage ? cookie('_fbp') : undefined,
      fbc: storage ? cookie('_fbc') : undefined,
      consent: snapshot(consent),
      consent_source: consentSource,
      gpc: navigator.globalPrivacyControl === true || undefined,
      test_event_code: cfg.test
    };
    for (k in tcf) body[k] = tcf[k];
    return body;
  }

  function post(url, body) {
    var blob = new Blob([body], { type: BODY_TYPE });
    var small = blob.size <= KEEPALIVE_MAX;
    try {
      if (small && navigator.sendBeacon && navigator.sendBeacon(url, blob)) return;
    } catch (e) { /* fall through to fetch */ }
    fetch(url, {
      method: 'POST',
      body: blob,
      keepalive: small,
      credentials: 'include',
      headers: { 'Content-Type': BODY_TYPE }
    }).catch(function (e) {
      note('POST ' + url + ' failed', e);
    });
  }

  // ---- the public function -------------------------------------------------------------

  function sluice(cmd, a, b, c) {
    try {
      if (cmd === 'track') return track(a, b, c);
      if (cmd === 'init') init(a);
      else if (cmd === 'consent') pageConsent(a);
      else if (cmd === 'userData') user = snapshot(a);
      else note('unknown command ' + cmd);
    } catch (e) {
      note(String(cmd), e);
    }
  }

  try {
    sluice.loaded = true;
    sluice.version = '1';
    w.sluice = sluice;
    var q = prev && prev.q;
    if (q && q.length) [].slice.call(q).forEach(function (args) { sluice.apply(null, args); });
  } catch (e) {
    note('load', e);
  }
})(window, document);
