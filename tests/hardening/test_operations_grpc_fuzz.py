"""Generated messages to the partner operations' gRPC methods (secret key), on the grpc.aio
port and through Envoy: documented codes and messages only, never INTERNAL or UNKNOWN, and
Envoy never changes the outcome."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from gamifyhost.userjourneys.v1 import privacy_service_pb2 as privacy_pb
from gamifyhost.userjourneys.v1 import privacy_service_pb2_grpc as privacy_pb_grpc
from gamifyhost.userjourneys.v1 import segments_service_pb2 as segments_pb
from gamifyhost.userjourneys.v1 import segments_service_pb2_grpc as segments_pb_grpc
from hypothesis import given
from hypothesis import strategies as st

from scripts.stack import Stack
from tests.hardening.fuzz import FUZZ, TEXT, VALID_ID
from tests.hardening.test_grpc_fuzz import Code, assert_documented

NOT_FOUND = {"User not found", "Suppression not found"}
IDS = st.one_of(VALID_ID, TEXT)


@dataclass
class Operations:
    """One tenant's secret key and the operations' stubs, on the grpc.aio port and through
    Envoy."""

    channels: tuple[grpc.Channel, grpc.Channel]
    key: str

    def __repr__(self) -> str:
        return f"Operations(key={self.key[:16]}...)"

    def both(self, service: str, method: str, request: Any) -> list[tuple[Code, str]]:
        outcomes = []
        for channel in self.channels:
            stub: Any = (
                segments_pb_grpc.SegmentsServiceStub(channel)
                if service == "segments"
                else privacy_pb_grpc.PrivacyServiceStub(channel)
            )
            call: Callable[..., Any] = getattr(stub, method)
            try:
                answer = call(request, metadata=(("x-api-key", self.key),), timeout=30)
                if method == "ExportUser":
                    list(answer)
                outcomes.append((Code.OK, ""))
            except grpc.RpcError as error:
                outcomes.append((error.code(), error.details() or ""))
        for code, details in outcomes:
            if code == Code.NOT_FOUND:
                assert details in NOT_FOUND, details
        return outcomes


@pytest.fixture
def operations(stack: Stack, secret_key: str) -> Iterator[Operations]:
    with (
        grpc.insecure_channel(stack.direct_target) as direct,
        grpc.insecure_channel(stack.gateway_target) as gateway,
    ):
        yield Operations((direct, gateway), secret_key)


@st.composite
def member_requests(draw: st.DrawFn) -> segments_pb.ListSegmentMembersRequest:
    request = segments_pb.ListSegmentMembersRequest(
        lifecycle_stage=draw(st.one_of(TEXT, st.sampled_from(["at_risk", "new", ""]))),
        engagement_tier=draw(st.one_of(TEXT, st.sampled_from(["whale", "casual", ""]))),
        cursor=draw(st.one_of(TEXT, st.just(""))),
    )
    for name in ("min_churn_risk", "limit"):
        if draw(st.booleans()):
            setattr(request, name, draw(st.integers(-(2**31), 2**31 - 1)))
    return request


@FUZZ
@given(request=member_requests())
def test_list_segment_members(
    operations: Operations, request: segments_pb.ListSegmentMembersRequest
) -> None:
    assert_documented(operations.both("segments", "ListSegmentMembers", request))


def test_get_segment_sizes(operations: Operations) -> None:
    outcomes = operations.both("segments", "GetSegmentSizes", segments_pb.GetSegmentSizesRequest())

    assert outcomes == [(Code.OK, "")] * 2


@FUZZ
@given(external_id=IDS, suppress=st.booleans())
def test_delete_user(operations: Operations, external_id: str, suppress: bool) -> None:
    request = privacy_pb.DeleteUserRequest(external_id=external_id, suppress=suppress)

    outcomes = operations.both("privacy", "DeleteUser", request)

    assert_documented(outcomes)
    assert {code for code, _ in outcomes} <= {Code.NOT_FOUND, Code.INVALID_ARGUMENT}


@FUZZ
@given(external_id=IDS)
def test_delete_suppression(operations: Operations, external_id: str) -> None:
    request = privacy_pb.DeleteSuppressionRequest(external_id=external_id)

    outcomes = operations.both("privacy", "DeleteSuppression", request)

    assert_documented(outcomes)
    assert {code for code, _ in outcomes} <= {Code.NOT_FOUND, Code.INVALID_ARGUMENT}


@FUZZ
@given(external_id=IDS)
def test_export_user(operations: Operations, external_id: str) -> None:
    request = privacy_pb.ExportUserRequest(external_id=external_id)

    outcomes = operations.both("privacy", "ExportUser", request)

    assert_documented(outcomes)
    assert {code for code, _ in outcomes} <= {Code.NOT_FOUND, Code.INVALID_ARGUMENT}
