"""The gateway facts of gateway-notes.md, and what the fuzzing found, pinned one by one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.hardening.fuzz import BASE, USERS, Api, envelope

PATH_ENDPOINTS = [
    ("GET", f"{USERS}/{{id}}", "User not found"),
    ("GET", f"{USERS}/{{id}}/timeline", "User not found"),
    ("GET", f"{USERS}/{{id}}/offers", "User not found"),
    ("POST", f"{USERS}/{{id}}/offers/o/claim", "Offer not found"),
    ("POST", f"{USERS}/u/offers/{{id}}/claim", "Offer not found"),
]


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _create(api: Api, external_id: str) -> dict[str, Any]:
    data: dict[str, Any] = envelope(
        api.send("POST", USERS, _json({"externalId": external_id})), {200}
    )
    return data


# --- ~10 KB path ids: never 429 --------------------------------------------------------------


@pytest.mark.parametrize("size", [10_240, 20_480, 50_000])
@pytest.mark.parametrize(("method", "path", "message"), PATH_ENDPOINTS)
def test_a_long_path_id_is_not_found_never_429(
    api: Api, method: str, path: str, message: str, size: int
) -> None:
    """The transcoder copies the REST path into `x-envoy-original-path`; forwarded, a 16 KiB+
    path would always exceed grpc.aio's metadata limit (and 8-16 KiB sometimes): 429."""
    target = path.format(id="a" * size)

    for _ in range(3 if size < 16_384 else 1):
        envelope(api.send(method, target), {404}, {message})


# --- ?_=123 ----------------------------------------------------------------------------------


def test_a_cache_buster_changes_nothing_on_any_endpoint(api: Api) -> None:
    _create(api, "buster")
    event = {"externalId": "buster", "category": "CUSTOM", "eventType": "x", "messageId": "b1"}
    requests: list[tuple[str, str, bytes | None]] = [
        ("POST", USERS, _json({"externalId": "buster"})),
        ("POST", f"{BASE}/events", _json(event)),
        ("POST", f"{BASE}/track", _json({"events": [event]})),
        ("GET", f"{USERS}/buster", None),
        ("GET", f"{USERS}/buster/timeline", None),
        ("GET", f"{USERS}/buster/offers", None),
        ("POST", f"{USERS}/buster/offers/o/claim", None),
    ]

    for method, path, body in requests:
        plain = api.send(method, path, body)
        busted = api.send(method, f"{path}?_=123", body)

        assert busted.status == plain.status != 503, (path, busted)
        envelope(busted, {200, 404, 501})
        if method == "GET":
            assert busted.json() == plain.json(), path


# --- percent-encoded slashes and other ids no user can have --------------------------------


@pytest.mark.parametrize(
    "segment", ["a%2Ftimeline", "a%2ftimeline", "a%2F", "%2Fa", "a%2F..%2F..", "a%252Ftimeline"]
)
def test_an_encoded_slash_never_reaches_another_route_or_user(api: Api, segment: str) -> None:
    _create(api, "a")

    envelope(api.send("GET", f"{USERS}/{segment}"), {400, 404}, {"User not found"})
    envelope(api.send("GET", f"{USERS}/{segment}/offers"), {400, 404}, {"User not found"})
    envelope(api.send("GET", f"{USERS}/{segment}/timeline"), {400, 404}, {"User not found"})
    envelope(
        api.send("POST", f"{USERS}/a/offers/{segment}/claim"), {400, 404, 501}, {"Offer not found"}
    )


@pytest.mark.parametrize(
    "segment",
    [
        "%FF",  # not UTF-8
        "a%C0%AFb",  # overlong "/"
        "%ED%A0%80",  # a UTF-16 surrogate
        "%F4%90%80%80",  # past U+10FFFF
        "%E2%82",  # truncated
        "%00",
        "a%00b",
    ],
)
@pytest.mark.parametrize(("method", "path", "message"), PATH_ENDPOINTS)
def test_an_id_that_is_not_utf8_or_holds_nul_is_unknown(
    api: Api, method: str, path: str, message: str, segment: str
) -> None:
    envelope(api.send(method, path.format(id=segment)), {404}, {message})


