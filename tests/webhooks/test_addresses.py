"""The guard on where webhooks may point (Part C): at creation through the real Envoy and
server, which refuse every non-public address when delivery to them is not allowed, and at
delivery, where a webhook pointing inside is refused before any connection is made."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from datetime import UTC, datetime

import httpx
import pytest
from journeys.domain import Environment, KeyKind
from journeys.storage.database import Database
from journeys.usecases.auth import Operator
from journeys.usecases.webhooks import NewWebhook, Webhooks
from journeys.webhooks import addresses

from scripts.stack import migrate, new_key, running_stack
from tests.api.rest import error, success
from tests.api.test_offers import offers, run_analytics
from tests.webhooks.receiver import receiving

BASE = "/v1/user-journeys"
REFUSED_URL = "Invalid request body: url must be a public http(s) address"

#: Inside addresses, each a way into the machine or its network.
NOT_PUBLIC = [
    "http://127.0.0.1/hook",
    "http://127.0.0.1:8080/hook",
    "http://10.0.0.1/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fe80::1]/hook",
    "http://[fc00::1]/hook",
    "http://0.0.0.0/hook",
    "http://100.64.0.1/hook",
    "http://224.0.0.1/hook",
    "http://localhost/hook",
    "https://localhost:8443/hook",
    "http://2130706433/hook",  # 127.0.0.1 as one decimal number
    "http://0x7f000001/hook",
]
NOT_HTTP = [
    "ftp://203.0.113.10/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1/",
    "//127.0.0.1/hook",
    "hook",
    "http://",
    "http:///hook",
    "http://exa mple.com/",
    "http://127.0.0.1:99999/hook",
    "https://" + "a" * 2048 + ".com/",
]


@pytest.mark.parametrize("url", NOT_PUBLIC)
def test_non_public_addresses_are_refused(url: str) -> None:
    with pytest.raises(addresses.AddressRefused):
        asyncio.run(addresses.resolve(url, allow_private=False))


@pytest.mark.parametrize("url", NOT_HTTP)
def test_anything_but_an_http_url_is_refused_even_when_private_is_allowed(url: str) -> None:
    with pytest.raises(addresses.AddressRefused):
        asyncio.run(addresses.resolve(url, allow_private=True))


def test_a_public_address_is_connected_to_by_address_with_the_host_kept() -> None:
    # An address literal: resolving it needs no name server and nothing is connected to.
    target = asyncio.run(addresses.resolve("https://203.0.114.7:8443/a?b=c", allow_private=False))
    assert target.address == ipaddress.ip_address("203.0.114.7")
    assert target.url == "https://203.0.114.7:8443/a?b=c"
    assert target.host_header == "203.0.114.7:8443"


def test_allowed_private_addresses_are_connected_to_by_the_checked_address() -> None:
    target = asyncio.run(addresses.resolve("http://localhost:8080/hook", allow_private=True))
    assert target.address.is_loopback
    assert target.host == "localhost"
    assert target.host_header == "localhost:8080"
    assert target.url in ("http://127.0.0.1:8080/hook", "http://[::1]:8080/hook")


def test_the_documented_addresses_are_public_and_the_rest_are_not() -> None:
    assert addresses.is_public(ipaddress.ip_address("8.8.8.8"))
    assert addresses.is_public(ipaddress.ip_address("2606:4700:4700::1111"))
    for inside in ("127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "::ffff:10.0.0.1"):
        assert not addresses.is_public(ipaddress.ip_address(inside)), inside


@pytest.mark.parametrize("url", [*NOT_PUBLIC, *NOT_HTTP[:4]])
def test_creation_refuses_them_through_the_gateway(
    url: str, http: httpx.Client, secret_key: str
) -> None:
    answer = http.post(
        f"{BASE}/webhooks",
        json={"url": url, "events": ["offer.created"]},
        headers={"X-API-Key": secret_key},
    )
    error(answer, 400, REFUSED_URL)
    listed = http.get(f"{BASE}/webhooks", headers={"X-API-Key": secret_key})
    assert success(listed) == {"webhooks": []}


KNOWN = "user.stage_changed, offer.created, offer.claimed, offer.expired"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"events": ["offer.created"]}, REFUSED_URL),
        (
            {"url": "http://203.0.114.7/", "events": []},
            "Invalid request body: events must name at least one event type",
        ),
        (
            {"url": "http://203.0.114.7/"},
            "Invalid request body: events must name at least one event type",
        ),
        (
            {"url": "http://203.0.114.7/", "events": ["offer.created", "user.deleted"]},
            f"Invalid request body: events must be among {KNOWN}; got 'user.deleted'",
        ),
        (
            {"url": "http://203.0.114.7/", "events": ["x" * 100_000]},
            f"Invalid request body: events must be among {KNOWN}; got '{'x' * 64}'…",
        ),
        (
            {"url": "http://203.0.114.7/", "events": ["offer.created"], "description": "x" * 501},
            "Invalid request body: description must be at most 500 characters",
        ),
    ],
)
def test_bad_bodies_are_refused_naming_the_field(
    body: dict[str, object], message: str, http: httpx.Client, secret_key: str
) -> None:
    answer = http.post(f"{BASE}/webhooks", json=body, headers={"X-API-Key": secret_key})
    error(answer, 400, message)


def test_delivery_refuses_an_inside_address_before_connecting(database_url: str) -> None:
    """A webhook stored while delivery inside was allowed (as an operator's CLI might), served
    by a server that does not allow it: the attempt is refused, the receiver sees nothing."""
    migrate(database_url)
    partner = "guarded"
    key = new_key(database_url, partner, Environment.TEST)
    secret = new_key(database_url, partner, Environment.TEST, KeyKind.SECRET)
    with receiving() as receiver:

        async def create() -> str:
            async with Database(database_url) as database:
                webhooks = Webhooks(database, allow_private=True)
                created = await webhooks.create_webhook(
                    Operator(partner, Environment.TEST),
                    NewWebhook(receiver.url, ["offer.created"], ""),
                )
                return created.id

        webhook_id = asyncio.run(create())
        overrides = {"JOURNEYS_WEBHOOK_RETRY_SCHEDULE": "60"}
        with (
            running_stack(database_url, env_overrides=overrides) as stack,
            httpx.Client(base_url=stack.base_url, timeout=30) as http,
        ):
            success(
                http.post(
                    f"{BASE}/users", json={"externalId": "inside"}, headers={"X-API-Key": key}
                )
            )
            run_analytics(stack, datetime.now(UTC))
            count = len(offers(http, key, "inside"))
            log = _wait_for_attempts(http, secret, webhook_id, count)
        assert receiver.received == []
    assert all(entry["lastResponseStatus"] is None for entry in log)
    assert all(entry["status"] == "pending" and entry["nextAttemptAt"] for entry in log)


def _wait_for_attempts(
    http: httpx.Client, secret: str, webhook_id: str, count: int
) -> list[dict[str, object]]:
    deadline = time.monotonic() + 20
    while True:
        answer = http.get(f"{BASE}/webhooks/{webhook_id}/deliveries", headers={"X-API-Key": secret})
        log: list[dict[str, object]] = success(answer)["deliveries"]
        if len(log) == count and all(entry["attempts"] == 1 for entry in log):
            return log
        assert time.monotonic() < deadline, log
        time.sleep(0.1)
