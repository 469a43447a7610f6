"""The export of one user (Part C, privacy): everything stored about them, events oldest
first, each item printed as the API prints it, and a long history streamed in pages."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from datetime import timedelta
from typing import Any

import pytest
from journeys.domain import Category, Environment, EventInput, KeyKind, NewEvent, Tenant
from journeys.errors import SecretKeyRequired, UserNotFound
from journeys.storage.database import Database
from journeys.storage.export import EVENTS_PAGE
from journeys.transport import convert, export_json
from journeys.usecases import Journeys
from journeys.usecases.auth import Caller, Operator
from journeys.usecases.privacy import Privacy
from journeys.usecases.profiles import UserView

from scripts.stack import migrate, new_key
from tests.privacy_data import LATER, NOW, make_offers_and_journey, rfc3339, seed_user

USER = "exported-1"


async def _rendered(privacy: Privacy, secret: str, *, envelope: bool) -> tuple[Any, list[bytes]]:
    async with privacy.export_user(Caller(secret), USER) as export:
        chunks = [chunk async for chunk in export_json.render(export, envelope=envelope)]
    return json.loads(b"".join(chunks)), chunks


def test_an_export_holds_everything_printed_as_the_api_prints_it(database_url: str) -> None:
    migrate(database_url)
    public = new_key(database_url, "exporting")
    secret = new_key(database_url, "exporting", kind=KeyKind.SECRET)

    async def exercise() -> dict[str, Any]:
        async with Database(database_url) as database:
            await seed_user(database, public, USER)
            # Two events at one instant: the export keeps them in the order they came.
            api = Journeys(database, clock=lambda: NOW)
            tied = rfc3339(NOW - timedelta(days=3))
            for n in range(2):
                await api.track_event(
                    Caller(public), EventInput(USER, "CUSTOM", f"tie_{n}", 0, tied)
                )
            await make_offers_and_journey(database, public, USER)
            later = Journeys(database, clock=lambda: LATER)
            privacy = Privacy(database, clock=lambda: LATER)
            with pytest.raises(SecretKeyRequired):
                async with privacy.export_user(Caller(public), USER):
                    pass
            with pytest.raises(UserNotFound):
                async with privacy.export_user(Caller(secret), "never-seen"):
                    pass
            async with privacy.export_user(Caller(secret), USER) as export:
                exported_events = [event async for event in export.events()]
                stored_offers = export.offers
                journey = export.journey
            data, chunks = await _rendered(privacy, secret, envelope=False)
            enveloped, _ = await _rendered(privacy, secret, envelope=True)
            view: UserView = await later.get_user(Caller(public), USER)
            timeline = await later.get_timeline(Caller(public), USER, 1, 100)
            active = await later.get_offers(Caller(public), USER)
            return {
                "events": exported_events,
                "offers": stored_offers,
                "journey": journey,
                "data": data,
                "raw": b"".join(chunks).decode(),
                "enveloped": enveloped,
                "view": view,
                "timeline": timeline,
                "active": active,
            }

    found = asyncio.run(exercise())
    data = found["data"]

    assert found["enveloped"] == {"status": "success", "data": data}
    assert list(data) == ["profile", "events", "offers", "journey"]
    # Oldest first, ties in insertion order: the timeline (newest first) backwards.
    assert [event.id for event in found["events"]] == [
        event.id for event in reversed(found["timeline"].events)
    ]
    assert len(found["events"]) == found["view"].activity.total_events
    assert [event["id"] for event in data["events"]] == [event.id for event in found["events"]]
    assert {offer.status for offer in found["offers"]} >= {"active", "claimed"}
    assert len(data["journey"]) == len(found["journey"]) > 0
    assert [item["at"] for item in data["journey"]] == sorted(
        item["at"] for item in data["journey"]
    )

    # Each item is what the API prints for it.
    assert data["profile"] == export_json.as_api_json(convert.user_detail(found["view"]))
    by_id = {event["id"]: event for event in data["events"]}
    for event in found["timeline"].events:
        assert by_id[event.id] == export_json.as_api_json(convert.event(event))
    offers = {offer["id"]: offer for offer in data["offers"]}
    for offer in found["active"]:
        assert offers[offer.id] == export_json.offer_json(convert.offer(offer))
    # The transcoder's printing, spelled out: integral doubles, defaults, claimedAt null.
    assert data["profile"]["winRate"] == 1
    assert '"winRate":1,' in found["raw"]
    assert '"score":42' in found["raw"]
    assert '"score":42.0' not in found["raw"]
    assert data["profile"]["phone"] == ""
    unclaimed = [offer for offer in data["offers"] if offer["status"] != "claimed"]
    assert unclaimed
    for offer in unclaimed:
        keys = list(offer)
        assert offer["claimedAt"] is None
        assert keys.index("claimedAt") == keys.index("expiresAt") + 1
    claimed = [offer for offer in data["offers"] if offer["status"] == "claimed"]
    assert len(claimed) == 1
    assert claimed[0]["claimedAt"]


HEAVY_EVENTS = 100_000


def test_a_100000_event_export_is_read_in_pages_and_streamed(database_url: str) -> None:
    migrate(database_url)
    statements: list[str] = []

    async def exercise() -> tuple[int, int, int, int]:
        async with Database(database_url) as database:
            async with database.transaction(write=True) as tx:
                partner = await tx.keys.ensure_partner("heavy", NOW)
                store = tx.tenant(Tenant(partner, Environment.TEST))
                drafts = [
                    NewEvent(
                        external_id=USER,
                        category=Category.GAME_PLAY,
                        event_type="spin",
                        points=1,
                        occurred_at=NOW - timedelta(seconds=n * 60),
                        message_id=None,
                        metadata={"won": n % 2 == 0},
                    )
                    for n in range(HEAVY_EVENTS)
                ]
                for start in range(0, HEAVY_EVENTS, 500):
                    await store.record_events(drafts[start : start + 500], NOW)
            del drafts
            database.on_statement(lambda statement, _parameters: statements.append(statement))
            operator = Operator("heavy", Environment.TEST)
            tracemalloc.start()
            try:
                async with Privacy(database, clock=lambda: NOW).export_user(
                    operator, USER
                ) as export:
                    size = count = largest = 0
                    previous = ""
                    async for chunk in export_json.render(export, envelope=True):
                        size += len(chunk)
                        largest = max(largest, len(chunk))
                        # Each chunk continues the events in order: check the times go up.
                        for at in _occurred_ats(chunk):
                            assert at >= previous
                            previous = at
                            count += 1
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            return size, count, largest, peak

    size, count, largest, peak = asyncio.run(exercise())

    assert count == HEAVY_EVENTS
    event_reads = [s for s in statements if "FROM events" in s and "ORDER BY" in s]
    assert len(event_reads) >= HEAVY_EVENTS // EVENTS_PAGE
    assert largest <= export_json.CHUNK_BYTES + 16 * 1024
    # The whole document is tens of megabytes; a stream holds a page and a chunk at a time.
    assert size > 20 * 1024 * 1024
    assert peak < size // 3, f"peak {peak} bytes for a {size}-byte export"


def _occurred_ats(chunk: bytes) -> list[str]:
    marker = b'"occurredAt":"'
    found = []
    start = chunk.find(marker)
    while start != -1:
        end = chunk.index(b'"', start + len(marker))
        found.append(chunk[start + len(marker) : end].decode())
        start = chunk.find(marker, end)
    return found