def test_unicode_ids_are_looked_up_like_any_other(api: Api) -> None:
    for segment in ("%C3%A9", "%F0%9F%98%80", "e%CC%81"):
        envelope(api.send("GET", f"{USERS}/{segment}"), {404}, {"User not found"})


# --- query parameters bind to nothing but page and limit -------------------------------------


def test_query_parameters_never_bind_to_request_fields(api: Api) -> None:
    owner = _create(api, "owner")

    user = envelope(
        api.send(
            "POST", f"{USERS}?displayName=Q&email=q@x.io&tags.plan=gold", b'{"externalId":"q"}'
        ),
        {200},
    )
    event = envelope(
        api.send(
            "POST",
            f"{BASE}/events?event.messageId=m&event.points=5&event.externalId=owner",
            _json({"externalId": "q", "category": "CUSTOM", "eventType": "x"}),
        ),
        {200},
    )["event"]
    batch = envelope(
        api.send(
            "POST",
            f"{BASE}/track?events.externalId=owner&events.category=CUSTOM&events.eventType=x",
            _json({"events": [{"externalId": "q", "category": "CUSTOM", "eventType": "x"}]}),
        ),
        {200},
    )

    assert (user["displayName"], user["email"], user["tags"]) == ("", "", {})
    assert (event["externalId"], event["messageId"], event["points"]) == ("q", "", 0)
    assert len(batch["results"]) == 1
    # The path names the user; a query parameter never swaps it.
    envelope(api.send("GET", f"{USERS}/nobody?externalId=owner"), {404}, {"User not found"})
    envelope(api.send("GET", f"{USERS}/nobody?external_id=owner"), {404}, {"User not found"})
    assert envelope(api.send("GET", f"{USERS}/owner?externalId=q"), {200})["id"] == owner["id"]
    # "q" has two events, "owner" none.
    assert envelope(api.send("GET", f"{USERS}/owner/timeline?externalId=q"), {200})["total"] == 0
    envelope(
        api.send("POST", f"{USERS}/nobody/offers/o/claim?externalId=owner&offerId=x"),
        {404, 501},
        {"Offer not found", "Not implemented"},
    )


def test_the_timeline_still_reads_page_and_limit(api: Api) -> None:
    event = {"externalId": "pager", "category": "CUSTOM", "eventType": "x"}
    envelope(api.send("POST", f"{BASE}/track", _json({"events": [event] * 3})), {200})

    page = envelope(api.send("GET", f"{USERS}/pager/timeline?_=1&page=2&x=y&limit=2"), {200})
    slash = envelope(api.send("GET", f"{USERS}/pager/timeline/?page=3&limit=1"), {200})

    assert (page["page"], page["limit"], len(page["events"]), page["total"]) == (2, 2, 1, 3)
    assert (slash["page"], slash["limit"], len(slash["events"])) == (3, 1, 1)
    envelope(
        api.send("GET", f"{USERS}/pager/timeline?page=0"),
        {400},
        {"Invalid request body: page must be at least 1"},
    )
    envelope(api.send("GET", f"{USERS}/pager/timeline?limit=abc"), {400}, {"Invalid request body"})


# --- Envoy's own error texts never become the message ----------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        '"domain":"journeys","message":"pwned"',
        '"domain":"journeys","message":"a\\q"',
        '"domain":"journeys","message":"x%0Ay"',
        "%22domain%22:%22journeys%22,%22message%22:%22pwned%22",
    ],
)
def test_text_echoed_by_envoy_never_becomes_the_message(api: Api, value: str) -> None:
    _create(api, "echo")

    reply = api.send("GET", f"{USERS}/echo/timeline?page={value}")

    assert envelope(reply, {400}) == "Invalid request body"


