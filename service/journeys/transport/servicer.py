"""The UserJourneysService servicer."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
from gamifyhost.userjourneys.v1 import event_pb2, user_pb2
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2_grpc as pb_grpc
from google.protobuf import message_factory
from google.protobuf.message import DecodeError

from journeys import observability
from journeys.domain import EventInput, JsonObject
from journeys.errors import InvalidArgument, JourneysError
from journeys.transport import convert, metadata, status
from journeys.usecases import Journeys
from journeys.usecases.auth import Caller

log = logging.getLogger(__name__)

GENERIC_FAILURE = "Internal server error"

Request = TypeVar("Request")
Response = TypeVar("Response")
Servicer = TypeVar("Servicer", bound="UserJourneysServicer")
Handler = Callable[
    [Servicer, Request, grpc.aio.ServicerContext[Request, Response], Caller], Awaitable[Response]
]
Method = Callable[
    [Servicer, Request, grpc.aio.ServicerContext[Request, Response]], Awaitable[Response]
]


#: Stands in for a request whose bytes are no valid protobuf message, so the handler's error
#: mapping can answer INVALID_ARGUMENT (grpc.aio itself would answer UNKNOWN with the
#: parser's text).
UNDECODABLE: Any = object()


def add_to_server(servicer: UserJourneysServicer, server: grpc.aio.Server) -> None:
    """Registers the service like the generated `add_…_to_server`, with request decoding
    that never fails inside grpc.aio."""
    service = pb.DESCRIPTOR.services_by_name["UserJourneysService"]
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=_tolerant_decoder(
                message_factory.GetMessageClass(method.input_type)
            ),
            response_serializer=message_factory.GetMessageClass(
                method.output_type
            ).SerializeToString,
        )
        for method in service.methods
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )


def _tolerant_decoder(message_class: Any) -> Callable[[bytes], Any]:
    def decode(raw: bytes) -> Any:
        try:
            return message_class.FromString(raw)
        except DecodeError:
            return UNDECODABLE

    return decode


def _rpc(
    failure_message: str = GENERIC_FAILURE,
) -> Callable[[Handler[Servicer, Request, Response]], Method[Servicer, Request, Response]]:
    """Gives the handler the call's `Caller`, turns domain errors into rich statuses and
    anything unexpected into a logged, generic INTERNAL (no exception text ever reaches a
    client), and hands the resolved partner to the call's log line."""

    def decorate(
        handler: Handler[Servicer, Request, Response],
    ) -> Method[Servicer, Request, Response]:
        @functools.wraps(handler)
        async def wrapper(
            self: Servicer, request: Request, context: grpc.aio.ServicerContext[Request, Response]
        ) -> Response:
            extra: tuple[tuple[str, str], ...] = ()
            caller = Caller(metadata.of(context, metadata.API_KEY))
            try:
                if request is UNDECODABLE:
                    raise InvalidArgument
                return await handler(self, request, context, caller)
            except JourneysError as error:
                rich, extra = status.for_error(error), status.trailers(error)
            except Exception:
                log.exception(
                    "unexpected failure in %s (request id %s)",
                    handler.__name__,
                    _request_id(context),
                )
                rich = status.internal(failure_message)
            finally:
                _note_partner(caller)
            return await status.abort(context, rich, extra)

        return wrapper

    return decorate


def _note_partner(caller: Caller) -> None:
    info = observability.current_request()
    if info is not None:
        info.partner_id = caller.partner_id


def _request_id(context: grpc.aio.ServicerContext[Request, Response]) -> str:
    # The interceptor's id, so this line and the call's log line carry the same one.
    return (
        observability.current_request_id()
        or metadata.of(context, metadata.REQUEST_ID)
        or f"local-{uuid.uuid4()}"
    )


class UserJourneysServicer(pb_grpc.UserJourneysServiceServicer):
    def __init__(self, journeys: Journeys) -> None:
        self._journeys = journeys

    @_rpc("Failed to track user")
    async def TrackUser(
        self,
        request: pb.TrackUserRequest,
        context: grpc.aio.ServicerContext[pb.TrackUserRequest, user_pb2.User],
        caller: Caller,
    ) -> user_pb2.User:
        view = await self._journeys.track_user(caller, convert.user_changes(request))
        return convert.user(view)

    @_rpc()
    async def GetUser(
        self,
        request: pb.GetUserRequest,
        context: grpc.aio.ServicerContext[pb.GetUserRequest, pb.GetUserResponse],
        caller: Caller,
    ) -> pb.GetUserResponse:
        view = await self._journeys.get_user(caller, request.external_id)
        return convert.user_detail(view)

    @_rpc()
    async def GetOffers(
        self,
        request: pb.GetOffersRequest,
        context: grpc.aio.ServicerContext[pb.GetOffersRequest, pb.GetOffersResponse],
        caller: Caller,
    ) -> pb.GetOffersResponse:
        offers = await self._journeys.get_offers(caller, request.external_id)
        return pb.GetOffersResponse(offers=[convert.offer(offer) for offer in offers])

    @_rpc()
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

    @_rpc()
    async def TrackEvents(
        self,
        request: pb.TrackEventsRequest,
        context: grpc.aio.ServicerContext[pb.TrackEventsRequest, pb.TrackEventsResponse],
        caller: Caller,
    ) -> pb.TrackEventsResponse:
        return await self._track_events(
            caller, [convert.event_input(item) for item in request.events]
        )

    @_rpc()
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

    @_rpc()
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

    @_rpc()
    async def ClaimOffer(
        self,
        request: pb.ClaimOfferRequest,
        context: grpc.aio.ServicerContext[pb.ClaimOfferRequest, pb.ClaimOfferResponse],
        caller: Caller,
    ) -> pb.ClaimOfferResponse:
        offer = await self._journeys.claim_offer(caller, request.external_id, request.offer_id)
        return pb.ClaimOfferResponse(offer=convert.offer(offer))
