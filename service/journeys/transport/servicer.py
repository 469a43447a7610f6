"""The UserJourneysService servicer: the documented API."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from gamifyhost.userjourneys.v1 import event_pb2, user_pb2
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2_grpc as pb_grpc

from journeys import observability
from journeys.domain import EventInput, JsonObject
from journeys.errors import InvalidArgument
from journeys.transport import convert
from journeys.transport.rpc import unary
from journeys.usecases import Journeys
from journeys.usecases.auth import Caller

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["UserJourneysService"].full_name


class UserJourneysServicer(pb_grpc.UserJourneysServiceServicer):
    def __init__(self, journeys: Journeys) -> None:
        self._journeys = journeys

    @unary("Failed to track user")
    async def TrackUser(
        self,
        request: pb.TrackUserRequest,
        context: grpc.aio.ServicerContext[pb.TrackUserRequest, user_pb2.User],
        caller: Caller,
    ) -> user_pb2.User:
        view = await self._journeys.track_user(caller, convert.user_changes(request))
        return convert.user(view)

    @unary()
    async def GetUser(
        self,
        request: pb.GetUserRequest,
        context: grpc.aio.ServicerContext[pb.GetUserRequest, pb.GetUserResponse],
        caller: Caller,
    ) -> pb.GetUserResponse:
        view = await self._journeys.get_user(caller, request.external_id)
        return convert.user_detail(view)

    @unary()
    async def GetOffers(
        self,
        request: pb.GetOffersRequest,
        context: grpc.aio.ServicerContext[pb.GetOffersRequest, pb.GetOffersResponse],
        caller: Caller,
    ) -> pb.GetOffersResponse:
        offers = await self._journeys.get_offers(caller, request.external_id)
        return pb.GetOffersResponse(offers=[convert.offer(offer) for offer in offers])

    @unary()
    async def TrackEvent(
        self,
        request: pb.TrackEventRequest,
        context: grpc.aio.ServicerContext[pb.TrackEventRequest, pb.TrackEventResponse],
        caller: Caller,
    ) -> pb.TrackEventResponse:
        try:
            stored = await self._journeys.track_event(caller, convert.event_input(request.event))
        except InvalidArgument as error:
            # The event's fields sit under `event` in this call's request message.
            raise error.within("event") from None
        observability.events_tracked(accepted=int(stored.is_new), duplicates=int(not stored.is_new))
        return pb.TrackEventResponse(event=convert.event(stored.event))

    @unary()
    async def TrackEvents(
        self,
        request: pb.TrackEventsRequest,
        context: grpc.aio.ServicerContext[pb.TrackEventsRequest, pb.TrackEventsResponse],
        caller: Caller,
    ) -> pb.TrackEventsResponse:
        return await self._track_events(
            caller, [convert.event_input(item) for item in request.events]
        )

    @unary()
    async def TrackEventsJson(
        self,
        request: pb.TrackEventsJsonRequest,
        context: grpc.aio.ServicerContext[pb.TrackEventsJsonRequest, pb.TrackEventsResponse],
        caller: Caller,
    ) -> pb.TrackEventsResponse:
        return await self._track_events(caller, convert.batch_items(request.body))

    async def _track_events(
        self,
        caller: Caller,
        items: Sequence[EventInput | JsonObject],
    ) -> pb.TrackEventsResponse:
        outcome = await self._journeys.track_events(caller, items)
        observability.events_tracked(
            accepted=outcome.count("accepted"),
            duplicates=outcome.count("duplicate"),
            rejected=outcome.count("rejected"),
        )
        return pb.TrackEventsResponse(
            accepted=outcome.count("accepted"),
            duplicates=outcome.count("duplicate"),
            rejected=outcome.count("rejected"),
            results=[
                event_pb2.EventResult(
                    index=result.index,
                    status=result.status,
                    event_id=result.event_id,
                    error=result.error,
                )
                for result in outcome.results
            ],
        )

    @unary()
    async def GetTimeline(
        self,
        request: pb.GetTimelineRequest,
        context: grpc.aio.ServicerContext[pb.GetTimelineRequest, pb.GetTimelineResponse],
        caller: Caller,
    ) -> pb.GetTimelineResponse:
        timeline = await self._journeys.get_timeline(
            caller,
            request.external_id,
            request.page if request.HasField("page") else None,
            request.limit if request.HasField("limit") else None,
        )
        return pb.GetTimelineResponse(
            events=[convert.event(event) for event in timeline.events],
            page=timeline.page,
            limit=timeline.limit,
            total=timeline.total,
        )

    @unary()
    async def ClaimOffer(
        self,
        request: pb.ClaimOfferRequest,
        context: grpc.aio.ServicerContext[pb.ClaimOfferRequest, pb.ClaimOfferResponse],
        caller: Caller,
    ) -> pb.ClaimOfferResponse:
        offer = await self._journeys.claim_offer(caller, request.external_id, request.offer_id)
        return pb.ClaimOfferResponse(offer=convert.offer(offer))
