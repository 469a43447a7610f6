"""The tenant-isolation matrix: every endpoint, every kind of intruder, REST and gRPC.

Partner A (TEST) owns user `shared_user` with a profile, events and offers. An intruder — another
partner in the same environment, another partner in the other environment, or A's own key of
the other environment — uses the very same ids: it never sees A's data (404), never changes it,
never collides with A's idempotency keys, and can never claim A's offer. With a secret key it
never lists, exports, erases or suppresses A's users, and never sees or deletes A's webhooks.
A revoked key is refused (403) on every endpoint and writes nothing; a public key is refused
(403) every partner operation.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from gamifyhost.userjourneys.v1 import event_pb2
from gamifyhost.userjourneys.v1 import privacy_service_pb2 as privacy_pb
from gamifyhost.userjourneys.v1 import privacy_service_pb2_grpc as privacy_pb_grpc
from gamifyhost.userjourneys.v1 import segments_service_pb2 as segments_pb
from gamifyhost.userjourneys.v1 import segments_service_pb2_grpc as segments_pb_grpc
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2_grpc as pb_grpc
from gamifyhost.userjourneys.v1 import webhooks_service_pb2 as webhooks_pb
from gamifyhost.userjourneys.v1 import webhooks_service_pb2_grpc as webhooks_pb_grpc
from journeys.domain import Environment, KeyKind
from journeys.storage.database import Database
from journeys.usecases.auth import Operator
from journeys.usecases.webhooks import NewWebhook, Webhooks

from scripts.stack import Stack, journeys
from tests.conftest import KeyFactory
from tests.hardening.fuzz import BASE, USERS, Reply, envelope, send

USER = "shared_user"
OWNER_PROFILE = {
    "externalId": USER,
    "displayName": "Owner",
    "email": "owner@example.com",
    "phone": "+2348012345678",
    "country": "NG",
    "device": "mobile",
    "source": "referral",
    "tags": {"owner": "A"},
    "metadata": {"secret": "A's"},
}
OWNER_MESSAGE_IDS = ["owner-1", "owner-2", "owner-3"]


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


@dataclass
class World:
    stack: Stack
    owner: str  # A's TEST key
    partner_name: str
    offer_id: str
    has_offer: bool
    event_ids: set[str]

    def __repr__(self) -> str:
        return f"World(owner={self.owner[:16]}...)"

    def state(self) -> dict[str, Any]:
        """Everything A can read about its user."""
        return {
            "profile": envelope(send(self.stack, "GET", f"{USERS}/{USER}", key=self.owner), {200}),
            "timeline": envelope(
                send(self.stack, "GET", f"{USERS}/{USER}/timeline?limit=100", key=self.owner),
                {200},
            ),
            "offers": envelope(
                send(self.stack, "GET", f"{USERS}/{USER}/offers", key=self.owner), {200}
            ),
        }


@pytest.fixture
def world(stack: Stack, new_key: KeyFactory) -> World:
    partner = f"partner-a-{uuid.uuid4()}"
    owner = new_key(Environment.TEST, partner)
    envelope(send(stack, "POST", USERS, key=owner, body=_json(OWNER_PROFILE)), {200})
    events = [
        {
            "externalId": USER,
            "category": "GAME_PLAY",
            "eventType": "spin",
            "points": 10 * n,
            "messageId": message_id,
            "metadata": {"won": True},
        }
        for n, message_id in enumerate(OWNER_MESSAGE_IDS, 1)
    ]
    tracked = envelope(
        send(stack, "POST", f"{BASE}/track", key=owner, body=_json({"events": events})), {200}
    )
    assert tracked["accepted"] == 3
    # The offer engine hands the new user its welcome offers.
    ran = journeys("analytics", "run", env=stack.env())
    offers = envelope(send(stack, "GET", f"{USERS}/{USER}/offers", key=owner), {200})["offers"]
    has_offer = ran.returncode == 0 and bool(offers)
    return World(
        stack=stack,
        owner=owner,
        partner_name=partner,
        offer_id=offers[0]["id"] if has_offer else str(uuid.uuid4()),
        has_offer=has_offer,
        event_ids={result["eventId"] for result in tracked["results"]},
    )


# --- the matrix ------------------------------------------------------------------------------

#: name: (the intruder's environment, whether it is the owner's partner)
INTRUDERS: dict[str, tuple[Environment, bool]] = {
    "other partner, same environment": (Environment.TEST, False),
    "other partner, other environment": (Environment.LIVE, False),
    "same partner, other environment": (Environment.LIVE, True),
}


@dataclass(frozen=True)
class Read:
    name: str
    method: str
    path: str
    grpc_method: str
    grpc_request: Callable[[str], Any]
    messages: frozenset[str]
    statuses: frozenset[int] = frozenset({404})


READS = [
    Read(
        "GET /users/{externalId}",
        "GET",
        f"{USERS}/{USER}",
        "GetUser",
        lambda _: pb.GetUserRequest(external_id=USER),
        frozenset({"User not found"}),
    ),
    Read(
        "GET /users/{externalId}/timeline",
        "GET",
        f"{USERS}/{USER}/timeline",
        "GetTimeline",
        lambda _: pb.GetTimelineRequest(external_id=USER),
        frozenset({"User not found"}),
    ),
    Read(
        "GET /users/{externalId}/offers",
        "GET",
        f"{USERS}/{USER}/offers",
        "GetOffers",
        lambda _: pb.GetOffersRequest(external_id=USER),
        frozenset({"User not found"}),
    ),
    Read(
        "POST /users/{externalId}/offers/{offerId}/claim",
        "POST",
        f"{USERS}/{USER}/offers/{{offer}}/claim",
        "ClaimOffer",
        lambda offer: pb.ClaimOfferRequest(external_id=USER, offer_id=offer),
        # 501 until the offer engine lands.
        frozenset({"Offer not found", "Not implemented"}),
        frozenset({404, 501}),
    ),
]


def _grpc_outcome(stub: pb_grpc.UserJourneysServiceStub, read: Read, key: str, offer: str) -> Any:
    try:
        getattr(stub, read.grpc_method)(
            read.grpc_request(offer), metadata=(("x-api-key", key),), timeout=30
        )
    except grpc.RpcError as error:
        return error.code(), error.details()
    return grpc.StatusCode.OK, ""


def _reads_find_nothing(
    world: World, key: str, stubs: list[pb_grpc.UserJourneysServiceStub]
) -> None:
    for read in READS:
        path = read.path.format(offer=world.offer_id)
        reply = send(world.stack, read.method, path, key=key)
        try:
            envelope(reply, read.statuses, read.messages)
        except AssertionError as error:
            raise AssertionError(f"{read.name}: {error}") from error
        for stub in stubs:
            code, details = _grpc_outcome(stub, read, key, world.offer_id)
            if read.grpc_method == "ClaimOffer" and code == grpc.StatusCode.UNIMPLEMENTED:
                continue  # until the offer engine lands
            assert (code, details in read.messages) == (grpc.StatusCode.NOT_FOUND, True), (
                read.grpc_method,
                code,
                details,
            )


@pytest.mark.parametrize("intruder", list(INTRUDERS))
def test_an_intruder_never_reads_changes_or_claims_the_owners_data(
    world: World, new_key: KeyFactory, intruder: str
) -> None:
    environment, same_partner = INTRUDERS[intruder]
    key = new_key(environment, world.partner_name if same_partner else None)
    stack = world.stack
    before = world.state()
    with (
        grpc.insecure_channel(stack.direct_target) as direct,
        grpc.insecure_channel(stack.gateway_target) as gateway,
    ):
        stubs = [pb_grpc.UserJourneysServiceStub(c) for c in (direct, gateway)]

        # 1. Reads (REST and gRPC, direct and through Envoy) and the claim find nothing.
        _reads_find_nothing(world, key, stubs)

        # 2. Writes with the owner's ids and idempotency keys land in the intruder's tenant.
        mine = envelope(
            send(
                stack,
                "POST",
                USERS,
                key=key,
                body=_json({"externalId": USER, "displayName": "Intruder", "tags": {"by": "B"}}),
            ),
            {200},
        )
        event = envelope(
            send(
                stack,
                "POST",
                f"{BASE}/events",
                key=key,
                body=_json(_event(OWNER_MESSAGE_IDS[0], 999)),
            ),
            {200},
        )["event"]
        batch = envelope(
            send(
                stack,
                "POST",
                f"{BASE}/track",
                key=key,
                body=_json({"events": [_event(OWNER_MESSAGE_IDS[1], 7), _event("intruder-1", 1)]}),
            ),
            {200},
        )

        # 3. Reads now show the intruder's own user, never the owner's.
        profile = envelope(send(stack, "GET", f"{USERS}/{USER}", key=key), {200})
        timeline = envelope(send(stack, "GET", f"{USERS}/{USER}/timeline", key=key), {200})
        offers = envelope(send(stack, "GET", f"{USERS}/{USER}/offers", key=key), {200})
        claim = send(stack, "POST", f"{USERS}/{USER}/offers/{world.offer_id}/claim", key=key)

    owner_profile = before["profile"]
    assert mine["id"] != owner_profile["id"]
    assert mine["environment"] == environment.value
    assert (mine["partnerId"] == owner_profile["partnerId"]) == same_partner
    for name in ("email", "phone", "country", "device", "source"):
        assert mine[name] == "", f"{name} of the owner leaked into the intruder's profile"
    assert (mine["displayName"], mine["tags"], mine["metadata"]) == ("Intruder", {"by": "B"}, {})
    assert event["id"] not in world.event_ids, "the owner's messageId returned the owner's event"
    assert (event["points"], event["environment"]) == (999, environment.value)
    assert [r["status"] for r in batch["results"]] == ["accepted", "accepted"]
    assert not {r["eventId"] for r in batch["results"]} & world.event_ids
    assert profile["id"] == mine["id"]
    assert profile["totalEvents"] == 3, "the intruder's user counts only the intruder's events"
    assert {e["id"] for e in timeline["events"]}.isdisjoint(world.event_ids)
    assert offers == {"offers": []}
    envelope(claim, {404, 501}, {"Offer not found", "Not implemented"})

    # 4. The owner's data is exactly as it was, and its offer is still the owner's to claim.
    assert world.state() == before
    if world.has_offer:
        claimed = envelope(
            send(stack, "POST", f"{USERS}/{USER}/offers/{world.offer_id}/claim", key=world.owner),
            {200},
        )
        assert claimed["offer"]["status"] == "claimed"


def _event(message_id: str, points: int) -> dict[str, Any]:
    return {
        "externalId": USER,
        "category": "GAME_PLAY",
        "eventType": "spin",
        "points": points,
        "messageId": message_id,
    }


# --- revoked keys ----------------------------------------------------------------------------

REST_ENDPOINTS: list[tuple[str, str, bytes | None]] = [
    ("POST", USERS, _json({"externalId": USER, "displayName": "Revoked"})),
    ("POST", USERS, _json({"externalId": "new_after_revocation"})),
    ("POST", f"{BASE}/events", _json({**_event("revoked-1", 5), "externalId": "new_by_event"})),
    ("POST", f"{BASE}/track", _json({"events": [{**_event("revoked-2", 5)}]})),
    ("GET", f"{USERS}/{USER}", None),
    ("GET", f"{USERS}/{USER}/timeline", None),
    ("GET", f"{USERS}/{USER}/offers", None),
    ("POST", f"{USERS}/{USER}/offers/{{offer}}/claim", None),
]
GRPC_CALLS: list[tuple[str, Callable[[str], Any]]] = [
    ("TrackUser", lambda _: pb.TrackUserRequest(external_id=USER, display_name="Revoked")),
    (
        "TrackEvent",
        lambda _: pb.TrackEventRequest(
            event=event_pb2.EventInput(external_id="new_by_grpc", category="CUSTOM", event_type="x")
        ),
    ),
    (
        "TrackEvents",
        lambda _: pb.TrackEventsRequest(
            events=[event_pb2.EventInput(external_id=USER, category="CUSTOM", event_type="x")]
        ),
    ),
    ("GetUser", lambda _: pb.GetUserRequest(external_id=USER)),
    ("GetTimeline", lambda _: pb.GetTimelineRequest(external_id=USER)),
    ("GetOffers", lambda _: pb.GetOffersRequest(external_id=USER)),
    ("ClaimOffer", lambda offer: pb.ClaimOfferRequest(external_id=USER, offer_id=offer)),
]


def test_a_revoked_key_is_403_on_every_endpoint_and_writes_nothing(
    world: World, new_key: KeyFactory
) -> None:
    stack = world.stack
    second = new_key(Environment.TEST, world.partner_name)  # same partner and environment
    live = new_key(Environment.LIVE, world.partner_name)
    before = world.state()

    revoked = journeys("keys", "revoke", world.owner, env=stack.env())
    assert revoked.returncode == 0, revoked.stderr

    replies: list[tuple[str, Reply]] = []
    for method, path, body in REST_ENDPOINTS:
        target = path.format(offer=world.offer_id)
        replies.append(
            (f"{method} {target}", send(stack, method, target, key=world.owner, body=body))
        )
    outcomes: list[tuple[str, Any]] = []
    for target in (stack.direct_target, stack.gateway_target):
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.UserJourneysServiceStub(channel)
            for method, make in GRPC_CALLS:
                try:
                    getattr(stub, method)(
                        make(world.offer_id), metadata=(("x-api-key", world.owner),), timeout=30
                    )
                    outcomes.append((f"{target} {method}", (grpc.StatusCode.OK, "")))
                except grpc.RpcError as error:
                    outcomes.append((f"{target} {method}", (error.code(), error.details())))

    for name, reply in replies:
        try:
            envelope(reply, {403}, {"API key has been revoked"})
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from error
    for name, (code, details) in outcomes:
        assert (code, details) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "API key has been revoked",
        ), name
    # Nothing was written: the partner's other TEST key sees the user as it was and none of
    # the users the revoked calls named.
    world.owner = second
    assert world.state() == before
    for unknown in ("new_after_revocation", "new_by_event", "new_by_grpc"):
        envelope(send(stack, "GET", f"{USERS}/{unknown}", key=second), {404}, {"User not found"})
    # Revocation is per key: the same partner's LIVE key still works.
    envelope(send(stack, "GET", f"{USERS}/{USER}", key=live), {404}, {"User not found"})


# --- partner operations (secret keys) ---------------------------------------------------------

PART_C_REST: list[tuple[str, str]] = [
    ("GET", f"{BASE}/segments"),
    ("GET", USERS),
    ("GET", f"{USERS}?lifecycleStage=new"),
    ("GET", f"{USERS}/{USER}/export"),
    ("DELETE", f"{USERS}/{USER}"),
    ("DELETE", f"{USERS}/{USER}?suppress=true"),
    ("DELETE", f"{BASE}/suppressions/{USER}"),
]


def _outcomes(calls: list[tuple[str, Callable[[], Any]]]) -> list[tuple[str, Any]]:
    """Each call's answer, or (code, details) when it fails."""
    outcomes: list[tuple[str, Any]] = []
    for name, call in calls:
        try:
            outcomes.append((name, call()))
        except grpc.RpcError as error:
            outcomes.append((name, (error.code(), error.details())))
    return outcomes


