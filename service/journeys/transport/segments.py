"""The SegmentsService servicer: segment sizes and members for a secret key."""

from __future__ import annotations

import grpc
from gamifyhost.userjourneys.v1 import segments_service_pb2 as pb
from gamifyhost.userjourneys.v1 import segments_service_pb2_grpc as pb_grpc

from journeys.domain import SegmentMember
from journeys.transport import convert
from journeys.transport.rpc import unary
from journeys.usecases.auth import Caller
from journeys.usecases.segments import Segments

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SegmentsService"].full_name


class SegmentsServicer(pb_grpc.SegmentsServiceServicer):
    def __init__(self, segments: Segments) -> None:
        self._segments = segments

    @unary()
    async def GetSegmentSizes(
        self,
        request: pb.GetSegmentSizesRequest,
        context: grpc.aio.ServicerContext[pb.GetSegmentSizesRequest, pb.GetSegmentSizesResponse],
        caller: Caller,
    ) -> pb.GetSegmentSizesResponse:
        sizes = await self._segments.sizes(caller)
        return pb.GetSegmentSizesResponse(
            computed_at=convert.timestamp_or_null(sizes.computed_at),
            stages=pb.StageCounts(**sizes.stages),
            tiers=pb.TierCounts(**sizes.tiers),
        )

    @unary()
    async def ListSegmentMembers(
        self,
        request: pb.ListSegmentMembersRequest,
        context: grpc.aio.ServicerContext[
            pb.ListSegmentMembersRequest, pb.ListSegmentMembersResponse
        ],
        caller: Caller,
    ) -> pb.ListSegmentMembersResponse:
        page = await self._segments.members(
            caller,
            stage=request.lifecycle_stage,
            tier=request.engagement_tier,
            min_churn_risk=(request.min_churn_risk if request.HasField("min_churn_risk") else None),
            limit=request.limit if request.HasField("limit") else None,
            cursor=request.cursor,
        )
        return pb.ListSegmentMembersResponse(
            users=[_member(member) for member in page.members], next_cursor=page.next_cursor
        )


def _member(member: SegmentMember) -> pb.SegmentMember:
    return pb.SegmentMember(
        external_id=member.external_id,
        lifecycle_stage=member.lifecycle_stage,
        engagement_tier=member.engagement_tier,
        engagement_score=member.engagement_score,
        churn_risk_score=member.churn_risk_score,
        last_seen_at=convert.timestamp(member.last_seen_at),
        computed_at=convert.timestamp(member.computed_at),
    )
