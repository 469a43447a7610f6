"""The same operations over native gRPC: through Envoy on the HTTP port and direct."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from gamifyhost.userjourneys.v1 import event_pb2
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2_grpc as pb_grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from scripts.stack import Stack

SERVICE = "gamifyhost.userjourneys.v1.UserJourneysService"


@pytest.fixture(params=["direct", "gateway"])
def channel(request: pytest.FixtureRequest, stack: Stack) -> Iterator[grpc.Channel]:
    target = stack.direct_target if request.param == "direct" else stack.gateway_target
    with grpc.insecure_channel(target) as channel:
        yield channel


@pytest.fixture
def stub(channel: grpc.Channel) -> pb_grpc.UserJourneysServiceStub:
    return pb_grpc.UserJourneysServiceStub(channel)


def _auth(key: str) -> tuple[tuple[str, str]]:
    return (("x-api-key", key),)


def test_track_then_get_user(stub: pb_grpc.UserJourneysServiceStub, key: str) -> None:
    request = pb.TrackUserRequest(external_id="grpc_user", display_name="G", country="us")
    request.tags.update({"plan": "gold"})

    created = stub.TrackUser(request, metadata=_auth(key))
    fetched = stub.GetUser(pb.GetUserRequest(external_id="grpc_user"), metadata=_auth(key))

    assert created.external_id == fetched.external_id == "grpc_user"
    assert created.id == fetched.id
    assert fetched.country == "US"
    assert dict(fetched.tags) == {"plan": "gold"}
    assert fetched.environment == "TEST"
    assert fetched.lifecycle_stage == "new"
    assert fetched.first_seen_at.seconds > 0


def test_optional_fields_left_unset_keep_stored_values(
    stub: pb_grpc.UserJourneysServiceStub, key: str
) -> None:
    stub.TrackUser(
        pb.TrackUserRequest(external_id="keep", email="k@example.com"), metadata=_auth(key)
    )

    updated = stub.TrackUser(
        pb.TrackUserRequest(external_id="keep", phone="12"), metadata=_auth(key)
    )

    assert (updated.email, updated.phone) == ("k@example.com", "12")


def test_get_offers_of_a_new_user_is_empty(stub: pb_grpc.UserJourneysServiceStub, key: str) -> None:
    stub.TrackUser(pb.TrackUserRequest(external_id="o"), metadata=_auth(key))

    response = stub.GetOffers(pb.GetOffersRequest(external_id="o"), metadata=_auth(key))

    assert list(response.offers) == []


def test_field_errors_carry_bad_request_details(
    stub: pb_grpc.UserJourneysServiceStub, key: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.TrackUser(pb.TrackUserRequest(external_id="u", phone="1" * 21), metadata=_auth(key))

    call = raised.value
    assert call.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert call.details() == "Invalid request body: phone must be at most 20 characters"
    status = rpc_status.from_call(call)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    error_info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(bad_request)
    assert status.details[1].Unpack(error_info)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("phone", "phone must be at most 20 characters")
    ]
    assert (error_info.reason, error_info.domain) == ("INVALID_ARGUMENT", "journeys")


def test_unknown_user_is_not_found(stub: pb_grpc.UserJourneysServiceStub, key: str) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetUser(pb.GetUserRequest(external_id="nobody"), metadata=_auth(key))

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "User not found"


def test_health_reports_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)

    for service in ("", SERVICE):
        request = health_pb2.HealthCheckRequest(service=service)
        response = health.Check(request)  # type: ignore[attr-defined]
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_service(channel: grpc.Channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)

    responses = list(
        reflection.ServerReflectionInfo(  # type: ignore[operator]
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
    )

    names = {service.name for service in responses[0].list_services_response.service}
    assert SERVICE in names
    assert "grpc.health.v1.Health" in names


def test_event_field_errors_name_the_path_in_the_request(
    stub: pb_grpc.UserJourneysServiceStub, key: str
) -> None:
    request = pb.TrackEventRequest(
        event=event_pb2.EventInput(external_id="e", category="NOPE", event_type="spin")
    )
    with pytest.raises(grpc.RpcError) as raised:
        stub.TrackEvent(request, metadata=_auth(key))

    call = raised.value
    assert call.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert call.details() == (
        "Invalid request body: category must be one of GAME_PLAY, CAMPAIGN, POINTS, CUSTOM"
    )
    status = rpc_status.from_call(call)  # type: ignore[arg-type]
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == ["event.category"]
