"""What every servicer method shares: its `Caller`, errors as rich statuses, request
decoding that never fails inside grpc.aio, and registration by the service's descriptor."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from journeys import observability
from journeys.errors import InvalidArgument, JourneysError
from journeys.transport import metadata, status
from journeys.transport.calls import Calls
from journeys.usecases.auth import Caller

log = logging.getLogger(__name__)

GENERIC_FAILURE = "Internal server error"

Request = TypeVar("Request")
Response = TypeVar("Response")
Servicer = TypeVar("Servicer")
Context = grpc.aio.ServicerContext
Handler = Callable[[Servicer, Request, Context[Request, Response], Caller], Awaitable[Response]]
Method = Callable[[Servicer, Request, Context[Request, Response]], Awaitable[Response]]
StreamHandler = Callable[
    [Servicer, Request, Context[Request, Response], Caller], AsyncIterator[Response]
]
StreamMethod = Callable[[Servicer, Request, Context[Request, Response]], AsyncIterator[Response]]

#: Stands in for a request whose bytes are no valid protobuf message, so the handler's error
#: mapping can answer INVALID_ARGUMENT (grpc.aio itself would answer UNKNOWN with the
#: parser's text).
UNDECODABLE: Any = object()


def add_to_server(
    servicer: object, service_name: str, server: grpc.aio.Server, calls: Calls
) -> None:
    """Registers `servicer`'s methods for the service `service_name` (a full name) like the
    generated `add_…_to_server`, with the tolerant request decoding, each behind `calls`."""
    service = descriptor_pool.Default().FindServiceByName(service_name)
    handlers = {}
    for method in service.methods:
        behavior = getattr(servicer, method.name)
        if method.server_streaming:
            make = grpc.unary_stream_rpc_method_handler
            behavior = calls.stream(service.full_name, method.name, behavior)
        else:
            make = grpc.unary_unary_rpc_method_handler
            behavior = calls.unary(service.full_name, method.name, behavior)
        handlers[method.name] = make(
            behavior,
            request_deserializer=_tolerant_decoder(
                message_factory.GetMessageClass(method.input_type)
            ),
            response_serializer=message_factory.GetMessageClass(
                method.output_type
            ).SerializeToString,
        )
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


def unary(
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
            self: Servicer, request: Request, context: Context[Request, Response]
        ) -> Response:
            caller = Caller(metadata.of(context, metadata.API_KEY))
            try:
                if request is UNDECODABLE:
                    raise InvalidArgument
                return await handler(self, request, context, caller)
            except Exception as error:  # every failure becomes a status
                rich, extra = _status_for(error, handler.__name__, context, failure_message)
            finally:
                _note_partner(caller)
            return await status.abort(context, rich, extra)

        return wrapper

    return decorate


def server_stream(
    handler: StreamHandler[Servicer, Request, Response],
) -> StreamMethod[Servicer, Request, Response]:
    """`unary` for a server-streaming handler. A failure before the first message is a status
    like any other; one after it ends the stream with that status (an HTTP client has already
    been sent 200, so its document ends early and does not parse)."""

    @functools.wraps(handler)
    async def wrapper(
        self: Servicer, request: Request, context: Context[Request, Response]
    ) -> AsyncIterator[Response]:
        caller = Caller(metadata.of(context, metadata.API_KEY))
        try:
            if request is UNDECODABLE:
                raise InvalidArgument
            async for message in handler(self, request, context, caller):
                yield message
            return
        except Exception as error:  # every failure becomes a status
            rich, extra = _status_for(error, handler.__name__, context, GENERIC_FAILURE)
        finally:
            _note_partner(caller)
        await status.abort(context, rich, extra)

    return wrapper


def _status_for(
    error: Exception, name: str, context: Context[Any, Any], failure_message: str
) -> tuple[Any, tuple[tuple[str, str], ...]]:
    if isinstance(error, JourneysError):
        return status.for_error(error), status.trailers(error)
    log.exception(
        "unexpected failure in %s (request id %s)", name, _request_id(context), exc_info=error
    )
    return status.internal(failure_message), ()


def _note_partner(caller: Caller) -> None:
    info = observability.current_request()
    if info is not None:
        info.partner_id = caller.partner_id


def _request_id(context: Context[Any, Any]) -> str:
    # The call wrapper's id, so this line and the call's log line carry the same one.
    return (
        observability.current_request_id()
        or metadata.of(context, metadata.REQUEST_ID)
        or f"local-{uuid.uuid4()}"
    )
