"""Generated hostile requests to every REST endpoint, through the real Envoy and server.

Every response must be the documented envelope (`application/json`, success or
`message, code, status` with `code` equal to the HTTP status, never a 5xx but 501 for claim),
and a rejected request must write nothing: the user it named stays unknown (404) or, if an
earlier example of the same test stored it, unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.api.rest import EVENT_KEYS, PROFILE_KEYS
from tests.hardening.fuzz import (
    BASE,
    EVENT_BODIES,
    FUZZ,
    JSON_VALUES,
    QUERY_PAIRS,
    USER_BODIES,
    USERS,
    Api,
    as_float_tree,
    bodies,
    decoded,
    envelope,
    fresh_id,
    is_valid_id,
    query_string,
    segments,
    send,
)

#: What a profile stores (the rest is computed as of the read).
STORED = [
    "id",
    "partnerId",
    "externalId",
    "environment",
    "displayName",
    "email",
    "phone",
    "country",
    "device",
    "source",
    "firstSeenAt",
    "lastSeenAt",
    "totalEvents",
    "tags",
    "metadata",
]
KNOWN_USER = "known_user"
TOO_LONG = "Request headers too large"


@dataclass
class Ledger:
    """What one test stored so far, across its hypothesis examples (one tenant per test)."""

    users: set[str] = field(default_factory=set)
    events_by_message: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Ledger({len(self.users)} users, {len(self.events_by_message)} message ids)"


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


def stored_state(api: Api, external_id: str) -> dict[str, Any]:
    data = envelope(api.send("GET", f"{USERS}/{quote(external_id, safe='')}"), {200})
    return {name: data[name] for name in STORED}


def assert_never_stored(api: Api, ledger: Ledger, named: object) -> None:
    """After a rejected request: the user it named is unknown (unless stored earlier)."""
    if not isinstance(named, str) or named in ledger.users or not 0 < len(named) <= 4096:
        return
    reply = api.send("GET", f"{USERS}/{quote(named, safe='')}")
    envelope(reply, {404}, {"User not found", "Not found"})


def snapshot(api: Api, ledger: Ledger, named: object) -> dict[str, Any] | None:
    if isinstance(named, str) and named in ledger.users:
        return stored_state(api, named)
    return None


# --- POST /users -----------------------------------------------------------------------------


@FUZZ
@given(sent=bodies(USER_BODIES))
def test_post_users(api: Api, ledger: Ledger, sent: tuple[Any, bytes]) -> None:
    meant, raw = sent
    named = meant.get("externalId") if isinstance(meant, dict) else None
    before = snapshot(api, ledger, named)

    reply = api.post_json(USERS, raw)

    data = envelope(reply, {200, 400, 413})
    if reply.status != 200:
        if before is not None:
            assert stored_state(api, str(named)) == before, "a rejected update wrote"
        else:
            assert_never_stored(api, ledger, named)
        return
    assert isinstance(meant, dict), f"a body that is not a JSON object was accepted: {raw!r}"
    assert is_valid_id(named), f"accepted an invalid externalId {named!r}"
    assert list(data) == PROFILE_KEYS
    assert (data["externalId"], data["environment"]) == (named, "TEST")
    for name in ("displayName", "email", "phone", "device", "source"):
        if isinstance(meant.get(name), str):
            assert data[name] == meant[name], name
    if isinstance(meant.get("country"), str):
        assert data["country"] == meant["country"].upper()
        assert data["country"] == "" or (data["country"].isascii() and len(data["country"]) == 2)
    if isinstance(meant.get("tags"), dict):
        assert data["tags"] == meant["tags"]
    if isinstance(meant.get("metadata"), dict):
        assert as_float_tree(data["metadata"]) == as_float_tree(meant["metadata"])
    if before is not None:
        assert data["id"] == before["id"], "an upsert made a second profile"
    ledger.users.add(str(named))
    assert stored_state(api, str(named)) == {name: data[name] for name in STORED}


# --- POST /events ----------------------------------------------------------------------------


def _check_event(data: Any, meant: dict[str, Any], ledger: Ledger) -> None:
    assert list(data) == ["event"]
    event = data["event"]
    assert list(event) == EVENT_KEYS
    message_id = meant.get("messageId")
    if isinstance(message_id, str) and message_id in ledger.events_by_message:
        assert event == ledger.events_by_message[message_id], "a repeat returns the original"
        return
    assert (event["externalId"], event["environment"]) == (meant["externalId"], "TEST")
    assert (event["category"], event["eventType"]) == (meant["category"], meant["eventType"])
    points = meant.get("points")
    if isinstance(points, int) and not isinstance(points, bool):
        assert event["points"] == points
    if isinstance(message_id, str):
        assert event["messageId"] == message_id
        if message_id:
            ledger.events_by_message[message_id] = event
    if isinstance(meant.get("metadata"), dict):
        assert as_float_tree(event["metadata"]) == as_float_tree(meant["metadata"])
    ledger.users.add(event["externalId"])


@FUZZ
@given(sent=bodies(EVENT_BODIES))
def test_post_events(api: Api, ledger: Ledger, sent: tuple[Any, bytes]) -> None:
    meant, raw = sent
    named = meant.get("externalId") if isinstance(meant, dict) else None
    before = snapshot(api, ledger, named)

    reply = api.post_json(f"{BASE}/events", raw)

    data = envelope(reply, {200, 400, 413})
    if reply.status == 200:
        assert isinstance(meant, dict), f"a body that is not a JSON object was accepted: {raw!r}"
        assert is_valid_id(named), f"accepted an invalid externalId {named!r}"
        _check_event(data, meant, ledger)
    elif before is not None:
        assert stored_state(api, str(named)) == before, "a rejected event wrote"
    else:
        assert_never_stored(api, ledger, named)


# --- POST /track -----------------------------------------------------------------------------

TRACK_BODIES = st.one_of(
    st.fixed_dictionaries({"events": st.lists(EVENT_BODIES, max_size=6)}),
    st.fixed_dictionaries({"events": JSON_VALUES}),
    st.fixed_dictionaries({"events": st.lists(JSON_VALUES, max_size=3)}),
)


def _items(meant: Any) -> list[Any]:
    """The items the service gets. Envoy's JSON parser takes a lone object for a repeated
    field as a list of one, drops nulls and flattens nested arrays (reported: the `index`es
    then no longer match the request; pinned in test_gateway_facts)."""
    events = meant.get("events") if isinstance(meant, dict) else None
    if isinstance(events, dict):
        return [events]
    return _flat(events) if isinstance(events, list) else []


def _flat(items: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for item in items:
        if isinstance(item, list):
            flat.extend(_flat(item))
        elif item is not None:
            flat.append(item)
    return flat


@FUZZ
@given(sent=bodies(TRACK_BODIES))
def test_post_track(api: Api, ledger: Ledger, sent: tuple[Any, bytes]) -> None:
    meant, raw = sent
    items = _items(meant)
    named = [item.get("externalId") for item in items if isinstance(item, dict)]
    before = {
        name: snapshot(api, ledger, name)
        for name in named
        if isinstance(name, str) and is_valid_id(name)
    }

    reply = api.post_json(f"{BASE}/track", raw)

    data = envelope(reply, {200, 400, 413})
    if reply.status != 200:
        for name, state in before.items():
            if state is not None:
                assert stored_state(api, name) == state, "a rejected batch wrote"
        for named_id in named:
            assert_never_stored(api, ledger, named_id)
        return
    assert list(data) == ["accepted", "duplicates", "rejected", "results"]
    results = data["results"]
    assert [result["index"] for result in results] == list(range(len(items)))
    statuses = [result["status"] for result in results]
    assert data["accepted"] == statuses.count("accepted")
    assert data["duplicates"] == statuses.count("duplicate")
    assert data["rejected"] == statuses.count("rejected")
    for item, result in zip(items, results, strict=True):
        assert set(result) == {"index", "status", "eventId", "error"}
        if result["status"] == "rejected":
            assert (result["eventId"], bool(result["error"])) == ("", True), result
        else:
            assert result["error"] == "", result
            assert result["eventId"], result
        if result["status"] == "accepted":
            ledger.users.add(item["externalId"])
    for item, result in zip(items, results, strict=True):
        if result["status"] != "accepted" and isinstance(item, dict):
            # Rejected or duplicate items never create their user.
            assert_never_stored(api, ledger, item.get("externalId"))


# --- query strings on the write endpoints ----------------------------------------------------


@FUZZ
@given(pairs=QUERY_PAIRS)
def test_query_parameters_never_change_what_a_post_writes(
    api: Api, pairs: list[tuple[str, str]]
) -> None:
    query = query_string(pairs)
    external_id = fresh_id()
    event = {"externalId": external_id, "category": "CUSTOM", "eventType": "probe"}

    user = envelope(api.send("POST", USERS + query, _json({"externalId": external_id})), {200})
    one = envelope(api.send("POST", f"{BASE}/events{query}", _json(event)), {200})
    batch = envelope(api.send("POST", f"{BASE}/track{query}", _json({"events": [event]})), {200})

    assert user["externalId"] == external_id
    for name in ("displayName", "email", "phone", "country", "device", "source"):
        assert user[name] == "", f"?{name}= was written"
    assert (user["tags"], user["metadata"]) == ({}, {})
    assert one["event"]["externalId"] == external_id
    assert (one["event"]["messageId"], one["event"]["points"]) == ("", 0)
    assert len(batch["results"]) == 1, "a query parameter added a batch item"
    assert batch["accepted"] == 1


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


# --- path segments and query strings on the read endpoints and claim -------------------------


def too_long(target: str) -> set[int]:
    """Envoy answers 431 itself for a request line past its 60 KiB header limit."""
    return {431} if len(target) > 55_000 else set()


@pytest.fixture
def known_user(api: Api) -> str:
    envelope(api.send("POST", USERS, _json({"externalId": KNOWN_USER})), {200})
    return KNOWN_USER


@FUZZ
@given(segment=segments({KNOWN_USER}), pairs=QUERY_PAIRS)
def test_get_profile(api: Api, known_user: str, segment: str, pairs: list[tuple[str, str]]) -> None:
    target = f"{USERS}/{segment}{query_string(pairs)}"

    reply = api.send("GET", target)

    if decoded(segment) == known_user:
        data = envelope(reply, {200})
        assert data["externalId"] == known_user, "the path names the user, never the query"
        assert list(data) == [*PROFILE_KEYS, "recommendations", "journey"]
    elif segment == "":
        # GET /users/ is the members list, for secret keys only.
        envelope(reply, {403} | too_long(target), {"This endpoint requires a secret key", TOO_LONG})
    else:
        envelope(reply, {404} | too_long(target), {"User not found", "Not found", TOO_LONG})


@FUZZ
@given(segment=segments({KNOWN_USER}), pairs=QUERY_PAIRS)
def test_get_timeline(
    api: Api, known_user: str, segment: str, pairs: list[tuple[str, str]]
) -> None:
    target = f"{USERS}/{segment}/timeline{query_string(pairs)}"

    reply = api.send("GET", target)

    if decoded(segment) == known_user:
        data = envelope(reply, {200, 400})
        if reply.status == 200:
            assert list(data) == ["events", "page", "limit", "total"]
            assert data["page"] >= 1
            assert 1 <= data["limit"] <= 100
            assert (data["events"], data["total"]) == ([], 0)
    else:
        envelope(
            reply,
            {400, 404} | too_long(target),
            {"User not found", "Not found", "Invalid request body", TOO_LONG},
        )


@FUZZ
@given(segment=segments({KNOWN_USER}), pairs=QUERY_PAIRS)
def test_get_offers(api: Api, known_user: str, segment: str, pairs: list[tuple[str, str]]) -> None:
    target = f"{USERS}/{segment}/offers{query_string(pairs)}"

    reply = api.send("GET", target)

    if decoded(segment) == known_user:
        assert envelope(reply, {200}) == {"offers": []}
    else:
        envelope(reply, {404} | too_long(target), {"User not found", "Not found", TOO_LONG})


OFFER_IDS = st.one_of(
    segments(),
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),
)


@FUZZ
@given(segment=segments({KNOWN_USER}), offer=OFFER_IDS, pairs=QUERY_PAIRS)
def test_claim(
    api: Api, known_user: str, segment: str, offer: str, pairs: list[tuple[str, str]]
) -> None:
    target = f"{USERS}/{segment}/offers/{offer}/claim{query_string(pairs)}"

    reply = api.send("POST", target)

    # No user of this tenant holds an offer, so nothing can be claimed. 501 until the offer
    # engine lands; "Not found" when an empty segment leaves no route.
    envelope(
        reply,
        {404, 501} | too_long(target),
        {"Offer not found", "Not implemented", "Not found", TOO_LONG},
    )


ROUTES = {("POST", USERS), ("POST", f"{BASE}/events"), ("POST", f"{BASE}/track")}
#: The partner operations, refused to this test's public key.
SECRET_ROUTES = {
    ("GET", USERS),
    ("GET", f"{BASE}/segments"),
    ("DELETE", f"{USERS}/x"),
    ("GET", f"{USERS}/x/export"),
    ("DELETE", f"{BASE}/suppressions/x"),
}


@FUZZ
@given(
    method=st.sampled_from(["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "POST"]),
    path=st.sampled_from(
        [
            USERS,
            f"{USERS}/x",
            f"{USERS}/x/timeline",
            f"{USERS}/x/offers",
            f"{USERS}/x/offers/o/claim",
            f"{BASE}/events",
            f"{BASE}/track",
            f"{BASE}/segments",
            f"{USERS}/x/export",
            f"{BASE}/suppressions/x",
            f"{USERS}/x/y",
            f"{BASE}/nothing",
            "/",
            "/v2/user-journeys/users",
        ]
    ),
    body=st.sampled_from([None, b"{}", b'{"externalId":"m"}']),
)
def test_any_method_on_any_path(api: Api, method: str, path: str, body: bytes | None) -> None:
    reply = api.send(method, path, body)

    if reply.status == 204:
        assert method == "OPTIONS", "only OPTIONS answers without content"
        assert reply.body == b""
        return
    envelope(reply, {200, 400, 403, 404, 405, 501})
    if reply.status == 200:
        assert (method, path) in ROUTES, "only the documented routes answer"
    if reply.status == 403:
        assert (method, path) in SECRET_ROUTES, "only partner operations need a secret key"


ENDPOINTS = [
    ("POST", USERS, b'{"externalId":"k"}'),
    ("POST", f"{BASE}/events", b"{}"),
    ("POST", f"{BASE}/track", b"{}"),
    ("GET", f"{USERS}/k", None),
    ("GET", f"{USERS}/k/timeline", None),
    ("GET", f"{USERS}/k/offers", None),
    ("POST", f"{USERS}/k/offers/o/claim", None),
    ("GET", f"{BASE}/segments", None),
    ("GET", USERS, None),
    ("DELETE", f"{USERS}/k", None),
    ("GET", f"{USERS}/k/export", None),
    ("DELETE", f"{BASE}/suppressions/k", None),
]


@FUZZ
@given(
    presented=st.one_of(
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80),
        st.sampled_from(["pk_test_" + "g" * 32, "pk_live_" + "0" * 31, " pk_test_" + "0" * 32]),
    )
)
def test_any_unknown_key_is_401_on_every_endpoint(api: Api, presented: str) -> None:
    for method, path, body in ENDPOINTS:
        reply = send(api.stack, method, path, key=presented, body=body)

        envelope(reply, {401}, {"Invalid API key", "Missing X-API-Key header"})
