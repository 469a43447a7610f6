"""Webhooks end to end (Part C): created through the real Envoy and server, delivered by the
server's dispatcher to a real HTTP receiver on 127.0.0.1, verified with the Standard
Webhooks library, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from journeys.domain import Environment, KeyKind
from standardwebhooks import Webhook

from scripts.stack import Stack, wait_until
from tests.api.rest import error, success
from tests.api.test_events import stamp
from tests.api.test_offers import claim, offers, run_analytics
from tests.webhooks.receiver import Received, Receiver, receiving

BASE = "/v1/user-journeys"
ALL_EVENTS = ["user.stage_changed", "offer.created", "offer.claimed", "offer.expired"]
WEBHOOK_KEYS = ["id", "url", "events", "description", "status", "createdAt"]
DELIVERY_KEYS = [
    "messageId",
    "type",
    "attempts",
    "status",
    "lastResponseStatus",
    "lastAttemptAt",
    "nextAttemptAt",
]


class Tenant:
    """One partner's test environment on the delivering stack: a public and a secret key."""

    def __init__(self, stack: Stack, http: httpx.Client) -> None:
        partner = f"partner-{uuid.uuid4()}"
        self.stack = stack
        self.http = http
        self.key = stack.new_key(partner, Environment.TEST)
        self.secret = stack.new_key(partner, Environment.TEST, KeyKind.SECRET)

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.secret}

    def create_webhook(self, url: str, events: list[str] | None = None) -> dict[str, Any]:
        body = {"url": url, "events": events or ALL_EVENTS, "description": "crm sync"}
        answer = self.http.post(f"{BASE}/webhooks", json=body, headers=self.headers())
        created: dict[str, Any] = success(answer)["webhook"]
        return created

    def deliveries(self, webhook_id: str) -> list[dict[str, Any]]:
        answer = self.http.get(f"{BASE}/webhooks/{webhook_id}/deliveries", headers=self.headers())
        found: list[dict[str, Any]] = success(answer)["deliveries"]
        return found

    def new_user(self, external_id: str | None = None) -> str:
        external_id = external_id or f"user-{uuid.uuid4().hex[:8]}"
        answer = self.http.post(
            f"{BASE}/users", json={"externalId": external_id}, headers={"X-API-Key": self.key}
        )
        success(answer)
        return external_id


