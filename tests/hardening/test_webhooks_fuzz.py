"""Generated hostile requests to the webhook endpoints (secret key), through the real Envoy
and server, which (as every server but the delivering tests') refuses non-public addresses.

Every answer is the documented envelope, never a 5xx, and nothing is created: each generated
URL is either one the service must refuse (not http(s), malformed, or naming a loopback or
private address) or is left out before it is sent, so no example can ever make the server
post anywhere.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import httpx
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from journeys.webhooks import addresses

from scripts.stack import Stack
from tests.hardening.fuzz import (
    BASE,
    FUZZ,
    JSON_VALUES,
    QUERY_PAIRS,
    TEXT,
    Api,
    envelope,
    query_string,
    segments,
)
from tests.hardening.test_rest_fuzz import TOO_LONG, too_long

WEBHOOKS = f"{BASE}/webhooks"
INSIDE_HOSTS = ["127.0.0.1", "10.1.2.3", "[::1]", "localhost", "169.254.169.254", "192.168.0.7"]
URLS = st.one_of(
    TEXT,
    st.builds(
        "{}://{}{}".format,
        st.sampled_from(["http", "https", "HTTP", "ftp", "file", "javascript", ""]),
        st.sampled_from(INSIDE_HOSTS),
        TEXT,
    ),
)
EVENTS = st.one_of(
    st.lists(st.sampled_from(["offer.created", "user.stage_changed", "offer.claimed"]), max_size=3),
    st.lists(TEXT, max_size=3),
    JSON_VALUES,
)


def deliverable(url: Any) -> bool:
    """Whether the service could accept `url` on some machine: an http(s) URL whose host is a
    name (it might resolve anywhere) or a public address."""
    if not isinstance(url, str):
        return False
    try:
        parts = addresses.parse(url)
    except addresses.AddressRefused:
        return False
    host = (parts.hostname or "").strip("[]")
    if host == "localhost":
        return False
    try:
        return addresses.is_public(ipaddress.ip_address(host))
    except ValueError:
        return True


@pytest.fixture
def api(stack: Stack, secret_key: str, http: httpx.Client) -> Api:
    return Api(stack, secret_key, http)


def _none_created(api: Api) -> None:
    assert envelope(api.send("GET", WEBHOOKS), {200}) == {"webhooks": []}


@FUZZ
@given(url=st.one_of(URLS, JSON_VALUES), events=EVENTS, description=st.one_of(TEXT, JSON_VALUES))
def test_creation_refuses_every_generated_body(
    api: Api, url: Any, events: Any, description: Any
) -> None:
    assume(not deliverable(url))
    body = json.dumps({"url": url, "events": events, "description": description}).encode()

    envelope(
        api.send("POST", WEBHOOKS, body),
        {400, 413},
        {"Invalid request body", "Request body too large"},
    )

    _none_created(api)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=200), TEXT.map(str.encode)))
def test_creation_refuses_bodies_that_are_not_json_objects(api: Api, raw: bytes) -> None:
    envelope(api.send("POST", WEBHOOKS, raw), {400}, {"Invalid request body"})
    _none_created(api)


@FUZZ
@given(segment=segments(), pairs=QUERY_PAIRS)
def test_unknown_webhooks_are_not_found(
    api: Api, segment: str, pairs: list[tuple[str, str]]
) -> None:
    for method, target in (
        ("DELETE", f"{WEBHOOKS}/{segment}{query_string(pairs)}"),
        ("GET", f"{WEBHOOKS}/{segment}/deliveries{query_string(pairs)}"),
    ):
        envelope(
            api.send(method, target),
            {400, 404, 405} | too_long(target),
            {
                "Webhook not found",
                "Not found",
                "Invalid request body",
                "Method not allowed",
                TOO_LONG,
            },
        )
    _none_created(api)
