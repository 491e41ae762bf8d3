#!/usr/bin/env python3
"""Send Conversions API events with the official Python SDK (facebook-business) to
another base URL, and print one JSON line saying exactly what the SDK returned or raised.

Usage:
    python_send.py BASE_URL PIXEL_ID ACCESS_TOKEN CASE

BASE_URL is e.g. http://127.0.0.1:8080 (no trailing path; the SDK appends
/v26.0/PIXEL_ID/events).  Only the SDK's Graph base URL is changed: the request goes
through the SDK's real transport and wire encoding (see README.md).

CASE:
    ok           2 valid website Purchase events (sync EventRequest.execute(), the
                 SDK's default path: FacebookAdsApi -> requests, form-encoded)
    bad_token    same events; meant to be run with a token the server rejects
    stale        1 event whose event_time is 8 days old
    batch        $SDK_EVENTS events (default 1000) in one request
    async_ok     the 2 events through EventRequestAsync.execute() (aiohttp)
    async_stale  the stale event through EventRequestAsync (shows its error handling)

Environment:
    SDK_TEST_EVENT_CODE  sets test_event_code on the request
    SDK_PARTNER_AGENT    sets partner_agent on the request
    SDK_APP_SECRET       makes the SDK add appsecret_proof
    SDK_EVENTS           event count for CASE=batch

Output (stdout, one line), exit code 0 whenever a line was printed:
    {"ok": true, "sdk": "python", "case": ..., "events_received": 2, "fbtrace_id": "...",
     "messages": [], "result_type": "EventResponse"}
    {"ok": false, "sdk": "python", "case": ..., "exception": "FacebookRequestError",
     "code": 190, "subcode": 463, "type": "OAuthException", "status": 400,
     "transient": false, "message": "...", "error_user_title": null, "error_user_msg": null,
     "fbtrace_id": "...", "body": {...}}
    {"ok": false, ..., "exception": "KeyError", "message": "'fbtrace_id'"}  (any other error)
Exit code 2: bad usage.
"""

import asyncio
import json
import os
import sys
import time

# Talk to the loopback server directly even if the environment names a proxy.
_no_proxy = "127.0.0.1,localhost,::1"
for _var in ("NO_PROXY", "no_proxy"):
    os.environ[_var] = ",".join(v for v in (os.environ.get(_var), _no_proxy) if v)

# pylint: disable=wrong-import-position
from facebook_business.adobjects.serverside.action_source import ActionSource
from facebook_business.adobjects.serverside.content import Content
from facebook_business.adobjects.serverside.custom_data import CustomData
from facebook_business.adobjects.serverside.event import Event
from facebook_business.adobjects.serverside.event_request import EventRequest
from facebook_business.adobjects.serverside.user_data import UserData
from facebook_business.api import FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from facebook_business.session import FacebookSession

CASES = ("ok", "bad_token", "stale", "batch", "async_ok", "async_stale")


def make_event(i, event_time):
    user_data = UserData(
        emails=[f"Tester{i}@Example.com "],
        phones=["+1 (650) 555-01%02d" % (i % 100)],
        first_name="Jane",
        last_name="Doe",
        city="Menlo Park",
        state="CA",
        zip_code="94025",
        country_code="us",
        external_id=f"ext-{i}",
        client_ip_address="203.0.113.7",
        client_user_agent="Mozilla/5.0 (X11; Linux x86_64) sluice-sdk-client-test",
        fbc="fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890",
        fbp="fb.1.1558571054389.1098115397",
    )
    custom_data = CustomData(
        value=49.9 + i,
        currency="usd",
        contents=[Content(product_id=f"sku-{i}", quantity=1, item_price=49.9 + i)],
        order_id=f"order-{i}",
    )
    return Event(
        event_name="Purchase",
        event_time=event_time,
        event_id=f"evt-py-{i}",
        event_source_url="https://shop.example.com/checkout/done",
        action_source=ActionSource.WEBSITE,
        user_data=user_data,
        custom_data=custom_data,
    )


def build_events(case):
    now = int(time.time())
    if case in ("stale", "async_stale"):
        return [make_event(0, now - 8 * 86400)]
    if case == "batch":
        count = int(os.environ.get("SDK_EVENTS", "1000"))
        return [make_event(i, now) for i in range(count)]
    return [make_event(0, now), make_event(1, now)]


def request_kwargs():
    kwargs = {}
    if os.environ.get("SDK_TEST_EVENT_CODE"):
        kwargs["test_event_code"] = os.environ["SDK_TEST_EVENT_CODE"]
    if os.environ.get("SDK_PARTNER_AGENT"):
        kwargs["partner_agent"] = os.environ["SDK_PARTNER_AGENT"]
    return kwargs


def describe_response(case, response):
    out = {"ok": True, "sdk": "python", "case": case, "result_type": type(response).__name__}
    out["events_received"] = getattr(response, "events_received", None)
    out["fbtrace_id"] = getattr(response, "fbtrace_id", None)
    out["messages"] = getattr(response, "messages", None)
    return out


def describe_error(case, err):
    out = {"ok": False, "sdk": "python", "case": case, "exception": type(err).__name__}
    if isinstance(err, FacebookRequestError):
        body = err.body()
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        out.update({
            "code": err.api_error_code(),
            "subcode": err.api_error_subcode(),
            "type": err.api_error_type(),
            "status": err.http_status(),
            "transient": err.api_transient_error(),
            "message": err.api_error_message(),
            "sdk_message": err.get_message(),
            "error_user_title": error.get("error_user_title"),
            "error_user_msg": error.get("error_user_msg"),
            "fbtrace_id": error.get("fbtrace_id"),
            "body": body,
        })
    else:
        out["message"] = str(err)
    return out


def main(argv):
    if len(argv) != 5 or argv[4] not in CASES:
        sys.stderr.write(
            f"usage: {argv[0]} BASE_URL PIXEL_ID ACCESS_TOKEN CASE  (CASE: {'|'.join(CASES)})\n")
        return 2
    base_url, pixel_id, access_token, case = argv[1].rstrip("/"), argv[2], argv[3], argv[4]

    # The one change: the Graph base URL.  FacebookSession.GRAPH is the SDK's base-URL
    # constant; the sync path reads it through the session (FacebookAdsApi.call), the
    # async path and execute_with_client read the class attribute directly, so set it
    # on the class before any request is built.
    FacebookSession.GRAPH = base_url
    # crash_log=False: the SDK's crash reporter would otherwise hook sys.excepthook and
    # post crash reports to the real Graph host.
    FacebookAdsApi.init(
        access_token=access_token,
        app_secret=os.environ.get("SDK_APP_SECRET") or None,
        crash_log=False,
    )

    events = build_events(case)
    try:
        if case.startswith("async_"):
            from facebook_business.adobjects.serverside.event_request_async import (  # pylint: disable=import-outside-toplevel
                EventRequestAsync,
            )
            request = EventRequestAsync(pixel_id=pixel_id, events=events, **request_kwargs())
            response = asyncio.run(request.execute())
        else:
            request = EventRequest(pixel_id=pixel_id, events=events, **request_kwargs())
            response = request.execute()
        out = describe_response(case, response)
    except Exception as err:  # pylint: disable=broad-except
        out = describe_error(case, err)
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
