"""The ReportsService servicer: the offer report for a secret key."""

from __future__ import annotations

import grpc
from gamifyhost.userjourneys.v1 import reports_service_pb2 as pb
from gamifyhost.userjourneys.v1 import reports_service_pb2_grpc as pb_grpc
from google.protobuf import struct_pb2

from journeys.transport import convert
from journeys.transport.rpc import unary
from journeys.usecases.auth import Caller
from journeys.usecases.reports import Reports, TypeReport, Uplift

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ReportsService"].full_name
#: Rates and means are rounded to this many decimals.
DECIMALS = 4


class ReportsServicer(pb_grpc.ReportsServiceServicer):
    def __init__(self, reports: Reports) -> None:
        self._reports = reports

    @unary()
    async def GetOfferReport(
        self,
        request: pb.GetOfferReportRequest,
        context: grpc.aio.ServicerContext[pb.GetOfferReportRequest, pb.GetOfferReportResponse],
        caller: Caller,
    ) -> pb.GetOfferReportResponse:
        report = await self._reports.offers(caller, request.since)
        return pb.GetOfferReportResponse(
            since=convert.timestamp(report.since),
            until=convert.timestamp(report.until),
            holdout_share=report.holdout_share,
            types=[_type(item) for item in report.types],
            uplift=_uplift(report.uplift),
        )


def _type(item: TypeReport) -> pb.OfferTypeReport:
    rate = item.claim_rate
    return pb.OfferTypeReport(
        offer_type=item.offer_type,
        created=item.fates.created,
        claimed=item.fates.claimed,
        expired=item.fates.expired,
        active=item.fates.active,
        claim_rate=_number(None if rate is None else rate.value),
        claim_rate_low=_number(None if rate is None else rate.low),
        claim_rate_high=_number(None if rate is None else rate.high),
    )


def _uplift(uplift: Uplift) -> pb.OfferUplift:
    difference = uplift.difference
    return pb.OfferUplift(
        metric=uplift.metric,
        treatment=_number(uplift.treatment),
        holdout=_number(uplift.holdout),
        difference=_number(None if difference is None else difference.value),
        low=_number(None if difference is None else difference.low),
        high=_number(None if difference is None else difference.high),
        treatment_users=uplift.treatment_users,
        holdout_users=uplift.holdout_users,
    )


def _number(value: float | None) -> struct_pb2.Value:
    """A JSON number (rounded), or null."""
    if value is None:
        return struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    return struct_pb2.Value(number_value=round(value, DECIMALS))
