"""The PrivacyService servicer: erasure, suppressions and export for a secret key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from gamifyhost.userjourneys.v1 import privacy_service_pb2 as pb
from gamifyhost.userjourneys.v1 import privacy_service_pb2_grpc as pb_grpc
from google.api import httpbody_pb2

from journeys.transport import convert, export_json
from journeys.transport.rpc import server_stream, unary
from journeys.usecases.auth import Caller
from journeys.usecases.privacy import Privacy

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PrivacyService"].full_name


class PrivacyServicer(pb_grpc.PrivacyServiceServicer):
    def __init__(self, privacy: Privacy) -> None:
        self._privacy = privacy

    @unary()
    async def DeleteUser(
        self,
        request: pb.DeleteUserRequest,
        context: grpc.aio.ServicerContext[pb.DeleteUserRequest, pb.DeleteUserResponse],
        caller: Caller,
    ) -> pb.DeleteUserResponse:
        erasure = await self._privacy.delete_user(
            caller, request.external_id, suppress=request.suppress
        )
        return pb.DeleteUserResponse(
            external_id=erasure.external_id,
            deleted_at=convert.timestamp(erasure.deleted_at),
            suppressed=erasure.suppressed,
        )

    @unary()
    async def DeleteSuppression(
        self,
        request: pb.DeleteSuppressionRequest,
        context: grpc.aio.ServicerContext[
            pb.DeleteSuppressionRequest, pb.DeleteSuppressionResponse
        ],
        caller: Caller,
    ) -> pb.DeleteSuppressionResponse:
        await self._privacy.lift_suppression(caller, request.external_id)
        return pb.DeleteSuppressionResponse(external_id=request.external_id, suppressed=False)

    @server_stream
    async def ExportUser(
        self,
        request: pb.ExportUserRequest,
        context: grpc.aio.ServicerContext[pb.ExportUserRequest, httpbody_pb2.HttpBody],
        caller: Caller,
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        async with self._privacy.export_user(caller, request.external_id) as export:
            async for chunk in export_json.render(export, envelope=True):
                yield httpbody_pb2.HttpBody(content_type="application/json", data=chunk)