def _part_c_grpc(channel: grpc.Channel, key: str) -> list[tuple[str, Any]]:
    """Every Part C call over gRPC: (name, (code, details)), or the answer when it is OK."""
    segments = segments_pb_grpc.SegmentsServiceStub(channel)
    privacy = privacy_pb_grpc.PrivacyServiceStub(channel)
    metadata = (("x-api-key", key),)
    calls: list[tuple[str, Callable[[], Any]]] = [
        (
            "GetSegmentSizes",
            lambda: segments.GetSegmentSizes(
                segments_pb.GetSegmentSizesRequest(), metadata=metadata
            ),
        ),
        (
            "ListSegmentMembers",
            lambda: segments.ListSegmentMembers(
                segments_pb.ListSegmentMembersRequest(), metadata=metadata
            ),
        ),
        (
            "ExportUser",
            lambda: list(
                privacy.ExportUser(
                    privacy_pb.ExportUserRequest(external_id=USER), metadata=metadata
                )
            ),
        ),
        (
            "DeleteUser",
            lambda: privacy.DeleteUser(
                privacy_pb.DeleteUserRequest(external_id=USER, suppress=True), metadata=metadata
            ),
        ),
        (
            "DeleteSuppression",
            lambda: privacy.DeleteSuppression(
                privacy_pb.DeleteSuppressionRequest(external_id=USER), metadata=metadata
            ),
        ),
    ]
    return _outcomes(calls)


