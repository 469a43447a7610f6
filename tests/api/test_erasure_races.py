"""Writes racing an erasure of their user, through the real gateway and server: POST /track,
POST /events and POST /users sent over and over while DELETE /users/{externalId} runs. Every
write answers as if it ran wholly before the erasure (its rows are erased with the user) or
wholly after it (it re-creates the user, or, when suppressed, is refused item by item), never
500 and never half: a batch's events are all kept or all gone, and the counters match them.
SQLite runs writers one at a time; PostgreSQL runs them at once, so there the profile's lock
decides the order. A claim of the user's offer racing the erasure is the same: it answers
200 (and its offer and event are erased) or 404 `Offer not found`, never 500; and an
analytics run over the users being erased completes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import pytest
from journeys.usecases.analytics import CHUNK_SIZE

from scripts.stack import Stack
from tests.api.conftest import Tenant
from tests.api.rest import error, headers, success
from tests.api.test_events import play, profile, track
from tests.api.test_offers import offers, run_analytics
from tests.api.test_privacy import ERASED, USERS

BASE = "/v1/user-journeys"
ROUNDS = 6
HISTORY = 200  # events of the user before the race: the erasure has rows to delete
BATCH = 3  # events of the user in each /track batch
#: Requests each writer sends at most in a round; it stops early, one request after the
#: erasure has answered.
ATTEMPTS = 60
CHUNK = CHUNK_SIZE  # users analysed in one transaction
ERASE_EVERY = 10


@dataclass
class Writes:
    """What one writer sent and got in a round."""

    #: messageIds of the user's events, per request that answered 200 with them accepted.
    accepted: list[list[str]] = field(default_factory=list)
    #: The same, for the requests sent after the erasure answered.
    accepted_after: list[list[str]] = field(default_factory=list)
    #: Unexpected answers, as the assertion that refused them.
    wrong: list[str] = field(default_factory=list)


def _write(
    client: httpx.Client, key: str, kind: str, external_id: str, tag: str, suppressed: bool
) -> list[str] | None:
    """One write of `kind`; the messageIds of the user's events it stored, [] for a profile
    write that succeeded, None for a refusal of the erased id. Raises on anything else."""
    if kind == "users":
        response = client.post(USERS, headers=headers(key), json={"externalId": external_id})
        if suppressed and response.status_code == 400:
            assert response.json()["message"] == ERASED, response.text
            return None
        success(response)
        return []
    ids = [f"{tag}-{n}" for n in range(BATCH if kind == "track" else 1)]
    if kind == "events":
        response = client.post(
            f"{BASE}/events", headers=headers(key), json=play(external_id, messageId=ids[0])
        )
        if suppressed and response.status_code == 400:
            assert response.json()["message"] == ERASED, response.text
            return None
        assert success(response)["event"]["messageId"] == ids[0]
        return ids
    items = [play(external_id, messageId=i) for i in ids] + [play(f"{external_id}-bystander")]
    results = success(client.post(f"{BASE}/track", headers=headers(key), json={"events": items}))[
        "results"
    ]
    assert results[-1]["status"] == "accepted", results
    statuses = {result["status"] for result in results[:-1]}
    if statuses == {"rejected"} and suppressed:
        assert {result["error"] for result in results[:-1]} == {"externalId has been erased"}
        return None
    assert statuses == {"accepted"}, results  # never half a batch
    return ids


def _writer(
    stack: Stack,
    key: str,
    kind: str,
    external_id: str,
    suppressed: bool,
    erased: threading.Event,
    writes: Writes,
) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=60) as client:
        for attempt in range(ATTEMPTS):
            after = erased.is_set()
            try:
                stored = _write(
                    client, key, kind, external_id, f"{kind}-{attempt}-{uuid.uuid4()}", suppressed
                )
            except AssertionError as failure:
                writes.wrong.append(str(failure))
                return
            if stored:
                (writes.accepted_after if after else writes.accepted).append(stored)
            if after:
                return


def _request(stack: Stack, method: str, path: str, key: str) -> httpx.Response:
    with httpx.Client(base_url=stack.base_url, timeout=60) as client:
        return client.request(method, path, headers={"X-API-Key": key})


def _erasing(stack: Stack, key: str, user_path: str, erased: threading.Event) -> httpx.Response:
    """DELETE /users/`user_path`; `erased` is set once it has answered."""
    try:
        return _request(stack, "DELETE", f"{USERS}/{user_path}", key)
    finally:
        erased.set()


def _at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Runs each call on a thread of its own, all released together; their results in order
    (a call that raised gives its exception)."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(n: int) -> None:
        start.wait()
        try:
            results[n] = calls[n]()
        except Exception as failure:  # reported to the test, which asserts on it
            results[n] = failure

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _stored_message_ids(http: httpx.Client, key: str, external_id: str) -> list[str]:
    found: list[str] = []
    page = 1
    while True:
        data = success(
            http.get(
                f"{USERS}/{external_id}/timeline?limit=100&page={page}",
                headers={"X-API-Key": key},
            )
        )
        found += [event["messageId"] for event in data["events"]]
        if len(data["events"]) < 100:
            return found
        page += 1


@pytest.mark.parametrize("suppress", [False, True], ids=["erase", "erase-and-suppress"])
def test_writes_racing_an_erasure_run_wholly_before_or_after_it(
    http: httpx.Client, stack: Stack, tenant: Tenant, suppress: bool
) -> None:
    for round_ in range(ROUNDS):
        external_id = f"racer-{round_}"
        track(
            http, tenant.public, [play(external_id, messageId=f"old-{n}") for n in range(HISTORY)]
        )
        kinds = ["track", "events", "users", "track"]
        writes = [Writes() for _ in kinds]
        erased = threading.Event()
        query = "?suppress=true" if suppress else ""

        answer, *_ = _at_once(
            partial(_erasing, stack, tenant.secret, f"{external_id}{query}", erased),
            *[
                partial(_writer, stack, tenant.public, kind, external_id, suppress, erased, w)
                for kind, w in zip(kinds, writes, strict=True)
            ],
        )
        assert answer.status_code == 200, answer.text
        assert [w.wrong for w in writes] == [[]] * len(kinds)
        if suppress:
            assert [w.accepted_after for w in writes] == [[]] * len(kinds)
            missing = http.get(f"{USERS}/{external_id}", headers={"X-API-Key": tenant.public})
            assert missing.status_code == 404, missing.text
            continue
        # Written after the erasure answered: the user is back with exactly those events.
        stored = _stored_message_ids(http, tenant.public, external_id)
        kept = [ids for w in writes for ids in w.accepted + w.accepted_after]
        assert not [i for i in stored if i.startswith("old-")]
        for ids in kept:  # each write is wholly kept or wholly erased
            assert {i in stored for i in ids} in ({True}, {False}), (ids, stored)
        for ids in (ids for w in writes for ids in w.accepted_after):
            assert set(ids) <= set(stored), (ids, stored)
        assert len(set(stored)) == len(stored)
        assert set(stored) <= {i for ids in kept for i in ids}, stored
        assert profile(http, tenant.public, external_id)["totalEvents"] == len(stored)


def test_a_claim_racing_an_erasure_answers_as_before_or_after_it(
    http: httpx.Client, stack: Stack, tenant: Tenant
) -> None:
    """The claim locks the offer, then stores its event; the erasure locks the profile, then
    deletes the offers: each waits for the other unless the claim takes the profile first."""
    claimers = [f"claimer-{n}" for n in range(ROUNDS * 2)]
    track(http, tenant.public, [play(external_id) for external_id in claimers])
    run_analytics(stack)
    for external_id in claimers:
        (offer, *_) = offers(http, tenant.public, external_id)
        path = f"{USERS}/{external_id}/offers/{offer['id']}/claim"

        claim, erasure = _at_once(
            partial(_request, stack, "POST", path, tenant.public),
            partial(_request, stack, "DELETE", f"{USERS}/{external_id}", tenant.secret),
        )

        assert erasure.status_code == 200, erasure.text
        if claim.status_code != 200:
            error(claim, 404, "Offer not found")
        gone = http.get(f"{USERS}/{external_id}", headers={"X-API-Key": tenant.public})
        assert gone.status_code == 404, gone.text


def test_an_analytics_run_racing_erasures_completes_and_they_all_answer(
    http: httpx.Client, stack: Stack, tenant: Tenant
) -> None:
    """The run reads a chunk of profiles, computes their segments and offers, then writes them
    with rows referencing each profile; users erased meanwhile must neither fail the run nor
    have any of those rows written for them (their erasure answers 200)."""
    population = [f"analysed-{n:04d}" for n in range(CHUNK)]
    for start in range(0, CHUNK, 500):
        track(
            http,
            tenant.public,
            [play(external_id) for external_id in population[start : start + 500]],
        )

    def erase_all() -> list[int]:
        return [
            _request(stack, "DELETE", f"{USERS}/{external_id}", tenant.secret).status_code
            for external_id in reversed(population[::ERASE_EVERY])
        ]

    run, erasures = _at_once(partial(run_analytics, stack), erase_all)

    assert not isinstance(run, BaseException), run
    assert erasures == [200] * len(population[::ERASE_EVERY])
    for external_id in population[::ERASE_EVERY]:
        gone = http.get(f"{USERS}/{external_id}", headers={"X-API-Key": tenant.public})
        assert gone.status_code == 404, gone.text
