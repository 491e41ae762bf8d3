#!/usr/bin/env python3
"""CPU-path benchmark of the official Python SDK (facebook-business).

Builds N Purchase events from the deterministic raw-input generator described in
README.md, and pushes them, 1000 per request, through the SDK's own
``EventRequest.execute()`` code path (normalize + SHA-256 + JSON).  The request
goes to a custom ``HttpServiceInterface`` that only serializes the body the
SDK's default transport would put on the wire and counts its bytes; nothing is
sent anywhere.

Usage:
    workload.py [EVENTS]                 # default 100000 (or $SDK_BENCH_EVENTS)
    workload.py --dump-raw K             # print the first K raw inputs as JSON lines
    workload.py --dump-events K          # print the first K SDK-normalized events

Environment:
    SDK_BENCH_EVENTS   event count (argv wins)
    SDK_BENCH_SEED     PRNG seed (default 0x2545F491, see README.md)
    SDK_BENCH_BATCH    events per request (default 1000)
    SDK_BENCH_ENCODING body encoding: "json" (default) or "form" (see README.md)
    SDK_BENCH_DIGEST   if "1", also report the SHA-256 of all bodies (costs time)

Prints exactly one JSON line on stdout.
"""

import time

T0 = time.perf_counter()  # before the SDK imports: they are part of the cost

# pylint: disable=wrong-import-position
import hashlib
import json
import os
import resource
import sys
from urllib.parse import urlencode

from facebook_business.adobjects.serverside.action_source import ActionSource
from facebook_business.adobjects.serverside.content import Content
from facebook_business.adobjects.serverside.custom_data import CustomData
from facebook_business.adobjects.serverside.event import Event
from facebook_business.adobjects.serverside.event_request import EventRequest
from facebook_business.adobjects.serverside.http_service_interface import (
    HttpServiceInterface,
)
from facebook_business.adobjects.serverside.user_data import UserData
from facebook_business.api import _top_level_param_json_encode

# ---------------------------------------------------------------------------
# Deterministic raw-input generator.  MUST stay identical to workload.js and to
# the specification in README.md (the Rust benchmark reimplements it).
# ---------------------------------------------------------------------------

DEFAULT_SEED = 0x2545F491
BASE_TIME = 1795860000  # event_time of event 0 (Unix seconds)
MASK32 = 0xFFFFFFFF

FIRST_NAMES = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda",
    "David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica",
    "Thomas", "Sarah", "Charles", "Karen", "Mohammed", "Aiko", "Jos\u00e9", "Zo\u00eb",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Taylor", "Moore",
    "O'Brien", "Van der Berg", "Nakamura", "M\u00fcller",
]
# (city, state, country ISO 3166-1 alpha-2, phone country calling code)
LOCATIONS = [
    ("New York", "NY", "US", "1"),
    ("Los Angeles", "CA", "US", "1"),
    ("Chicago", "IL", "US", "1"),
    ("Houston", "TX", "US", "1"),
    ("Phoenix", "AZ", "US", "1"),
    ("San Francisco", "CA", "US", "1"),
    ("St. Louis", "MO", "US", "1"),
    ("Winston-Salem", "NC", "US", "1"),
    ("Seattle", "WA", "US", "1"),
    ("Miami", "FL", "US", "1"),
    ("Toronto", "ON", "CA", "1"),
    ("London", "LND", "GB", "44"),
    ("Berlin", "BE", "DE", "49"),
    ("M\u00fcnchen", "BY", "DE", "49"),
    ("Paris", "IDF", "FR", "33"),
    ("Sydney", "NSW", "AU", "61"),
]
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
]
CURRENCIES = ["USD", "usd", "EUR", " Gbp "]


class XorShift32:
    """Marsaglia xorshift32 (13, 17, 5) on an unsigned 32-bit state."""

    def __init__(self, seed):
        self.x = (seed & MASK32) or DEFAULT_SEED

    def next(self):
        x = self.x
        x ^= (x << 13) & MASK32
        x ^= x >> 17
        x ^= (x << 5) & MASK32
        self.x = x
        return x

    def below(self, n):
        return self.next() % n