@pytest.mark.parametrize("intruder", list(INTRUDERS))
def test_an_intruders_secret_key_never_lists_exports_or_erases_the_owners_users(
    world: World, new_key: KeyFactory, intruder: str
) -> None:
    environment, same_partner = INTRUDERS[intruder]
    key = new_key(environment, world.partner_name if same_partner else None, KeyKind.SECRET)
    stack = world.stack
    before = world.state()

    sizes = envelope(send(stack, "GET", f"{BASE}/segments", key=key), {200})
    listed = envelope(send(stack, "GET", USERS, key=key), {200})
    replies = {
        f"{method} {path}": send(stack, method, path, key=key) for method, path in PART_C_REST[3:]
    }
    grpc_outcomes = []
    for target in (stack.direct_target, stack.gateway_target):
        with grpc.insecure_channel(target) as channel:
            grpc_outcomes += _part_c_grpc(channel, key)

    assert sum(sizes["stages"].values()) == sum(sizes["tiers"].values()) == 0
    assert listed == {"users": [], "nextCursor": ""}
    for name, reply in replies.items():
        expected = "Suppression not found" if "suppressions" in name else "User not found"
        try:
            envelope(reply, {404}, {expected})
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from error
    for name, outcome in grpc_outcomes:
        if name == "GetSegmentSizes":
            assert sum(field for _, field in outcome.stages.ListFields()) == 0
        elif name == "ListSegmentMembers":
            assert list(outcome.users) == []
        else:
            expected = "Suppression not found" if name == "DeleteSuppression" else "User not found"
            assert outcome == (grpc.StatusCode.NOT_FOUND, expected), name
    # The owner's user is untouched, and was not suppressed either: it still takes writes.
    assert world.state() == before
    envelope(send(stack, "POST", USERS, key=world.owner, body=_json({"externalId": USER})), {200})


