"""Generated hostile requests to the partner operations (secret key), through the real Envoy
and server: segments, members, erasure, suppressions and export.

Every response is the documented envelope, never a 5xx; a request that names no user of the
tenant erases nothing; the tenant's one known user survives every example that does not name
it exactly.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given

from scripts.stack import Stack
from tests.hardening.fuzz import (
    BASE,
    FUZZ,
    QUERY_PAIRS,
    USERS,
    Api,
    decoded,
    envelope,
    query_string,
    segments,
)
from tests.hardening.test_rest_fuzz import TOO_LONG, too_long

KNOWN_USER = "kept_user"
STAGES = {"new", "active", "engaged", "power_user", "at_risk", "churned"}
TIERS = {"casual", "regular", "power_user", "whale"}


@pytest.fixture
def api(stack: Stack, secret_key: str, http: httpx.Client) -> Api:
    """A fresh tenant's secret key, kept across the test's hypothesis examples."""
    return Api(stack, secret_key, http)


@pytest.fixture
def known_user(api: Api) -> str:
    body = json.dumps({"externalId": KNOWN_USER}).encode()
    envelope(api.send("POST", USERS, body), {200})
    return KNOWN_USER


def _still_there(api: Api) -> None:
    envelope(api.send("GET", f"{USERS}/{KNOWN_USER}"), {200})


@FUZZ
@given(pairs=QUERY_PAIRS)
def test_segment_sizes_ignore_any_query(api: Api, pairs: list[tuple[str, str]]) -> None:
    target = f"{BASE}/segments{query_string(pairs)}"

    data = envelope(api.send("GET", target), {200} | too_long(target), {TOO_LONG})

    if isinstance(data, dict):
        assert set(data["stages"]) == STAGES
        assert set(data["tiers"]) == TIERS


@FUZZ
@given(pairs=QUERY_PAIRS)
def test_member_queries_answer_a_page_or_name_the_parameter(
    api: Api, known_user: str, pairs: list[tuple[str, str]]
) -> None:
    target = f"{USERS}{query_string(pairs)}"

    data = envelope(
        api.send("GET", target), {200, 400} | too_long(target), {"Invalid request body", TOO_LONG}
    )

    if isinstance(data, dict):
        assert list(data) == ["users", "nextCursor"]
        assert isinstance(data["nextCursor"], str)
        # No analytics run classified this tenant's user: nobody is listed.
        assert data["users"] == []
    _still_there(api)


@FUZZ
@given(segment=segments({KNOWN_USER}), pairs=QUERY_PAIRS)
def test_export(api: Api, known_user: str, segment: str, pairs: list[tuple[str, str]]) -> None:
    target = f"{USERS}/{segment}/export{query_string(pairs)}"

    data = envelope(
        api.send("GET", target),
        {200, 404} | too_long(target),
        {"User not found", "Not found", TOO_LONG},
    )

    if isinstance(data, dict):
        assert decoded(segment) == known_user
        assert list(data) == ["profile", "events", "offers", "journey"]
        assert data["profile"]["externalId"] == known_user


@FUZZ
@given(segment=segments(), pairs=QUERY_PAIRS)
def test_erasure_of_anyone_else_erases_nothing(
    api: Api, known_user: str, segment: str, pairs: list[tuple[str, str]]
) -> None:
    target = f"{USERS}/{segment}{query_string(pairs)}"
    if decoded(segment) in (known_user, ""):
        return  # the one user this test keeps; "" names the members list

    envelope(
        api.send("DELETE", target),
        {400, 404, 405} | too_long(target),
        {"User not found", "Not found", "Invalid request body", "Method not allowed", TOO_LONG},
    )

    _still_there(api)


@FUZZ
@given(segment=segments({KNOWN_USER}), pairs=QUERY_PAIRS)
def test_lifting_a_suppression_that_is_not_there(
    api: Api, known_user: str, segment: str, pairs: list[tuple[str, str]]
) -> None:
    target = f"{BASE}/suppressions/{segment}{query_string(pairs)}"

    envelope(
        api.send("DELETE", target),
        {400, 404, 405} | too_long(target),
        {
            "Suppression not found",
            "Not found",
            "Invalid request body",
            "Method not allowed",
            TOO_LONG,
        },
    )

    _still_there(api)


def test_the_known_user_can_be_erased_and_exported_by_its_encoded_id(
    api: Api, known_user: str
) -> None:
    encoded = "".join(f"%{byte:02X}" for byte in known_user.encode())

    exported: Any = envelope(api.send("GET", f"{USERS}/{encoded}/export"), {200})
    erased = envelope(api.send("DELETE", f"{USERS}/{encoded}?suppress=true"), {200})

    assert exported["profile"]["externalId"] == known_user
    assert erased == {**erased, "externalId": known_user, "suppressed": True}
    envelope(api.send("GET", f"{USERS}/{KNOWN_USER}"), {404}, {"User not found"})