def styled(name, style):
    """Case/whitespace variant 0..3 used for fn, ln and ct."""
    if style == 0:
        return name
    if style == 1:
        return name.upper()
    if style == 2:
        return name.lower()
    return "  " + name + " "


def gen_raw(rng, n):
    """Raw (un-normalized) inputs of event n.  The draw order is normative."""
    city, state, country, cc = LOCATIONS[rng.below(len(LOCATIONS))]
    first = FIRST_NAMES[rng.below(len(FIRST_NAMES))]
    last = LAST_NAMES[rng.below(len(LAST_NAMES))]
    em_style = rng.below(4)
    fn_style = rng.below(4)
    ln_style = rng.below(4)
    ct_style = rng.below(4)
    st_style = rng.below(3)
    country_style = rng.below(3)
    area = 200 + rng.below(800)
    exch = rng.below(1000)
    line = rng.below(10000)
    ph_style = rng.below(4)
    zip5 = rng.below(100000)
    zip_style = rng.below(3)
    plus4 = rng.below(10000)
    ip_kind = rng.below(4)
    a = 1 + rng.below(223)
    b = rng.below(256)
    c = rng.below(256)
    d = 1 + rng.below(254)
    ua = USER_AGENTS[rng.below(len(USER_AGENTS))]
    fbc_age = rng.below(86400000)
    fbc_tok = rng.next()
    fbp_age = rng.below(2592000000)
    fbp_rand = rng.next()
    currency = CURRENCIES[rng.below(len(CURRENCIES))]
    contents = []
    for _ in range(3):
        sku = rng.below(100000)
        qty = 1 + rng.below(3)
        price_cents = 100 + rng.below(49900)
        contents.append((f"SKU-{sku:05d}", qty, price_cents))

    event_time = BASE_TIME + n // 10
    em = (
        f"user{n}@example{n % 97}.com",
        f"User{n}@Example{n % 97}.COM",
        f"  USER.{n}@EXAMPLE{n % 97}.COM ",
        f"\tuser_{n}@Mail{n % 13}.Example.org\n",
    )[em_style]
    ph = (
        f"+{cc} ({area}) {exch:03d}-{line:04d}",
        f"{cc}{area}{exch:03d}{line:04d}",
        f"00{cc} {area} {exch:03d} {line:04d}",
        f"+{cc}-{area}-{exch:03d}-{line:04d}",
    )[ph_style]
    st = (state, state.lower(), " " + state + " ")[st_style]
    country_raw = (country, country.lower(), " " + country + " ")[country_style]
    zp = (f"{zip5:05d}", f"{zip5:05d}-{plus4:04d}", f" {zip5:05d} ")[zip_style]
    if ip_kind == 3:
        ip = f"2001:db8:{a * 256 + b:x}::{c * 256 + d:x}"
    else:
        ip = f"{a}.{b}.{c}.{d}"
    return {
        "n": n,
        "event_name": "Purchase",
        "event_time": event_time,
        "event_id": f"evt-{n}",
        "event_source_url": f"https://shop{n % 7}.example.com/checkout?order={n}",
        "action_source": "website",
        "em": em,
        "ph": ph,
        "fn": styled(first, fn_style),
        "ln": styled(last, ln_style),
        "ct": styled(city, ct_style),
        "st": st,
        "zp": zp,
        "country": country_raw,
        "external_id": f"ext-{n}",
        "client_ip_address": ip,
        "client_user_agent": ua,
        "fbc": f"fb.1.{event_time * 1000 - fbc_age}.IwAR{fbc_tok:08x}",
        "fbp": f"fb.1.{event_time * 1000 - fbp_age}.{fbp_rand}",
        "currency": currency,
        # value in cents is exact; the float is value_cents / 100
        "value_cents": sum(q * p for _, q, p in contents),
        "contents": [{"id": i, "quantity": q, "item_price_cents": p} for i, q, p in contents],
        "order_id": f"order-{n}",
    }


# ---------------------------------------------------------------------------
# SDK side
# ---------------------------------------------------------------------------


