"""The OpenAPI document: generated from the protos' google.api.http annotations, valid OpenAPI
3.1, served by Envoy without a key and without an envelope, and true to the live API: every
endpoint's answers, success and error, validate against it."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest
from gamifyhost.userjourneys.v1 import privacy_service_pb2 as privacy_pb
from gamifyhost.userjourneys.v1 import reports_service_pb2 as reports_pb
from gamifyhost.userjourneys.v1 import segments_service_pb2 as segments_pb
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from gamifyhost.userjourneys.v1 import webhooks_service_pb2 as webhooks_pb
from google.api import annotations_pb2
from journeys.domain import Environment, KeyKind
from journeys.gateway import DESCRIPTOR, openapi
from journeys.gateway import OPENAPI_DOCUMENT as DOCUMENT
from openapi_spec_validator import validate

from scripts.stack import Stack, journeys
from tests.api.rest import error, headers, success
from tests.conftest import KeyFactory
from tests.ecosystem.contract import Contract, load

BASE = "/v1/user-journeys"
#: Answered live by the webhooks test below, on a server that may deliver to this machine.
WEBHOOK_OPERATIONS = {
    ("POST", f"{BASE}/webhooks"),
    ("GET", f"{BASE}/webhooks"),
    ("DELETE", f"{BASE}/webhooks/{{webhookId}}"),
    ("GET", f"{BASE}/webhooks/{{webhookId}}/deliveries"),
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return load()


def test_the_built_document_is_current() -> None:
    """`make` wrote it from the descriptor set it built; regenerating gives the same bytes."""
    assert DOCUMENT.read_text() == openapi.render(openapi.generate(DESCRIPTOR.read_bytes()))


def test_it_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"] == "3.1.0"


def test_every_http_annotation_is_an_operation_and_nothing_else(
    document: dict[str, Any],
) -> None:
    services = [
        pb.DESCRIPTOR.services_by_name["UserJourneysService"],
        segments_pb.DESCRIPTOR.services_by_name["SegmentsService"],
        privacy_pb.DESCRIPTOR.services_by_name["PrivacyService"],
        webhooks_pb.DESCRIPTOR.services_by_name["WebhooksService"],
        reports_pb.DESCRIPTOR.services_by_name["ReportsService"],
    ]
    expected = {(openapi.DOCUMENT_PATH, "get", "GetOpenApiDocument")}
    for method in (method for service in services for method in service.methods):
        rule = method.GetOptions().Extensions[annotations_pb2.http]
        verb = rule.WhichOneof("pattern")
        if verb is None:
            continue  # gRPC only
        names = {field.name: field.json_name for field in method.input_type.fields}

        def camel(match: re.Match[str], names: dict[str, str] = names) -> str:
            return "{" + names[match.group(1)] + "}"

        path = re.sub(r"\{(\w+)\}", camel, getattr(rule, verb))
        expected.add((path, verb, method.name))
    actual = {
        (path, verb, operation["operationId"])
        for path, item in document["paths"].items()
        for verb, operation in item.items()
    }
    assert actual == expected


def test_the_documented_shapes(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert document["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": document["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    assert document["security"] == [{"ApiKey": []}]
    assert document["paths"][openapi.DOCUMENT_PATH]["get"]["security"] == []
    assert schemas["Error"]["required"] == ["message", "code", "status"]
    # camelCase, in the documented order, with churnRiskScore after engagementScore.
    user = list(schemas["User"]["properties"])
    assert user[:4] == ["id", "partnerId", "externalId", "environment"]
    assert user.index("churnRiskScore") == user.index("engagementScore") + 1
    assert {"plays7d", "pointsEarned30d", "winRate"} <= set(user)
    assert schemas["Offer"]["properties"]["claimedAt"]["anyOf"][1] == {"type": "null"}
    assert schemas["TrackUserRequest"]["required"] == ["externalId"]
    assert schemas["EventInput"]["required"] == ["externalId", "category", "eventType"]
    timeline = document["paths"][f"{BASE}/users/{{externalId}}/timeline"]["get"]
    assert [(p["name"], p["in"]) for p in timeline["parameters"]] == [
        ("externalId", "path"),
        ("page", "query"),
        ("limit", "query"),
    ]
    envelope = document["paths"][f"{BASE}/users"]["post"]["responses"]["200"]["content"]
    assert envelope["application/json"]["schema"]["properties"] == {
        "status": {"const": "success"},
        "data": {"$ref": "#/components/schemas/User"},
    }


def test_served_as_is_without_a_key(http: httpx.Client) -> None:
    response = http.get(f"{BASE}/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == DOCUMENT.read_bytes(), "no envelope, not a byte changed"
    with_key = http.get(f"{BASE}/openapi.json", headers={"X-API-Key": "pk_test_" + "0" * 32})
    assert with_key.content == response.content
    # GET and HEAD only: anything else is 405, in the error envelope.
    refused = http.post(f"{BASE}/openapi.json", json={})
    error(refused, 405, "Method not allowed")
    assert refused.headers["allow"] == "GET, HEAD, OPTIONS"
    error(http.get(f"{BASE}/openapi.yaml"), 404, "Not found")


def test_live_answers_of_every_endpoint_match_the_document(
    stack: Stack, http: httpx.Client, new_key: KeyFactory, document: dict[str, Any]
) -> None:
    contract = Contract(document)
    check = contract.check
    partner = f"partner-{uuid.uuid4()}"
    key = new_key(partner=partner)
    auth = {"X-API-Key": key}
    secret = {"X-API-Key": new_key(partner=partner, kind=KeyKind.SECRET)}

    # POST /users
    profile = {
        "externalId": "user_12345",
        "displayName": "Jane Doe",
        "email": "jane@example.com",
        "country": "NG",
        "device": "mobile",
        "source": "referral",
        "tags": {"plan": "premium"},
        "metadata": {"signupDate": "2025-01-15", "nested": {"n": [1, 2.5, None, True]}},
    }
    success(check(http.post(f"{BASE}/users", headers=headers(key), json=profile)))
    success(check(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": "bare"})))
    invalid = {"externalId": "u", "phone": "1" * 21}
    error(
        check(http.post(f"{BASE}/users", headers=headers(key), json=invalid)),
        400,
        "Invalid request body: phone must be at most 20 characters",
    )
    malformed = http.post(f"{BASE}/users", headers=headers(key), content=b"{not json")
    error(check(malformed), 400, "Invalid request body")
    error(check(http.post(f"{BASE}/users", json=profile)), 401, "Missing X-API-Key header")
    error(
        check(http.post(f"{BASE}/users", headers=headers("pk_test_" + "f" * 32), json=profile)),
        401,
        "Invalid API key",
    )
    too_large = check(
        http.post(
            f"{BASE}/users",
            headers=headers(key),
            content=json.dumps({"externalId": "big", "displayName": "x" * (1 << 20)}),
        )
    )
    error(too_large, 413, "Request body too large")

    # POST /events
    event = {
        "externalId": "user_12345",
        "category": "GAME_PLAY",
        "eventType": "spin",
        "points": 50,
        "messageId": f"spin-{uuid.uuid4()}",
        "metadata": {"won": True},
    }
    success(check(http.post(f"{BASE}/events", headers=headers(key), json=event)))
    success(check(http.post(f"{BASE}/events", headers=headers(key), json=event)))  # duplicate
    check(http.post(f"{BASE}/events", headers=headers(key), json={**event, "category": "NOPE"}))

    # POST /track
    batch = {
        "events": [
            {"externalId": "user_12345", "category": "CAMPAIGN", "eventType": "join"},
            event,
            {"externalId": "user_12345", "category": "POINTS", "eventType": "Bad Type"},
            {"externalId": "new_user", "category": "CUSTOM", "eventType": "signup"},
        ]
    }
    data = success(check(http.post(f"{BASE}/track", headers=headers(key), json=batch)))
    assert (data["accepted"], data["duplicates"], data["rejected"]) == (2, 1, 1)
    check(http.post(f"{BASE}/track", headers=headers(key), json={"events": []}))

    # GET /users/{externalId}
    success(check(http.get(f"{BASE}/users/user_12345", headers=auth)))
    error(check(http.get(f"{BASE}/users/nobody", headers=auth)), 404, "User not found")

    # GET /users/{externalId}/timeline
    page = success(check(http.get(f"{BASE}/users/user_12345/timeline?limit=2", headers=auth)))
    assert page["events"], page
    check(http.get(f"{BASE}/users/user_12345/timeline?limit=0", headers=auth))
    check(http.get(f"{BASE}/users/nobody/timeline", headers=auth))

    # GET /users/{externalId}/offers and the claim, after the analytics job made some.
    success(check(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": "fresh"})))
    assert success(check(http.get(f"{BASE}/users/fresh/offers", headers=auth))) == {"offers": []}
    result = journeys("analytics", "run", env=stack.env())
    assert result.returncode == 0, result.stderr
    offers = success(check(http.get(f"{BASE}/users/fresh/offers", headers=auth)))["offers"]
    assert offers, "a new user gets welcome offers"
    assert all(offer["claimedAt"] is None for offer in offers)
    claim = f"{BASE}/users/fresh/offers/{offers[0]['id']}/claim"
    claimed = success(check(http.post(claim, headers=auth)))["offer"]
    assert claimed["status"] == "claimed"
    assert claimed["claimedAt"] is not None
    error(check(http.post(claim, headers=auth)), 400, "Offer is no longer active")
    error(
        check(http.post(f"{BASE}/users/fresh/offers/{uuid.uuid4()}/claim", headers=auth)),
        404,
        "Offer not found",
    )
    check(http.get(f"{BASE}/users/nobody/offers", headers=auth))

    # A revoked key.
    revoked = new_key()
    assert journeys("keys", "revoke", revoked, env=stack.env()).returncode == 0
    error(
        check(http.get(f"{BASE}/users/user_12345", headers={"X-API-Key": revoked})),
        403,
        "API key has been revoked",
    )

    # The partner operations (secret key).
    success(check(http.get(f"{BASE}/segments", headers=secret)))
    error(
        check(http.get(f"{BASE}/segments", headers=auth)),
        403,
        "This endpoint requires a secret key",
    )
    page = success(check(http.get(f"{BASE}/users?limit=1", headers=secret)))
    assert page["nextCursor"], "more than one user was classified"
    success(check(http.get(f"{BASE}/users?cursor={page['nextCursor']}", headers=secret)))
    check(http.get(f"{BASE}/users?minChurnRisk=101", headers=secret))
    success(check(http.get(f"{BASE}/reports/offers", headers=secret)))
    check(http.get(f"{BASE}/reports/offers?since=soon", headers=secret))
    check(http.get(f"{BASE}/reports/offers", headers=auth))
    success(check(http.get(f"{BASE}/users/fresh/export", headers=secret)))
    error(check(http.get(f"{BASE}/users/nobody/export", headers=secret)), 404, "User not found")
    success(check(http.delete(f"{BASE}/users/fresh?suppress=true", headers=secret)))
    error(check(http.delete(f"{BASE}/users/fresh", headers=secret)), 404, "User not found")
    success(check(http.delete(f"{BASE}/suppressions/fresh", headers=secret)))
    error(
        check(http.delete(f"{BASE}/suppressions/fresh", headers=secret)),
        404,
        "Suppression not found",
    )

    # The document itself.
    check(http.get(f"{BASE}/openapi.json"))

    successes = {(method, path) for method, path, status in contract.checked if status == 200}
    expected = contract.operations() - WEBHOOK_OPERATIONS
    assert successes == expected, "every operation answered 200 at least once"
    statuses = {status for _, _, status in contract.checked}
    assert {200, 400, 401, 403, 404, 413} <= statuses


def test_live_answers_of_the_webhook_endpoints_match_the_document(
    delivering_stack: Stack, document: dict[str, Any]
) -> None:
    contract = Contract(document)
    check = contract.check
    partner = f"partner-{uuid.uuid4()}"
    key = {"X-API-Key": delivering_stack.new_key(partner)}
    secret = {"X-API-Key": delivering_stack.new_key(partner, Environment.TEST, KeyKind.SECRET)}
    # A closed port on this machine: nothing is ever posted elsewhere.
    body = {"url": "http://127.0.0.1:9/openapi", "events": ["offer.created"], "description": "d"}
    with httpx.Client(base_url=delivering_stack.base_url, timeout=30) as http:
        created = success(check(http.post(f"{BASE}/webhooks", headers=secret, json=body)))
        webhook = created["webhook"]
        check(http.post(f"{BASE}/webhooks", headers=secret, json={**body, "events": ["nope"]}))
        error(
            check(http.get(f"{BASE}/webhooks", headers=key)),
            403,
            "This endpoint requires a secret key",
        )
        success(check(http.get(f"{BASE}/webhooks", headers=secret)))
        log = f"{BASE}/webhooks/{webhook['id']}/deliveries"
        success(check(http.get(log, headers=secret)))
        check(http.get(f"{log}?limit=0", headers=secret))
        success(check(http.delete(f"{BASE}/webhooks/{webhook['id']}", headers=secret)))
        error(check(http.get(log, headers=secret)), 404, "Webhook not found")
    successes = {(method, path) for method, path, status in contract.checked if status == 200}
    assert successes == WEBHOOK_OPERATIONS
