"""Concurrent writers on one tenant: batches that share users and messageIds in different
orders all succeed (no deadlock, no 500) and every counter adds up. SQLite runs writers one at
a time; PostgreSQL runs them at once, so this is where lock order matters."""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

import httpx

from scripts.stack import Stack
from tests.api.rest import headers, success
from tests.api.test_events import play, profile, track

BASE = "/v1/user-journeys"
CLIENTS = 8
ROUNDS = 8  # even rounds: SHARED events with messageIds; odd: OWN events without
SHARED, OWN = 300, 40
USERS = [f"crowd-{n}" for n in range(5)]


def test_overlapping_batches_in_different_orders_all_succeed(
    http: httpx.Client, key: str, stack: Stack
) -> None:
    for external_id in USERS:  # existing profiles: nothing serializes writers on creating them
        success(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": external_id}))
    statuses: list[int] = []
    barrier = threading.Barrier(CLIENTS)

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=stack.base_url, timeout=60) as own:
            for round_ in range(ROUNDS):
                # Every client sends the same messageIds, or the same users, in its own order.
                items: list[dict[str, Any]] = (
                    [play(USERS[0], messageId=f"r{round_}-{n}") for n in range(SHARED)]
                    if round_ % 2 == 0
                    else [play(USERS[n % len(USERS)]) for n in range(OWN)]
                )
                rng.shuffle(items)
                barrier.wait()
                response = own.post(f"{BASE}/track", headers=headers(key), json={"events": items})
                statuses.append(response.status_code)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(statuses) == {200: CLIENTS * ROUNDS}
    stored = SHARED * ROUNDS // 2 + OWN * CLIENTS * ROUNDS // 2
    assert sum(profile(http, key, user)["totalEvents"] for user in USERS) == stored
    duplicate = track(http, key, [play(USERS[0], messageId="r0-0")])
    assert duplicate["results"][0]["status"] == "duplicate"