def test_public_and_revoked_keys_are_refused_every_partner_operation(
    world: World, new_key: KeyFactory
) -> None:
    stack = world.stack
    secret = new_key(Environment.TEST, world.partner_name, KeyKind.SECRET)
    revoked = journeys("keys", "revoke", secret, env=stack.env())
    assert revoked.returncode == 0, revoked.stderr
    before = world.state()

    for key, message in (
        (world.owner, "This endpoint requires a secret key"),
        (secret, "API key has been revoked"),
    ):
        for method, path in PART_C_REST:
            try:
                envelope(send(stack, method, path, key=key), {403}, {message})
            except AssertionError as error:
                raise AssertionError(f"{method} {path}: {error}") from error
        for target in (stack.direct_target, stack.gateway_target):
            with grpc.insecure_channel(target) as channel:
                for name, outcome in _part_c_grpc(channel, key):
                    assert outcome == (grpc.StatusCode.PERMISSION_DENIED, message), name

    assert world.state() == before


# --- webhooks (secret keys) -------------------------------------------------------------------


@pytest.fixture
def owner_webhook(world: World, new_key: KeyFactory) -> tuple[str, str]:
    """A's webhook (its id) and A's secret key. Made through the use case, allowing its
    address on 127.0.0.1: the shared server refuses to deliver there, so nothing is sent."""
    secret = new_key(Environment.TEST, world.partner_name, KeyKind.SECRET)

    async def create() -> str:
        async with Database(world.stack.database_url) as database:
            webhook = await Webhooks(database, allow_private=True).create_webhook(
                Operator(world.partner_name, Environment.TEST),
                NewWebhook("http://127.0.0.1:9/owner", ["offer.created"], "A's"),
            )
            return webhook.id

    return asyncio.run(create()), secret


