"""What the outbox promises across processes (Part C): a message committed while no server
runs (the last one killed with SIGKILL) is delivered once one starts again, and two replicas
on one PostgreSQL deliver every message exactly once between them."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import httpx
import pytest
from journeys.domain import Environment, KeyKind
from standardwebhooks import Webhook

from scripts.stack import Stack, free_port, migrate, new_key, running_stack, sql
from tests.api.rest import success
from tests.api.test_offers import run_analytics
from tests.conftest import DELIVERING
from tests.webhooks.receiver import receiving

BASE = "/v1/user-journeys"
PARTNER = "durable"


def _setup(database_url: str) -> tuple[str, str]:
    migrate(database_url)
    return (
        new_key(database_url, PARTNER, Environment.TEST),
        new_key(database_url, PARTNER, Environment.TEST, KeyKind.SECRET),
    )


def _create_webhook(stack: Stack, secret: str, url: str) -> dict[str, str]:
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        answer = http.post(
            f"{BASE}/webhooks",
            json={"url": url, "events": ["offer.created"]},
            headers={"X-API-Key": secret},
        )
        created: dict[str, str] = success(answer)["webhook"]
        return created


def _new_users(stack: Stack, key: str, count: int) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        for number in range(count):
            answer = http.post(
                f"{BASE}/users", json={"externalId": f"u{number:04d}"}, headers={"X-API-Key": key}
            )
            success(answer)


def _pending(database_url: str) -> int:
    rows = sql(database_url, "SELECT count(*) FROM webhook_messages WHERE status = 'pending'")
    return int(rows[0][0])


def _wait_until_none_pending(database_url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while _pending(database_url):
        assert time.monotonic() < deadline, f"{_pending(database_url)} messages still pending"
        time.sleep(0.1)


def test_a_message_committed_after_a_kill_is_delivered_after_restart(database_url: str) -> None:
    key, secret = _setup(database_url)
    with receiving() as receiver:
        with running_stack(database_url, env_overrides=DELIVERING) as first:
            webhook = _create_webhook(first, secret, receiver.url)
            _new_users(first, key, 3)
            first.process.kill()
            first.process.wait()
        # The job commits its offers and their messages with no dispatcher anywhere.
        run_analytics(first, datetime.now(UTC))
        written = _pending(database_url)
        assert written >= 3
        assert receiver.received == []
        with running_stack(database_url, env_overrides=DELIVERING):
            arrived = receiver.wait_for(written)
            # The last answers arrive before their attempts are recorded.
            _wait_until_none_pending(database_url)
    for item in arrived:
        Webhook(webhook["secret"]).verify(item.body, item.headers)
    assert len({item.headers["webhook-id"] for item in arrived}) == written


def _delivered_by(metrics_port: int) -> int:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    found = re.search(
        r'^journeys_webhook_deliveries_total\{outcome="delivered"\} (\S+)$', text, re.M
    )
    return int(float(found.group(1))) if found else 0


@pytest.mark.postgresql_only
def test_two_replicas_deliver_each_message_once(database_url: str) -> None:
    key, secret = _setup(database_url)
    ports = free_port(), free_port()
    with receiving() as receiver:
        # Each request is held a little, so both replicas are delivering at the same time.
        receiver.delay = 0.02
        with (
            running_stack(
                database_url, env_overrides={**DELIVERING, "JOURNEYS_METRICS_PORT": str(ports[0])}
            ) as one,
            running_stack(
                database_url, env_overrides={**DELIVERING, "JOURNEYS_METRICS_PORT": str(ports[1])}
            ) as two,
        ):
            _create_webhook(one, secret, receiver.url)
            _new_users(two, key, 150)
            run_analytics(one, datetime.now(UTC))
            written = int(sql(database_url, "SELECT count(*) FROM webhook_messages")[0][0])
            assert written >= 150
            receiver.wait_for(written, timeout=60)
            _wait_until_none_pending(database_url)
            time.sleep(1)  # a second delivery of anything would have arrived by now
            by_replica = [_delivered_by(ports[0]), _delivered_by(ports[1])]
    ids = [item.headers["webhook-id"] for item in receiver.received]
    assert len(ids) == written, "every message once"
    assert len(set(ids)) == written, "no message twice"
    assert sum(by_replica) == written
    assert all(by_replica), f"both replicas delivered: {by_replica}"
    assert sql(database_url, "SELECT DISTINCT status, attempts FROM webhook_messages") == [
        ("delivered", 1)
    ]