@pytest.fixture
def http(delivering_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=delivering_stack.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def tenant(delivering_stack: Stack, http: httpx.Client) -> Tenant:
    return Tenant(delivering_stack, http)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


def verified(secret: str, received: Received) -> dict[str, Any]:
    """The message, as the partner's Standard Webhooks library verifies it."""
    message: dict[str, Any] = Webhook(secret).verify(received.body, received.headers)
    return message


def test_every_event_type_reaches_the_receiver_signed(
    tenant: Tenant, receiver: Receiver, http: httpx.Client
) -> None:
    webhook = tenant.create_webhook(receiver.url)
    assert list(webhook) == [*WEBHOOK_KEYS, "secret"]
    assert webhook["secret"].startswith("whsec_")
    assert webhook["status"] == "enabled"
    assert webhook["events"] == ALL_EVENTS

    now = datetime.now(UTC).replace(microsecond=0)
    user = tenant.new_user()
    run_analytics(tenant.stack, now)
    made = offers(http, tenant.key, user)
    assert made, "a new user is offered something"
    created = receiver.wait_for(len(made))
    by_offer = {}
    for item in created:
        message = verified(webhook["secret"], item)
        assert message["type"] == "offer.created"
        assert message["timestamp"] == stamp(now)
        by_offer[message["data"]["offer"]["id"]] = message["data"]["offer"]
    # The offer exactly as GET offers prints it.
    assert by_offer == {offer["id"]: offer for offer in made}

    claimed = success(claim(http, tenant.key, user, made[0]["id"]))["offer"]
    message = verified(webhook["secret"], receiver.wait_for(len(made) + 1)[-1])
    assert message["type"] == "offer.claimed"
    assert message["data"] == {"offer": claimed}

    later = now + timedelta(days=40)
    run_analytics(tenant.stack, later)
    wait_until(lambda: receiver.of_type("user.stage_changed") and receiver.of_type("offer.expired"))
    (change,) = [
        verified(webhook["secret"], item) for item in receiver.of_type("user.stage_changed")
    ]
    # As the run stored it (GET /users/{id} computes as of the request).
    (stored,) = success(http.get(f"{BASE}/users", headers=tenant.headers()))["users"]
    assert change == {
        "type": "user.stage_changed",
        "timestamp": stamp(later),
        "data": {
            "externalId": user,
            "fromStage": "new",
            "toStage": "churned",
            "at": stamp(later),
            "engagementTier": stored["engagementTier"],
            "engagementScore": stored["engagementScore"],
            "churnRiskScore": stored["churnRiskScore"],
        },
    }
    expired = [verified(webhook["secret"], item) for item in receiver.of_type("offer.expired")]
    assert {message["data"]["offer"]["id"] for message in expired} == {
        offer["id"] for offer in made[1:]
    }
    assert all(message["data"]["offer"]["status"] == "expired" for message in expired)
    assert all(message["data"]["offer"]["claimedAt"] is None for message in expired)

    for item in receiver.received:
        assert item.path == "/hooks/journeys"
        assert item.headers["content-type"] == "application/json"
        assert item.headers["webhook-id"].startswith("msg_")
        assert abs(int(item.headers["webhook-timestamp"]) - time.time()) < 60
    ids = [item.headers["webhook-id"] for item in receiver.received]
    assert len(set(ids)) == len(ids), "one message per change"
    log = tenant.deliveries(webhook["id"])
    assert {entry["messageId"] for entry in log} == set(ids)
    assert all(list(entry) == DELIVERY_KEYS for entry in log)
    assert all(entry["status"] == "delivered" and entry["attempts"] == 1 for entry in log)
    assert all(entry["lastResponseStatus"] == 200 for entry in log)
    assert all(entry["nextAttemptAt"] is None for entry in log)


def test_a_failed_attempt_is_retried_with_the_same_message_id(
    tenant: Tenant, receiver: Receiver, http: httpx.Client
) -> None:
    webhook = tenant.create_webhook(receiver.url, ["offer.created"])
    receiver.answers = [500]
    user = tenant.new_user()
    run_analytics(tenant.stack, datetime.now(UTC))
    count = len(offers(http, tenant.key, user))
    first, *_ = receiver.wait_for(count + 1)
    wait_until(
        lambda: all(entry["status"] == "delivered" for entry in tenant.deliveries(webhook["id"]))
    )
    again = [
        item
        for item in receiver.received
        if item.headers["webhook-id"] == first.headers["webhook-id"]
    ]
    assert len(again) == 2, "the refused message came again"
    assert again[0].body == again[1].body
    for item in again:
        verified(webhook["secret"], item)
    log = {entry["messageId"]: entry for entry in tenant.deliveries(webhook["id"])}
    retried = log[first.headers["webhook-id"]]
    assert retried["attempts"] == 2
    assert retried["lastResponseStatus"] == 200


def test_a_message_fails_once_the_retry_schedule_is_spent(
    tenant: Tenant, receiver: Receiver, http: httpx.Client
) -> None:
    webhook = tenant.create_webhook(receiver.url, ["offer.created"])
    receiver.then = 503
    user = tenant.new_user()
    run_analytics(tenant.stack, datetime.now(UTC))
    count = len(offers(http, tenant.key, user))
    # The first attempt and the three retries of JOURNEYS_WEBHOOK_RETRY_SCHEDULE=1,1,1.
    wait_until(
        lambda: all(entry["status"] == "failed" for entry in tenant.deliveries(webhook["id"]))
    )
    log = tenant.deliveries(webhook["id"])
    assert len(log) == count
    assert all(entry["attempts"] == 4 and entry["lastResponseStatus"] == 503 for entry in log)
    assert all(entry["nextAttemptAt"] is None for entry in log)
    assert len(receiver.received) == 4 * count


def test_gone_disables_the_webhook(tenant: Tenant, receiver: Receiver, http: httpx.Client) -> None:
    webhook = tenant.create_webhook(receiver.url, ["offer.created"])
    receiver.then = 410
    tenant.new_user()
    run_analytics(tenant.stack, datetime.now(UTC))
    receiver.wait_for(1)

    def listed() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = success(
            http.get(f"{BASE}/webhooks", headers=tenant.headers())
        )["webhooks"]
        return found

    wait_until(lambda: listed()[0]["status"] == "disabled")
    wait_until(
        lambda: all(entry["status"] == "failed" for entry in tenant.deliveries(webhook["id"]))
    )
    sent = len(receiver.received)
    # A disabled webhook takes no new messages; the enabled one beside it does.
    with receiving() as other:
        tenant.create_webhook(other.url, ["offer.created"])
        tenant.new_user()
        run_analytics(tenant.stack, datetime.now(UTC) + timedelta(seconds=1))
        other.wait_for(1)
    assert len(receiver.received) == sent


def test_a_deleted_webhook_gets_nothing_more(
    tenant: Tenant, receiver: Receiver, http: httpx.Client
) -> None:
    kept = tenant.create_webhook(receiver.url, ["offer.created"])
    with receiving() as dropped_receiver:
        dropped = tenant.create_webhook(dropped_receiver.url, ["offer.created"])
        answer = http.delete(f"{BASE}/webhooks/{dropped['id']}", headers=tenant.headers())
        deleted = success(answer)["webhook"]
        assert deleted == {**{k: dropped[k] for k in WEBHOOK_KEYS}, "status": "deleted"}
        listed = success(http.get(f"{BASE}/webhooks", headers=tenant.headers()))["webhooks"]
        assert [item["id"] for item in listed] == [kept["id"]]
        assert "secret" not in listed[0]
        tenant.new_user()
        run_analytics(tenant.stack, datetime.now(UTC))
        # Both were subscribed in the same transaction: the kept one's message arriving
        # means the deleted one's would have been written too.
        receiver.wait_for(1)
        time.sleep(1.5)
        assert dropped_receiver.received == []
    for method, path in (
        ("DELETE", f"{BASE}/webhooks/{dropped['id']}"),
        ("GET", f"{BASE}/webhooks/{dropped['id']}/deliveries"),
    ):
        error(http.request(method, path, headers=tenant.headers()), 404, "Webhook not found")


def test_another_tenant_sees_and_receives_none_of_them(
    tenant: Tenant, receiver: Receiver, delivering_stack: Stack, http: httpx.Client
) -> None:
    webhook = tenant.create_webhook(receiver.url)
    other = Tenant(delivering_stack, http)
    live = Tenant(delivering_stack, http)
    live.secret = delivering_stack.new_key(
        f"partner-{uuid.uuid4()}", Environment.LIVE, KeyKind.SECRET
    )
    for stranger in (other, live):
        listed = success(http.get(f"{BASE}/webhooks", headers=stranger.headers()))
        assert listed == {"webhooks": []}
        for method, path in (
            ("DELETE", f"{BASE}/webhooks/{webhook['id']}"),
            ("GET", f"{BASE}/webhooks/{webhook['id']}/deliveries"),
        ):
            error(http.request(method, path, headers=stranger.headers()), 404, "Webhook not found")
    # The other tenant's changes go to its own webhook only.
    with receiving() as theirs:
        other.create_webhook(theirs.url, ["offer.created"])
        other.new_user()
        run_analytics(delivering_stack, datetime.now(UTC))
        theirs.wait_for(1)
    time.sleep(1.5)
    assert receiver.received == []
    assert tenant.deliveries(webhook["id"]) == []


def test_the_webhook_limit_and_request_errors(tenant: Tenant, http: httpx.Client) -> None:
    url = "http://127.0.0.1:9/hook"
    for _ in range(10):
        tenant.create_webhook(url, ["offer.claimed"])
    answer = http.post(
        f"{BASE}/webhooks", json={"url": url, "events": ["offer.claimed"]}, headers=tenant.headers()
    )
    error(answer, 400, "At most 10 webhooks per partner and environment")
    public = http.get(f"{BASE}/webhooks", headers={"X-API-Key": tenant.key})
    error(public, 403, "This endpoint requires a secret key")


def test_the_log_limit_is_checked(tenant: Tenant, receiver: Receiver, http: httpx.Client) -> None:
    webhook = tenant.create_webhook(receiver.url, ["offer.created"])
    for limit in ("0", "101", "-1"):
        answer = http.get(
            f"{BASE}/webhooks/{webhook['id']}/deliveries",
            params={"limit": limit},
            headers=tenant.headers(),
        )
        error(answer, 400, "Invalid request body: limit must be between 1 and 100")
    tenant.new_user()
    tenant.new_user()
    run_analytics(tenant.stack, datetime.now(UTC))
    wait_until(lambda: len(tenant.deliveries(webhook["id"])) >= 3)
    answer = http.get(
        f"{BASE}/webhooks/{webhook['id']}/deliveries",
        params={"limit": "2"},
        headers=tenant.headers(),
    )
    assert len(success(answer)["deliveries"]) == 2


def test_bodies_are_compact_json(tenant: Tenant, receiver: Receiver) -> None:
    webhook = tenant.create_webhook(receiver.url, ["offer.created"])
    tenant.new_user()
    run_analytics(tenant.stack, datetime.now(UTC))
    (item,) = receiver.wait_for(1)[:1]
    document = json.loads(item.body)
    assert list(document) == ["type", "timestamp", "data"]
    assert item.body == json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    assert verified(webhook["secret"], item) == document