def build_event(raw):
    user_data = UserData(
        email=raw["em"],
        phone=raw["ph"],
        first_name=raw["fn"],
        last_name=raw["ln"],
        city=raw["ct"],
        state=raw["st"],
        zip_code=raw["zp"],
        country_code=raw["country"],
        external_id=raw["external_id"],
        client_ip_address=raw["client_ip_address"],
        client_user_agent=raw["client_user_agent"],
        fbc=raw["fbc"],
        fbp=raw["fbp"],
    )
    custom_data = CustomData(
        value=raw["value_cents"] / 100,
        currency=raw["currency"],
        contents=[
            Content(product_id=c["id"], quantity=c["quantity"],
                    item_price=c["item_price_cents"] / 100)
            for c in raw["contents"]
        ],
        order_id=raw["order_id"],
    )
    return Event(
        event_name=raw["event_name"],
        event_time=raw["event_time"],
        event_id=raw["event_id"],
        event_source_url=raw["event_source_url"],
        action_source=ActionSource.WEBSITE,
        user_data=user_data,
        custom_data=custom_data,
    )


class SerializeOnlyClient(HttpServiceInterface):
    """Serializes the request body and counts bytes; sends nothing.

    "form": exactly the body the SDK's default sync transport (FacebookAdsApi.call
    via requests) would send: top-level lists/dicts JSON-encoded by the SDK's own
    _top_level_param_json_encode, then application/x-www-form-urlencoded.
    "json": json.dumps(params) -- the same params as a JSON document (data stays a
    list of JSON-encoded strings); the baselines' 1,527 B/event figure.
    """

    def __init__(self, encoding, digest):
        self.encoding = encoding
        self.bytes = 0
        self.requests = 0
        self.digest = hashlib.sha256() if digest else None

    def execute(self, url, method, request_options, headers, params):
        if self.encoding == "form":
            body = urlencode(_top_level_param_json_encode(params)).encode("ascii")
        else:
            body = json.dumps(params).encode("utf-8")
        self.bytes += len(body)
        self.requests += 1
        if self.digest is not None:
            self.digest.update(body)
        return {"events_received": len(params["data"]), "messages": [], "fbtrace_id": "local"}


def main(argv):
    seed = int(os.environ.get("SDK_BENCH_SEED", str(DEFAULT_SEED)), 0)
    args = argv[1:]
    if args and args[0] in ("--dump-raw", "--dump-events"):
        k = int(args[1]) if len(args) > 1 else 5
        rng = XorShift32(seed)
        for n in range(k):
            raw = gen_raw(rng, n)
            if args[0] == "--dump-raw":
                print(json.dumps(raw, ensure_ascii=False))
            else:
                print(json.dumps(build_event(raw).normalize(), ensure_ascii=False))
        return 0

    events = int(args[0]) if args else int(os.environ.get("SDK_BENCH_EVENTS", "100000"))
    batch = int(os.environ.get("SDK_BENCH_BATCH", "1000"))
    encoding = os.environ.get("SDK_BENCH_ENCODING", "json")
    if encoding not in ("json", "form"):
        raise SystemExit("SDK_BENCH_ENCODING must be json or form")
    client = SerializeOnlyClient(encoding, os.environ.get("SDK_BENCH_DIGEST") == "1")

    rng = XorShift32(seed)
    received = 0
    n = 0
    while n < events:
        size = min(batch, events - n)
        batch_events = [build_event(gen_raw(rng, n + i)) for i in range(size)]
        n += size
        request = EventRequest(
            pixel_id="1234567890",
            events=batch_events,
            http_client=client,
            access_token="bench-token",
        )
        received += request.execute()["events_received"]
    if received != events:
        raise SystemExit(f"client saw {received} events, expected {events}")

    # From the first line of this script: includes the SDK imports, excludes the
    # interpreter's own start-up (~20 ms); time the whole process from outside if needed.
    wall = time.perf_counter() - T0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out = {
        "impl": "python-sdk",
        "events": events,
        "seconds": round(wall, 4),
        "events_per_sec": round(events / wall, 1),
        "bytes": client.bytes,
        "max_rss_kb": usage.ru_maxrss,
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 4),
        "requests": client.requests,
        "encoding": encoding,
        "seed": seed,
    }
    if client.digest is not None:
        out["body_sha256"] = client.digest.hexdigest()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
