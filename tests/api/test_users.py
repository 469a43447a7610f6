"""POST /users and GET /users/{externalId} through the real Envoy, server and SQLite file."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from journeys.domain import Environment

from tests.api.rest import LOWER_UUID, PROFILE_KEYS, RFC3339_SECONDS, error, headers, success
from tests.conftest import KeyFactory

USERS = "/v1/user-journeys/users"

# The documented request of the seed's curl example.
DOCUMENTED_REQUEST = {
    "externalId": "user_12345",
    "displayName": "Jane Doe",
    "email": "jane@example.com",
    "country": "NG",
    "device": "mobile",
    "source": "referral",
    "tags": {"plan": "premium", "cohort": "2025-Q1"},
    "metadata": {"signupDate": "2025-01-15"},
}


def test_documented_create_returns_the_documented_profile(
    http: httpx.Client, new_key: KeyFactory
) -> None:
    key = new_key(Environment.LIVE)

    data = success(http.post(USERS, headers=headers(key), json=DOCUMENTED_REQUEST))

    assert list(data) == PROFILE_KEYS
    assert LOWER_UUID.fullmatch(data["id"])
    assert LOWER_UUID.fullmatch(data["partnerId"])
    assert RFC3339_SECONDS.fullmatch(data["firstSeenAt"])
    assert data["lastSeenAt"] == data["firstSeenAt"]
    expected = {
        "externalId": "user_12345",
        "environment": "LIVE",
        "displayName": "Jane Doe",
        "email": "jane@example.com",
        "phone": "",
        "country": "NG",
        "device": "mobile",
        "source": "referral",
        "lifecycleStage": "new",
        "engagementTier": "casual",
        "engagementScore": 0,
        "churnRiskScore": 0,
        "totalPlays": 0,
        "plays7d": 0,
        "plays30d": 0,
        "pointsEarned7d": 0,
        "pointsEarned30d": 0,
        "campaignsJoined": 0,
        "winRate": 0,
        "totalEvents": 0,
        "tags": {"plan": "premium", "cohort": "2025-Q1"},
        "metadata": {"signupDate": "2025-01-15"},
    }
    assert {name: data[name] for name in expected} == expected


def test_minimal_profile_prints_empty_strings_and_objects(http: httpx.Client, key: str) -> None:
    data = success(http.post(USERS, headers=headers(key), json={"externalId": "bare"}))

    assert data["environment"] == "TEST"
    for name in ("displayName", "email", "phone", "country", "device", "source"):
        assert data[name] == ""
    assert data["tags"] == {}
    assert data["metadata"] == {}


def test_update_keeps_fields_not_sent_and_replaces_fields_sent(
    http: httpx.Client, key: str
) -> None:
    created = success(http.post(USERS, headers=headers(key), json=DOCUMENTED_REQUEST))

    updated = success(
        http.post(
            USERS,
            headers=headers(key),
            json={"externalId": "user_12345", "phone": "+2348012345678", "tags": {"plan": "free"}},
        )
    )

    assert updated["id"] == created["id"]
    assert updated["phone"] == "+2348012345678"
    assert updated["tags"] == {"plan": "free"}, "tags are replaced whole"
    assert updated["displayName"] == "Jane Doe"
    assert updated["email"] == "jane@example.com"
    assert updated["metadata"] == {"signupDate": "2025-01-15"}
    assert updated["firstSeenAt"] == created["firstSeenAt"]
    assert updated["lastSeenAt"] >= created["lastSeenAt"]


def test_empty_object_and_empty_string_clear_stored_values(http: httpx.Client, key: str) -> None:
    success(http.post(USERS, headers=headers(key), json=DOCUMENTED_REQUEST))

    updated = success(
        http.post(
            USERS,
            headers=headers(key),
            json={"externalId": "user_12345", "tags": {}, "metadata": {}, "email": ""},
        )
    )

    assert updated["tags"] == {}
    assert updated["metadata"] == {}
    assert updated["email"] == ""
    assert updated["displayName"] == "Jane Doe"


def test_tracking_again_moves_last_seen_forward(http: httpx.Client, key: str) -> None:
    first = success(http.post(USERS, headers=headers(key), json={"externalId": "seen"}))
    time.sleep(1.1)

    second = success(http.post(USERS, headers=headers(key), json={"externalId": "seen"}))

    assert second["firstSeenAt"] == first["firstSeenAt"]
    assert second["lastSeenAt"] > first["lastSeenAt"]


def test_get_profile_adds_recommendations_and_journey(http: httpx.Client, key: str) -> None:
    created = success(http.post(USERS, headers=headers(key), json=DOCUMENTED_REQUEST))

    data = success(http.get(f"{USERS}/user_12345", headers={"X-API-Key": key}))

    assert list(data) == [*PROFILE_KEYS, "recommendations", "journey"]
    assert {name: data[name] for name in PROFILE_KEYS} == created
    assert isinstance(data["recommendations"], list)
    assert data["journey"] == []


def test_metadata_keeps_nested_json(http: httpx.Client, key: str) -> None:
    metadata = {"nested": {"list": [1, "two", True, None], "n": 2.5}, "flag": False}

    data = success(
        http.post(USERS, headers=headers(key), json={"externalId": "nested", "metadata": metadata})
    )

    assert data["metadata"] == metadata


def test_external_id_with_every_allowed_character_round_trips(http: httpx.Client, key: str) -> None:
    external_id = "a_b-c.d:e@f+g"
    success(http.post(USERS, headers=headers(key), json={"externalId": external_id}))

    data = success(http.get(f"{USERS}/{external_id}", headers={"X-API-Key": key}))

    assert data["externalId"] == external_id


def test_unknown_user_is_not_found(http: httpx.Client, key: str) -> None:
    error(http.get(f"{USERS}/nobody", headers={"X-API-Key": key}), 404, "User not found")
    error(http.get(f"{USERS}/nobody/offers", headers={"X-API-Key": key}), 404, "User not found")


def test_offers_of_a_user_without_offers_is_an_empty_list(http: httpx.Client, key: str) -> None:
    success(http.post(USERS, headers=headers(key), json={"externalId": "no_offers"}))

    response = http.get(f"{USERS}/no_offers/offers", headers={"X-API-Key": key})

    assert success(response) == {"offers": []}
    assert response.text == '{"status":"success","data":{"offers":[]}}'


def test_unknown_json_fields_are_ignored(http: httpx.Client, key: str) -> None:
    data = success(
        http.post(
            USERS,
            headers=headers(key),
            json={"externalId": "fwd", "favouriteColour": "blue", "displayName": "F"},
        )
    )

    assert data["displayName"] == "F"


def test_content_type_is_not_required(http: httpx.Client, key: str) -> None:
    response = http.post(
        USERS, headers={"X-API-Key": key}, content=b'{"externalId":"no_content_type"}'
    )

    assert success(response)["externalId"] == "no_content_type"


def test_unknown_query_parameters_are_ignored(http: httpx.Client, key: str) -> None:
    success(http.post(USERS, headers=headers(key), json={"externalId": "cache_buster"}))

    data = success(http.get(f"{USERS}/cache_buster?_=123", headers={"X-API-Key": key}))

    assert data["externalId"] == "cache_buster"


class TestIsolation:
    def test_test_and_live_keys_of_one_partner_hold_different_users(
        self, http: httpx.Client, new_key: KeyFactory
    ) -> None:
        partner = f"partner-{uuid.uuid4()}"
        test_key = new_key(Environment.TEST, partner)
        live_key = new_key(Environment.LIVE, partner)
        in_test = success(http.post(USERS, headers=headers(test_key), json={**DOCUMENTED_REQUEST}))
        error(
            http.get(f"{USERS}/user_12345", headers={"X-API-Key": live_key}), 404, "User not found"
        )

        in_live = success(
            http.post(USERS, headers=headers(live_key), json={"externalId": "user_12345"})
        )

        assert in_live["id"] != in_test["id"]
        assert in_live["partnerId"] == in_test["partnerId"]
        assert (in_test["environment"], in_live["environment"]) == ("TEST", "LIVE")
        assert in_live["displayName"] == "", "LIVE never sees what TEST wrote"
        again = success(http.get(f"{USERS}/user_12345", headers={"X-API-Key": test_key}))
        assert again["displayName"] == "Jane Doe", "TEST never sees what LIVE wrote"

    def test_a_partner_never_reads_or_changes_another_partners_user(
        self, http: httpx.Client, new_key: KeyFactory
    ) -> None:
        key_a, key_b = new_key(), new_key()
        user_a = success(http.post(USERS, headers=headers(key_a), json=DOCUMENTED_REQUEST))

        error(http.get(f"{USERS}/user_12345", headers={"X-API-Key": key_b}), 404, "User not found")
        error(
            http.get(f"{USERS}/user_12345/offers", headers={"X-API-Key": key_b}),
            404,
            "User not found",
        )
        user_b = success(
            http.post(
                USERS, headers=headers(key_b), json={"externalId": "user_12345", "phone": "1"}
            )
        )

        assert user_b["id"] != user_a["id"]
        assert user_b["partnerId"] != user_a["partnerId"]
        unchanged = success(http.get(f"{USERS}/user_12345", headers={"X-API-Key": key_a}))
        assert unchanged["phone"] == ""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Invalid request body: externalId is required"),
        ({"externalId": ""}, "Invalid request body: externalId is required"),
        (
            {"externalId": "x" * 129},
            "Invalid request body: externalId must be at most 128 characters",
        ),
        (
            {"externalId": "has space"},
            "Invalid request body: externalId may contain only ASCII letters, digits and "
            "_ - . : @ +",
        ),
        (
            {"externalId": "a/b"},
            "Invalid request body: externalId may contain only ASCII letters, digits and "
            "_ - . : @ +",
        ),
        ({"externalId": ".."}, "Invalid request body: externalId must contain a letter or digit"),
        (
            {"externalId": "nul\u0000"},
            "Invalid request body: externalId must not contain the NUL character",
        ),
        (
            {"externalId": "u", "displayName": "a\u0000b"},
            "Invalid request body: displayName must not contain the NUL character",
        ),
        (
            {"externalId": "u", "metadata": {"deep": ["x\u0000"]}},
            "Invalid request body: metadata must not contain the NUL character",
        ),
        (
            {"externalId": "u", "displayName": "d" * 201},
            "Invalid request body: displayName must be at most 200 characters",
        ),
        (
            {"externalId": "u", "email": "e" * 250 + "@x.io"},
            "Invalid request body: email must be at most 254 characters",
        ),
        (
            {"externalId": "u", "email": "not-an-email"},
            "Invalid request body: email must be an email address",
        ),
        (
            {"externalId": "u", "source": "s" * 101},
            "Invalid request body: source must be at most 100 characters",
        ),
        (
            {"externalId": "u", "phone": "1" * 21},
            "Invalid request body: phone must be at most 20 characters",
        ),
        (
            {"externalId": "u", "country": "NGA"},
            "Invalid request body: country must be an ISO 3166-1 alpha-2 code such as NG, US or GB",
        ),
        (
            {"externalId": "u", "country": "N1"},
            "Invalid request body: country must be an ISO 3166-1 alpha-2 code such as NG, US or GB",
        ),
        (
            {"externalId": "u", "device": "console"},
            "Invalid request body: device must be one of mobile, desktop, tablet",
        ),
        (
            {"externalId": "u", "tags": {f"k{i}": "v" for i in range(51)}},
            "Invalid request body: tags must have at most 50 keys",
        ),
        (
            {"externalId": "u", "tags": {"k" * 65: "v"}},
            "Invalid request body: tags keys must be at most 64 characters",
        ),
        (
            {"externalId": "u", "tags": {"plan": "v" * 257}},
            "Invalid request body: tags.plan must be at most 256 characters",
        ),
        (
            {"externalId": "u", "tags": {"plan": 3}},
            "Invalid request body: tags.plan must be a string",
        ),
        (
            {"externalId": "u", "metadata": {"blob": "x" * (16 * 1024)}},
            "Invalid request body: metadata must be at most 16384 bytes when serialized",
        ),
    ],
)
def test_validation_rule(
    http: httpx.Client, key: str, body: dict[str, object], message: str
) -> None:
    error(http.post(USERS, headers=headers(key), json=body), 400, message)

    if body.get("externalId") == "u":
        error(http.get(f"{USERS}/u", headers={"X-API-Key": key}), 404, "User not found")


def test_an_empty_body_is_an_empty_object(http: httpx.Client, key: str) -> None:
    error(
        http.post(USERS, headers=headers(key), content=b""),
        400,
        "Invalid request body: externalId is required",
    )


def test_lowercase_country_is_upper_cased(http: httpx.Client, key: str) -> None:
    data = success(
        http.post(USERS, headers=headers(key), json={"externalId": "u", "country": "gb"})
    )

    assert data["country"] == "GB"


def test_limits_are_inclusive(http: httpx.Client, key: str) -> None:
    body = {
        "externalId": "x" * 128,
        "displayName": "d" * 200,
        "email": "e" * 240 + "@example.com",
        "phone": "1" * 20,
        "source": "s" * 100,
        "tags": {f"{i:0>64}": "v" * 256 for i in range(50)},
    }

    data = success(http.post(USERS, headers=headers(key), json=body))

    assert data["externalId"] == "x" * 128
    assert len(data["tags"]) == 50


def test_a_rejected_update_changes_nothing(http: httpx.Client, key: str) -> None:
    success(http.post(USERS, headers=headers(key), json=DOCUMENTED_REQUEST))

    error(
        http.post(
            USERS,
            headers=headers(key),
            json={"externalId": "user_12345", "displayName": "Changed", "phone": "1" * 21},
        ),
        400,
        "Invalid request body: phone must be at most 20 characters",
    )

    data = success(http.get(f"{USERS}/user_12345", headers={"X-API-Key": key}))
    assert data["displayName"] == "Jane Doe"
    assert data["phone"] == ""


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1,2]",
        b'{"externalId": 42}',
        b'{"externalId": "u", "tags": "premium"}',
        b'{"externalId": "u", "metadata": [1]}',
    ],
)
def test_malformed_body_is_plain_invalid_request_body(
    http: httpx.Client, key: str, body: bytes
) -> None:
    error(http.post(USERS, headers=headers(key), content=body), 400, "Invalid request body")
