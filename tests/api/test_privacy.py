"""Erasure, suppression and export for a secret key through the real Envoy and server, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
from gamifyhost.userjourneys.v1 import privacy_service_pb2 as pb
from gamifyhost.userjourneys.v1 import privacy_service_pb2_grpc as pb_grpc
from journeys.domain import Environment, KeyKind

from scripts.stack import Stack
from tests.api.conftest import Tenant
from tests.api.rest import RFC3339_SECONDS, error, headers, success
from tests.api.test_events import play, stamp, track
from tests.api.test_offers import run_analytics
from tests.conftest import KeyFactory

BASE = "/v1/user-journeys"
USERS = f"{BASE}/users"
ERASED = "Invalid request body: externalId has been erased"


def erase(http: httpx.Client, key: str, external_id: str, query: str = "") -> httpx.Response:
    return http.delete(f"{USERS}/{external_id}{query}", headers={"X-API-Key": key})


def export(http: httpx.Client, key: str, external_id: str) -> httpx.Response:
    return http.get(f"{USERS}/{external_id}/export", headers={"X-API-Key": key})


def test_public_keys_are_refused(http: httpx.Client, tenant: Tenant) -> None:
    track(http, tenant.public, [play("kept")])
    for response in (
        erase(http, tenant.public, "kept"),
        erase(http, tenant.public, "kept", "?suppress=true"),
        http.delete(f"{BASE}/suppressions/kept", headers={"X-API-Key": tenant.public}),
        export(http, tenant.public, "kept"),
    ):
        error(response, 403, "This endpoint requires a secret key")
    assert success(http.get(f"{USERS}/kept", headers={"X-API-Key": tenant.public}))


def test_an_erased_user_is_gone_from_every_read(
    http: httpx.Client, stack: Stack, tenant: Tenant
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    track(http, tenant.public, [play("gone", occurredAt=stamp(now - timedelta(hours=1)))] * 3)
    track(http, tenant.public, [play("stays")])
    run_analytics(stack, now)
    auth = {"X-API-Key": tenant.public}
    offers = success(http.get(f"{USERS}/gone/offers", headers=auth))["offers"]

    data = success(erase(http, tenant.secret, "gone"))

    assert list(data) == ["externalId", "deletedAt", "suppressed"]
    assert data["externalId"] == "gone"
    assert data["suppressed"] is False
    assert RFC3339_SECONDS.fullmatch(data["deletedAt"])
    for path in ("gone", "gone/timeline", "gone/offers", "gone/export"):
        error(
            http.get(f"{USERS}/{path}", headers={"X-API-Key": tenant.secret}), 404, "User not found"
        )
    if offers:
        claim = http.post(f"{USERS}/gone/offers/{offers[0]['id']}/claim", headers=auth)
        error(claim, 404, "Offer not found")
    error(erase(http, tenant.secret, "gone"), 404, "User not found")
    assert success(http.get(f"{USERS}/stays", headers=auth))["externalId"] == "stays"
    # Not suppressed: the id may come back, as a new user.
    again = success(http.post(USERS, headers=headers(tenant.public), json={"externalId": "gone"}))
    assert again["totalEvents"] == 0


def test_suppression_refuses_the_id_until_lifted(
    http: httpx.Client, tenant: Tenant, new_key: KeyFactory, stack: Stack
) -> None:
    track(http, tenant.public, [play("banned")])
    other_partner = new_key()
    other_environment = stack.new_key(tenant.partner, Environment.LIVE)

    data = success(erase(http, tenant.secret, "banned", "?suppress=true"))

    assert data["suppressed"] is True
    as_profile = http.post(USERS, headers=headers(tenant.public), json={"externalId": "banned"})
    error(as_profile, 400, ERASED)
    as_event = http.post(f"{BASE}/events", headers=headers(tenant.public), json=play("banned"))
    error(as_event, 400, ERASED)
    batch = track(http, tenant.public, [play("fine"), play("banned")])
    assert (batch["accepted"], batch["rejected"]) == (1, 1)
    assert batch["results"][1]["status"] == "rejected"
    # Item errors name the rule without the request-level prefix, as every item error does.
    assert batch["results"][1]["error"] == "externalId has been erased"
    error(http.get(f"{USERS}/banned", headers={"X-API-Key": tenant.public}), 404, "User not found")
    # Other tenants may use the same id.
    for key in (other_partner, other_environment):
        success(http.post(USERS, headers=headers(key), json={"externalId": "banned"}))

    lifted = success(
        http.delete(f"{BASE}/suppressions/banned", headers={"X-API-Key": tenant.secret})
    )

    assert lifted == {"externalId": "banned", "suppressed": False}
    success(http.post(USERS, headers=headers(tenant.public), json={"externalId": "banned"}))
    error(
        http.delete(f"{BASE}/suppressions/banned", headers={"X-API-Key": tenant.secret}),
        404,
        "Suppression not found",
    )


def test_another_tenant_cannot_erase_or_export(
    http: httpx.Client, tenant: Tenant, new_key: KeyFactory, stack: Stack
) -> None:
    track(http, tenant.public, [play("mine")])
    for key in (
        new_key(kind=KeyKind.SECRET),
        stack.new_key(tenant.partner, Environment.LIVE, KeyKind.SECRET),
    ):
        error(erase(http, key, "mine"), 404, "User not found")
        error(export(http, key, "mine"), 404, "User not found")
    assert success(http.get(f"{USERS}/mine", headers={"X-API-Key": tenant.public}))


def test_unknown_query_parameters_never_reach_the_erasure(
    http: httpx.Client, tenant: Tenant
) -> None:
    track(http, tenant.public, [play("q")])

    data = success(erase(http, tenant.secret, "q", "?externalId=other&suppress=true&x=1"))

    assert data == {**data, "externalId": "q", "suppressed": True}


def test_export_holds_everything_in_the_api_shapes(
    http: httpx.Client, stack: Stack, tenant: Tenant
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    items = [
        play(
            "full", occurredAt=stamp(now - timedelta(days=days)), points=days, messageId=f"m{days}"
        )
        for days in (3, 1, 2)
    ]
    track(http, tenant.public, items)
    run_analytics(stack, now)
    auth = {"X-API-Key": tenant.public}
    profile = success(http.get(f"{USERS}/full", headers=auth))
    timeline = success(http.get(f"{USERS}/full/timeline?limit=100", headers=auth))["events"]
    offers = success(http.get(f"{USERS}/full/offers", headers=auth))["offers"]

    response = export(http, tenant.secret, "full")
    data = success(response)

    assert list(data) == ["profile", "events", "offers", "journey"]
    assert data["profile"] == profile
    assert data["events"] == list(reversed(timeline)), "every event, oldest first"
    assert [event["points"] for event in data["events"]] == [3, 2, 1]
    assert {offer["id"] for offer in offers} <= {offer["id"] for offer in data["offers"]}
    for offer in data["offers"]:
        listed = next((item for item in offers if item["id"] == offer["id"]), None)
        assert listed is None or offer == listed
        assert "claimedAt" in offer
    assert data["journey"] == list(reversed(profile["journey"]))


def test_export_streams_many_events(http: httpx.Client, tenant: Tenant) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=10)
    count = 3000
    for first in range(0, count, 500):
        batch = [
            play("busy", occurredAt=stamp(start + timedelta(seconds=n)), messageId=f"b{n}")
            for n in range(first, first + 500)
        ]
        assert track(http, tenant.public, batch)["accepted"] == 500

    with http.stream(
        "GET", f"{USERS}/busy/export", headers={"X-API-Key": tenant.secret}
    ) as response:
        chunks = list(response.iter_bytes())
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        # Passed on as it is produced, never held whole by the gateway.
        assert "content-length" not in response.headers

    body = json.loads(b"".join(chunks))
    assert body["status"] == "success"
    events = body["data"]["events"]
    assert len(events) == count
    assert [event["messageId"] for event in events] == [f"b{n}" for n in range(count)]


def test_export_is_gzipped_when_asked(http: httpx.Client, tenant: Tenant) -> None:
    track(http, tenant.public, [play("zip", messageId=f"z{n}") for n in range(200)])

    response = http.get(
        f"{USERS}/zip/export",
        headers={"X-API-Key": tenant.secret, "Accept-Encoding": "gzip"},
    )

    assert response.headers["content-encoding"] == "gzip"
    assert len(success(response)["events"]) == 200


def test_grpc_clients_erase_and_export(stack: Stack, tenant: Tenant, http: httpx.Client) -> None:
    track(http, tenant.public, [play("rpc-a"), play("rpc-a"), play("rpc-b")])
    metadata = (("x-api-key", tenant.secret),)
    with grpc.insecure_channel(stack.direct_target) as channel:
        stub = pb_grpc.PrivacyServiceStub(channel)
        chunks = list(stub.ExportUser(pb.ExportUserRequest(external_id="rpc-a"), metadata=metadata))
        erased = stub.DeleteUser(
            pb.DeleteUserRequest(external_id="rpc-b", suppress=True), metadata=metadata
        )
        with pytest.raises(grpc.RpcError) as missing:
            list(stub.ExportUser(pb.ExportUserRequest(external_id="rpc-b"), metadata=metadata))
        with pytest.raises(grpc.RpcError) as refused:
            stub.DeleteUser(
                pb.DeleteUserRequest(external_id="rpc-a"),
                metadata=(("x-api-key", tenant.public),),
            )

    document: dict[str, Any] = json.loads(b"".join(chunk.data for chunk in chunks))
    assert {chunk.content_type for chunk in chunks} == {"application/json"}
    assert len(document["data"]["events"]) == 2
    assert (erased.external_id, erased.suppressed) == ("rpc-b", True)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
