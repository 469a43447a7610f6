"""POST /events, POST /track and GET timeline through the real Envoy, server and SQLite file."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api.rest import EVENT_KEYS, LOWER_UUID, RFC3339_SECONDS, error, headers, success

BASE = "/v1/user-journeys"


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(**delta: float) -> str:
    return stamp(datetime.now(UTC) - timedelta(**delta))


def play(external_id: str, **fields: Any) -> dict[str, Any]:
    return {"externalId": external_id, "category": "GAME_PLAY", "eventType": "spin", **fields}


def track(http: httpx.Client, key: str, items: list[dict[str, Any]]) -> Any:
    return success(http.post(f"{BASE}/track", headers=headers(key), json={"events": items}))


def profile(http: httpx.Client, key: str, external_id: str) -> Any:
    return success(http.get(f"{BASE}/users/{external_id}", headers={"X-API-Key": key}))


def timeline(http: httpx.Client, key: str, external_id: str, query: str = "") -> Any:
    return success(
        http.get(f"{BASE}/users/{external_id}/timeline{query}", headers={"X-API-Key": key})
    )


def test_event_round_trip_in_the_documented_shape(http: httpx.Client, key: str) -> None:
    sent = play("u1", points=50, occurredAt="2025-01-15T10:30:00Z", messageId="msg-1")
    sent["metadata"] = {"won": True, "game": "wheel"}

    event = success(http.post(f"{BASE}/events", headers=headers(key), json=sent))["event"]
    listed = timeline(http, key, "u1")

    assert list(event) == EVENT_KEYS
    assert LOWER_UUID.fullmatch(event["id"])
    assert event["externalId"] == "u1"
    assert event["environment"] == "TEST"
    assert (event["category"], event["eventType"], event["points"]) == ("GAME_PLAY", "spin", 50)
    assert event["occurredAt"] == "2025-01-15T10:30:00Z"
    assert event["messageId"] == "msg-1"
    assert event["metadata"] == {"won": True, "game": "wheel"}
    assert listed == {"events": [event], "page": 1, "limit": 20, "total": 1}


def test_defaults_occurred_at_now_points_zero_and_empty_metadata(
    http: httpx.Client, key: str
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)

    event = success(http.post(f"{BASE}/events", headers=headers(key), json=play("defaults")))[
        "event"
    ]

    assert event["points"] == 0
    assert event["messageId"] == ""
    assert event["metadata"] == {}
    assert RFC3339_SECONDS.fullmatch(event["occurredAt"])
    occurred = datetime.fromisoformat(event["occurredAt"])
    assert before <= occurred <= datetime.now(UTC)


def test_an_event_for_an_unknown_user_creates_the_profile(http: httpx.Client, key: str) -> None:
    success(
        http.post(
            f"{BASE}/events", headers=headers(key), json=play("fresh", occurredAt=ago(days=3))
        )
    )

    data = profile(http, key, "fresh")

    assert data["firstSeenAt"] == data["lastSeenAt"]
    assert datetime.fromisoformat(data["lastSeenAt"]) < datetime.now(UTC) - timedelta(days=2)
    assert data["totalEvents"] == 1


def test_events_move_last_seen_forward_and_first_seen_back(http: httpx.Client, key: str) -> None:
    success(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": "span"}))
    created = profile(http, key, "span")
    track(http, key, [play("span", occurredAt=ago(days=5))])

    moved = profile(http, key, "span")

    assert moved["firstSeenAt"] < created["firstSeenAt"]
    assert moved["lastSeenAt"] == created["lastSeenAt"], "an older event never moves it back"


def test_repeated_message_id_returns_the_original_event(http: httpx.Client, key: str) -> None:
    first = success(
        http.post(
            f"{BASE}/events", headers=headers(key), json=play("dup", messageId="m-1", points=5)
        )
    )["event"]

    again = success(
        http.post(
            f"{BASE}/events", headers=headers(key), json=play("dup", messageId="m-1", points=999)
        )
    )["event"]

    assert again == first
    assert profile(http, key, "dup")["totalEvents"] == 1


def test_message_ids_are_scoped_to_the_tenant(http: httpx.Client, new_key: Any) -> None:
    key_a, key_b = new_key(), new_key()
    a = success(
        http.post(f"{BASE}/events", headers=headers(key_a), json=play("u", messageId="same"))
    )
    b = success(
        http.post(f"{BASE}/events", headers=headers(key_b), json=play("u", messageId="same"))
    )

    assert a["event"]["id"] != b["event"]["id"]
    assert a["event"]["partnerId"] != b["event"]["partnerId"]


class TestBatch:
    def test_500_items_with_invalid_and_duplicate_items_are_reported_honestly(
        self, http: httpx.Client, key: str
    ) -> None:
        seeded = track(
            http, key, [play("batch", messageId="seen-0"), play("batch", messageId="seen-1")]
        )
        assert seeded["accepted"] == 2
        items: list[dict[str, Any]] = []
        expected: list[str] = []
        for i in range(500):
            if i % 50 == 0:
                items.append(play("batch", messageId=f"seen-{i % 2}"))  # stored earlier
                expected.append("duplicate")
            elif i % 50 == 1:
                items.append(play("batch", messageId="inside-batch"))  # twice in this batch
                expected.append("accepted" if i == 1 else "duplicate")
            elif i % 25 == 2:
                items.append(play("batch", category="NOPE"))
                expected.append("rejected")
            elif i % 25 == 3:
                items.append(play("batch", occurredAt=ago(minutes=-30)))  # future
                expected.append("rejected")
            else:
                items.append(play("batch", messageId=f"new-{i}", points=i))
                expected.append("accepted")

        data = track(http, key, items)

        assert [result["status"] for result in data["results"]] == expected
        assert [result["index"] for result in data["results"]] == list(range(500))
        assert data["accepted"] == expected.count("accepted")
        assert data["duplicates"] == expected.count("duplicate")
        assert data["rejected"] == expected.count("rejected")
        for result in data["results"]:
            if result["status"] == "rejected":
                assert result["eventId"] == ""
                assert result["error"]
            else:
                assert LOWER_UUID.fullmatch(result["eventId"])
                assert result["error"] == ""
        inside = [
            r["eventId"]
            for r, i in zip(data["results"], items, strict=True)
            if i.get("messageId") == "inside-batch"
        ]
        assert len(set(inside)) == 1, "duplicates inside one batch point at the one stored event"
        assert profile(http, key, "batch")["totalEvents"] == 2 + expected.count("accepted")
        messages = {r["error"] for r in data["results"] if r["status"] == "rejected"}
        assert messages == {
            "category must be one of GAME_PLAY, CAMPAIGN, POINTS, CUSTOM",
            "occurredAt must not be more than 5 minutes in the future",
        }

    def test_replaying_a_whole_batch_stores_nothing_new(self, http: httpx.Client, key: str) -> None:
        items = [play("replay", messageId=f"r-{i}", points=i) for i in range(100)]
        first = track(http, key, items)

        second = track(http, key, items)

        assert (second["accepted"], second["duplicates"], second["rejected"]) == (0, 100, 0)
        assert [r["eventId"] for r in second["results"]] == [r["eventId"] for r in first["results"]]
        assert profile(http, key, "replay")["totalEvents"] == 100

    @pytest.mark.parametrize("count", [0, 501])
    def test_batch_size_outside_1_to_500_is_rejected_whole(
        self, http: httpx.Client, key: str, count: int
    ) -> None:
        items = [play("size", messageId=f"s-{i}") for i in range(count)]

        error(
            http.post(f"{BASE}/track", headers=headers(key), json={"events": items}),
            400,
            "Invalid request body: events must contain between 1 and 500 events",
        )
        error(http.get(f"{BASE}/users/size", headers={"X-API-Key": key}), 404, "User not found")

    def test_a_new_user_whose_only_events_are_duplicates_is_not_created(
        self, http: httpx.Client, key: str
    ) -> None:
        track(http, key, [play("owner", messageId="taken")])

        data = track(http, key, [play("ghost", messageId="taken")])

        assert data["duplicates"] == 1
        error(http.get(f"{BASE}/users/ghost", headers={"X-API-Key": key}), 404, "User not found")

    def test_a_duplicate_inside_the_batch_moves_no_seen_time(
        self, http: httpx.Client, key: str
    ) -> None:
        first_seen = ago(days=40)
        data = track(
            http,
            key,
            [
                play("lapsed", messageId="once", occurredAt=first_seen),
                play("lapsed", messageId="once", occurredAt=ago(minutes=1)),
            ],
        )

        assert [item["status"] for item in data["results"]] == ["accepted", "duplicate"]
        user = profile(http, key, "lapsed")
        assert (user["firstSeenAt"], user["lastSeenAt"]) == (first_seen, first_seen)
        assert user["lifecycleStage"] == "churned"
        assert user["totalEvents"] == 1

    def test_a_duplicate_of_a_stored_event_moves_no_seen_time_of_a_new_user(
        self, http: httpx.Client, key: str
    ) -> None:
        track(http, key, [play("owner", messageId="stored-once")])
        seen = ago(days=20)

        data = track(
            http,
            key,
            [
                play("newcomer", occurredAt=seen),
                play("newcomer", messageId="stored-once", occurredAt=ago(days=1)),
                play("newcomer", messageId="stored-once", occurredAt=ago(days=60)),
            ],
        )

        assert [item["status"] for item in data["results"]] == [
            "accepted",
            "duplicate",
            "duplicate",
        ]
        user = profile(http, key, "newcomer")
        assert (user["firstSeenAt"], user["lastSeenAt"]) == (seen, seen)
        assert user["totalEvents"] == 1

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"points": 1.5}, "points must be an integer between -1000000 and 1000000"),
            ({"points": "many"}, "points must be an integer between -1000000 and 1000000"),
            ({"points": 2**40}, "points must be an integer between -1000000 and 1000000"),
            ({"points": True}, "points must be an integer between -1000000 and 1000000"),
            ({"externalId": 12345}, "externalId must be a string"),
            ({"category": ["GAME_PLAY"]}, "category must be a string"),
            ({"occurredAt": 1700000000}, "occurredAt must be a string"),
            ({"metadata": "won"}, "metadata must be an object"),
            ({"metadata": [1, 2]}, "metadata must be an object"),
        ],
    )
    def test_a_wrong_json_type_rejects_that_item_only(
        self, http: httpx.Client, key: str, change: dict[str, Any], message: str
    ) -> None:
        user = f"typed-{uuid.uuid4().hex[:8]}"
        data = track(http, key, [play(user), {**play(user), **change}, play(user, points=2.0)])

        assert [(r["status"], r["error"]) for r in data["results"]] == [
            ("accepted", ""),
            ("rejected", message),
            ("accepted", ""),
        ]
        assert profile(http, key, user)["totalEvents"] == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"externalId": ""}, "externalId is required"),
        (
            {"externalId": "bad id"},
            "externalId may contain only ASCII letters, digits and _ - . : @ +",
        ),
        ({"category": ""}, "category is required"),
        ({"category": "game_play"}, "category must be one of GAME_PLAY, CAMPAIGN, POINTS, CUSTOM"),
        ({"eventType": ""}, "eventType is required"),
        ({"eventType": "Spin"}, "eventType must be 1 to 64 lowercase letters, digits or _"),
        ({"eventType": "s" * 65}, "eventType must be 1 to 64 lowercase letters, digits or _"),
        ({"points": 1_000_001}, "points must be an integer between -1000000 and 1000000"),
        ({"points": -1_000_001}, "points must be an integer between -1000000 and 1000000"),
        (
            {"occurredAt": "yesterday"},
            "occurredAt must be an RFC 3339 timestamp such as 2025-01-15T10:30:00Z",
        ),
        (
            {"occurredAt": "2025-01-15T10:30:00"},
            "occurredAt must be an RFC 3339 timestamp such as 2025-01-15T10:30:00Z",
        ),
        ({"occurredAt": "future"}, None),
        ({"messageId": "m" * 101}, "messageId must be at most 100 characters"),
        (
            {"metadata": {"blob": "x" * 16 * 1024}},
            "metadata must be at most 16384 bytes when serialized",
        ),
        ({"metadata": {"k": "\u0000"}}, "metadata must not contain the NUL character"),
    ],
)
def test_event_validation_single_and_in_a_batch(
    http: httpx.Client, key: str, change: dict[str, Any], message: str | None
) -> None:
    if change.get("occurredAt") == "future":
        change = {"occurredAt": ago(minutes=-6)}
        message = "occurredAt must not be more than 5 minutes in the future"
    item = {**play("valid"), **change}

    error(
        http.post(f"{BASE}/events", headers=headers(key), json=item),
        400,
        f"Invalid request body: {message}",
    )
    batch = track(http, key, [item, play("valid", messageId="ok")])

    assert batch["results"][0] == {
        "index": 0,
        "status": "rejected",
        "eventId": "",
        "error": message,
    }
    assert batch["results"][1]["status"] == "accepted"
    assert profile(http, key, "valid")["totalEvents"] == 1


def test_limits_and_offsets_that_are_allowed(http: httpx.Client, key: str) -> None:
    items = [
        play("edges", points=1_000_000),
        play("edges", points=-1_000_000),
        play("edges", eventType="e" * 64),
        play("edges", occurredAt=ago(minutes=-4)),
        play("edges", occurredAt="2025-01-15T12:30:00.750+02:00"),
        play("edges", occurredAt="1999-12-31T23:59:59Z"),
        play("edges", messageId="m" * 100),
        # RFC 3339 lets `T` and `Z` be lowercase.
        play("edges", occurredAt="2024-03-01t08:00:00z"),
        play("edges", occurredAt="2024-03-02t08:00:00Z"),
        play("edges", occurredAt="2024-03-03T08:00:00z"),
    ]

    data = track(http, key, items)

    assert data["accepted"] == 10, data
    occurred = {e["occurredAt"] for e in timeline(http, key, "edges")["events"]}
    assert "2025-01-15T10:30:00Z" in occurred, "offsets become UTC, fractions are truncated"
    assert "1999-12-31T23:59:59Z" in occurred
    assert {f"2024-03-0{day}T08:00:00Z" for day in (1, 2, 3)} <= occurred


class TestTimeline:
    def test_paging_walks_every_event_exactly_once_newest_first(
        self, http: httpx.Client, key: str
    ) -> None:
        moments = [ago(hours=h) for h in range(15)]
        # Three events share each instant: ties are broken by insertion order, newest first.
        items = [play("pages", occurredAt=moments[i // 3], messageId=f"p-{i}") for i in range(45)]
        ids = [r["eventId"] for r in track(http, key, items)["results"]]

        seen: list[dict[str, Any]] = []
        for page in range(1, 6):
            data = timeline(http, key, "pages", f"?page={page}&limit=10")
            assert (data["page"], data["limit"], data["total"]) == (page, 10, 45)
            seen.extend(data["events"])
        beyond = timeline(http, key, "pages", "?page=6&limit=10")

        assert beyond["events"] == []
        assert len(seen) == 45
        # Newer instants first (smaller i // 3); within one instant, later inserts first.
        expected_order = [ids[i] for i in sorted(range(45), key=lambda i: (i // 3, -i))]
        assert [e["id"] for e in seen] == expected_order

    @pytest.mark.parametrize(
        ("query", "message"),
        [
            ("?page=0", "page must be at least 1"),
            ("?page=-1", "page must be at least 1"),
            ("?limit=0", "limit must be between 1 and 100"),
            ("?limit=101", "limit must be between 1 and 100"),
        ],
    )
    def test_paging_limits(self, http: httpx.Client, key: str, query: str, message: str) -> None:
        track(http, key, [play("limits")])

        error(
            http.get(f"{BASE}/users/limits/timeline{query}", headers={"X-API-Key": key}),
            400,
            f"Invalid request body: {message}",
        )

    def test_limit_100_is_allowed(self, http: httpx.Client, key: str) -> None:
        track(http, key, [play("hundred", messageId=f"h{i}") for i in range(120)])

        data = timeline(http, key, "hundred", "?limit=100")

        assert (len(data["events"]), data["total"]) == (100, 120)

    def test_unknown_user(self, http: httpx.Client, key: str) -> None:
        error(
            http.get(f"{BASE}/users/nobody/timeline", headers={"X-API-Key": key}),
            404,
            "User not found",
        )


def test_same_message_id_from_concurrent_clients_stores_one_event(
    http: httpx.Client, key: str, stack: Any
) -> None:
    message_id = f"race-{uuid.uuid4()}"
    results: list[httpx.Response] = []
    barrier = threading.Barrier(8)

    def send() -> None:
        with httpx.Client(base_url=stack.base_url, timeout=30) as client:
            barrier.wait()
            results.append(
                client.post(
                    f"{BASE}/events", headers=headers(key), json=play("race", messageId=message_id)
                )
            )

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [response.status_code for response in results] == [200] * 8
    assert len({response.json()["data"]["event"]["id"] for response in results}) == 1
    assert profile(http, key, "race")["totalEvents"] == 1


def test_the_last_possible_page_is_empty_not_an_error(http: httpx.Client, key: str) -> None:
    track(http, key, [play("far")])

    page = timeline(http, key, "far", "?page=2147483647&limit=100")

    assert (page["events"], page["page"], page["total"]) == ([], 2147483647, 1)
