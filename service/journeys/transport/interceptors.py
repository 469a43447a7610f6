"""What every call goes through before its servicer method: the request context (id, metrics,
the access log line) and the per-key rate limit."""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from journeys import observability
from journeys.errors import RateLimited
from journeys.observability import ACCESS_LOGGER, LATENCY, QUIET_SERVICES, REQUESTS
from journeys.transport import metadata, status
from journeys.transport.ratelimit import RateLimiter, retry_after_seconds

if TYPE_CHECKING:  # grpc's handler type is generic only to the type checker
    #: What an interceptor calls to reach the next one (None for an unknown method).
    Continuation = Callable[
        [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
    ]


def _unary(handler: grpc.RpcMethodHandler[Any, Any] | None) -> bool:
    return not (
        handler is None
        or handler.request_streaming
        or handler.response_streaming
        or handler.unary_unary is None
    )


def _server_streaming(handler: grpc.RpcMethodHandler[Any, Any] | None) -> bool:
    return handler is not None and handler.unary_stream is not None


def _with_behavior(
    handler: grpc.RpcMethodHandler[Any, Any], behavior: Callable[..., Any]
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` with another behaviour of the same kind (unary or server-streaming)."""
    make = (
        grpc.unary_stream_rpc_method_handler
        if _server_streaming(handler)
        else grpc.unary_unary_rpc_method_handler
    )
    return make(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class RequestObserver(grpc.aio.ServerInterceptor):
    """Counts, times and logs every call of the API (a streamed one once it ends), and gives
    it a request id and a place for its partner id. Health and reflection streams (Watch runs
    for as long as a client watches) pass through unobserved."""

    def __init__(self) -> None:
        self._log = logging.getLogger(ACCESS_LOGGER)

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        full_method: str = handler_call_details.method
        service, _, method = full_method.lstrip("/").rpartition("/")
        streamed = _server_streaming(handler) and service not in QUIET_SERVICES
        if handler is None or not (_unary(handler) or streamed):
            return handler
        sent = metadata.value(handler_call_details.invocation_metadata, metadata.REQUEST_ID)
        request_id = sent or f"local-{uuid.uuid4()}"
        level = logging.DEBUG if service in QUIET_SERVICES else logging.INFO

        @contextlib.contextmanager
        def observing(context: grpc.aio.ServicerContext[Any, Any]) -> Iterator[None]:
            with observability.handling(request_id) as info:
                started = time.perf_counter()
                failed = False
                try:
                    yield
                except BaseException:
                    failed = True
                    raise
                finally:
                    seconds = time.perf_counter() - started
                    code = _code(context, failed)
                    REQUESTS.labels(service, method, code).inc()
                    LATENCY.labels(service, method, code).observe(seconds)
                    if self._log.isEnabledFor(level):
                        self._log.log(
                            level,
                            "%s %s %.1f ms",
                            method,
                            code,
                            seconds * 1000,
                            extra={
                                "fields": {
                                    "request_id": request_id,
                                    "service": service,
                                    "method": method,
                                    "code": code,
                                    "latency_ms": round(seconds * 1000, 2),
                                    "partner_id": info.partner_id,
                                }
                            },
                        )

        if streamed:
            # grpc's stubs type the handler's behaviours as synchronous ones.
            stream: Callable[..., AsyncIterator[Any]] = handler.unary_stream  # type: ignore[assignment]

            async def observed_stream(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                with observing(context):
                    async for message in stream(request, context):
                        yield message

            return _with_behavior(handler, observed_stream)

        behavior: Callable[..., Any] | None = handler.unary_unary
        if behavior is None:
            return handler

        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            with observing(context):
                result = behavior(request, context)
                if inspect.isawaitable(result):
                    result = await result
                return result

        return _with_behavior(handler, observed)


class RateLimit(grpc.aio.ServerInterceptor):
    """Spends a token of the presented key's bucket for every call of `services` (any
    presented value, valid or not: guessing keys costs tokens too). Over the limit, the call
    is answered RESOURCE_EXHAUSTED with `retry-after` without running."""

    def __init__(self, limiter: RateLimiter, services: frozenset[str]) -> None:
        self._limiter = limiter
        self._services = services

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        service = handler_call_details.method.lstrip("/").rpartition("/")[0]
        if handler is None or service not in self._services:
            return handler
        if not (_unary(handler) or _server_streaming(handler)):
            return handler
        key = metadata.value(handler_call_details.invocation_metadata, metadata.API_KEY)
        wait = self._limiter.acquire(key or "")
        if wait <= 0:
            return handler
        error = RateLimited(retry_after_seconds(wait))

        async def refused(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await status.abort(context, status.for_error(error), status.trailers(error))

        async def refused_stream(
            _request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            await status.abort(context, status.for_error(error), status.trailers(error))
            yield  # pragma: no cover - abort raises; this makes the function a generator

        return _with_behavior(handler, refused_stream if _server_streaming(handler) else refused)


def _code(context: grpc.aio.ServicerContext[Any, Any], failed: bool) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):  # grpc.aio may hand back the numeric code
        for item in grpc.StatusCode:
            if item.value[0] == code:
                return item.name
    # No code set: a normal return is OK; an exception that set none is UNKNOWN to the client.
    return "UNKNOWN" if failed else "OK"