NEW_WEBHOOK = {"url": "http://127.0.0.1:9/x", "events": ["offer.created"]}


def _webhooks_rest(webhook_id: str) -> list[tuple[str, str, bytes | None]]:
    return [
        ("GET", f"{BASE}/webhooks", None),
        ("POST", f"{BASE}/webhooks", _json(NEW_WEBHOOK)),
        ("DELETE", f"{BASE}/webhooks/{webhook_id}", None),
        ("GET", f"{BASE}/webhooks/{webhook_id}/deliveries", None),
    ]


def _webhooks_grpc(channel: grpc.Channel, key: str, webhook_id: str) -> list[tuple[str, Any]]:
    stub = webhooks_pb_grpc.WebhooksServiceStub(channel)
    metadata = (("x-api-key", key),)
    create = webhooks_pb.CreateWebhookRequest(**NEW_WEBHOOK)  # type: ignore[arg-type]
    calls: list[tuple[str, Callable[[], Any]]] = [
        (
            "ListWebhooks",
            lambda: stub.ListWebhooks(webhooks_pb.ListWebhooksRequest(), metadata=metadata),
        ),
        ("CreateWebhook", lambda: stub.CreateWebhook(create, metadata=metadata)),
        (
            "DeleteWebhook",
            lambda: stub.DeleteWebhook(
                webhooks_pb.DeleteWebhookRequest(webhook_id=webhook_id), metadata=metadata
            ),
        ),
        (
            "ListWebhookDeliveries",
            lambda: stub.ListWebhookDeliveries(
                webhooks_pb.ListWebhookDeliveriesRequest(webhook_id=webhook_id), metadata=metadata
            ),
        ),
    ]
    return _outcomes(calls)