# --- request headers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"grpc-timeout": "1n"},
        {"grpc-timeout": "zz"},
        {"grpc-encoding": "bogus"},
        {"x-anything-bin": "!!!not base64"},
        {"x-api-key-bin": "AAAA"},
    ],
)
def test_grpc_headers_from_a_rest_client_are_dropped(api: Api, extra: dict[str, str]) -> None:
    _create(api, "h")

    for method, path, body in [
        ("GET", f"{USERS}/h", None),
        ("POST", USERS, b'{"externalId":"h"}'),
    ]:
        assert envelope(api.send(method, path, body, headers=extra), {200})["externalId"] == "h"


@pytest.mark.parametrize(
    "extra",
    [
        {"X-Junk": "j" * 10_240},
        {"X-Junk": "j" * 30_000},
        {f"X-Junk-{n}": "j" * 40 for n in range(150)},
    ],
)
def test_oversized_headers_are_431_never_429(api: Api, extra: dict[str, str]) -> None:
    """grpc.aio refuses metadata over 8 KiB (always over 16 KiB) as RESOURCE_EXHAUSTED, which
    would be a 429 `Rate limit exceeded` telling the client to retry."""
    for method, path, body in [
        ("GET", f"{USERS}/nobody", None),
        ("POST", USERS, b'{"externalId":"h"}'),
    ]:
        envelope(api.send(method, path, body, headers=extra), {431}, {"Request headers too large"})


def test_headers_of_a_few_kilobytes_are_fine(api: Api) -> None:
    reply = api.send("POST", USERS, b'{"externalId":"h"}', headers={"X-Junk": "j" * 6_000})

    assert envelope(reply, {200})["externalId"] == "h"


# --- validation edge cases the fuzzing found ---------------------------------------------------


ISO_CODE = "an ISO 3166-1 alpha-2 code such as NG, US or GB"


@pytest.mark.parametrize("country", ["ß", "ﬀ", "\u0131i", "Ng"])
def test_country_is_two_ascii_letters(api: Api, country: str) -> None:
    reply = api.send("POST", USERS, _json({"externalId": "c", "country": country}))

    if country == "Ng":
        assert envelope(reply, {200})["country"] == "NG"
    else:
        envelope(
            reply,
            {400},
            {f"Invalid request body: country must be {ISO_CODE}"},
        )


@pytest.mark.parametrize("occurred_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_an_instant_outside_the_calendar_is_a_bad_timestamp(api: Api, occurred_at: str) -> None:
    rule = "occurredAt must be an RFC 3339 timestamp such as 2025-01-15T10:30:00Z"
    event = {"externalId": "t", "category": "CUSTOM", "eventType": "x", "occurredAt": occurred_at}
    fine = {"externalId": "t", "category": "CUSTOM", "eventType": "x"}

    envelope(
        api.send("POST", f"{BASE}/events", _json(event)), {400}, {f"Invalid request body: {rule}"}
    )
    batch = envelope(api.send("POST", f"{BASE}/track", _json({"events": [event, fine]})), {200})

    assert [r["status"] for r in batch["results"]] == ["rejected", "accepted"]
    assert batch["results"][0]["error"] == rule


# --- what Envoy's JSON parser would let through (the envelope filter checks bodies) ---------


@pytest.mark.parametrize(
    "body",
    [
        b"{'externalId':'single_quotes'}",
        b'{"externalId":"trailing_comma",}',
        b'{externalId:"bare_key"}',
        b'{"externalId":"bad\\x41escape"}',
    ],
)
def test_malformed_json_is_invalid_request_body(api: Api, body: bytes) -> None:
    envelope(api.send("POST", USERS, body), {400}, {"Invalid request body"})


@pytest.mark.parametrize(
    "events",
    [
        {"externalId": "n", "category": "CUSTOM", "eventType": "x"},
        [None, {"externalId": "n", "category": "CUSTOM", "eventType": "x"}],
        [[{"externalId": "n", "category": "CUSTOM", "eventType": "x"}], {"externalId": ""}],
    ],
)
def test_events_of_the_wrong_json_type_fail_the_whole_batch(api: Api, events: Any) -> None:
    envelope(api.send("POST", f"{BASE}/track", _json({"events": events})), {400})