def _owners_webhooks(world: World, secret: str) -> Any:
    return envelope(send(world.stack, "GET", f"{BASE}/webhooks", key=secret), {200})


@pytest.mark.parametrize("intruder", list(INTRUDERS))
def test_an_intruders_secret_key_never_sees_or_deletes_the_owners_webhooks(
    world: World, new_key: KeyFactory, owner_webhook: tuple[str, str], intruder: str
) -> None:
    webhook_id, owner_secret = owner_webhook
    environment, same_partner = INTRUDERS[intruder]
    key = new_key(environment, world.partner_name if same_partner else None, KeyKind.SECRET)
    stack = world.stack
    before = _owners_webhooks(world, owner_secret)
    assert [item["id"] for item in before["webhooks"]] == [webhook_id]

    listed = envelope(send(stack, "GET", f"{BASE}/webhooks", key=key), {200})
    assert listed == {"webhooks": []}
    for method, path, _ in _webhooks_rest(webhook_id)[2:]:
        envelope(send(stack, method, path, key=key), {404}, {"Webhook not found"})
    for target in (stack.direct_target, stack.gateway_target):
        with grpc.insecure_channel(target) as channel:
            for name, outcome in _webhooks_grpc(channel, key, webhook_id):
                if name == "ListWebhooks":
                    assert list(outcome.webhooks) == []
                elif name != "CreateWebhook":
                    assert outcome == (grpc.StatusCode.NOT_FOUND, "Webhook not found"), name
    assert _owners_webhooks(world, owner_secret) == before


def test_public_and_revoked_keys_are_refused_every_webhook_operation(
    world: World, new_key: KeyFactory, owner_webhook: tuple[str, str]
) -> None:
    webhook_id, owner_secret = owner_webhook
    stack = world.stack
    revoked = new_key(Environment.TEST, world.partner_name, KeyKind.SECRET)
    assert journeys("keys", "revoke", revoked, env=stack.env()).returncode == 0
    before = _owners_webhooks(world, owner_secret)
    for key, message in (
        (world.owner, "This endpoint requires a secret key"),
        (revoked, "API key has been revoked"),
    ):
        for method, path, body in _webhooks_rest(webhook_id):
            try:
                envelope(send(stack, method, path, key=key, body=body), {403}, {message})
            except AssertionError as error:
                raise AssertionError(f"{method} {path}: {error}") from error
        for target in (stack.direct_target, stack.gateway_target):
            with grpc.insecure_channel(target) as channel:
                for name, outcome in _webhooks_grpc(channel, key, webhook_id):
                    assert outcome == (grpc.StatusCode.PERMISSION_DENIED, message), name
    assert _owners_webhooks(world, owner_secret) == before
