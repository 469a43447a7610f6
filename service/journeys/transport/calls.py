"""What every call of the API goes through before its servicer method: the request context
(id, metrics, the access log line) and the per-key rate limit.

Applied once, when a method is registered (`transport/rpc.py`), not by grpc.aio
interceptors: an interceptor runs per call and builds a new method handler each time, which
cost a third of a call once the call's own work was lean (measured). Health checking and
reflection are not API calls and pass unobserved.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from journeys import observability
from journeys.errors import RateLimited
from journeys.observability import ACCESS_LOGGER, LATENCY, REQUESTS
from journeys.transport import metadata, status
from journeys.transport.ratelimit import RateLimiter, retry_after_seconds

Context = grpc.aio.ServicerContext[Any, Any]
UnaryBehavior = Callable[[Any, Context], Coroutine[Any, Any, Any]]
StreamBehavior = Callable[[Any, Context], AsyncIterator[Any]]


class Calls:
    """Counts, times and logs every call (a streamed one once it ends), gives it a request id
    and a place for its partner id, and spends a token of the presented key's bucket for it
    (any presented value, valid or not: guessing keys costs tokens too). A call over the
    limit is answered RESOURCE_EXHAUSTED with `retry-after` without running, and is still
    counted and logged."""

    def __init__(self, limiter: RateLimiter | None = None) -> None:
        self._limiter = limiter
        self._log = logging.getLogger(ACCESS_LOGGER)
        self._metrics: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    def unary(self, service: str, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        async def observed(request: Any, context: Context) -> Any:
            started = time.perf_counter()
            info = observability.RequestInfo(_request_id(context))
            token = observability.enter(info)
            failed = False
            try:
                await self._spend(context)
                return await behavior(request, context)
            except BaseException:
                failed = True
                raise
            finally:
                observability.leave(token)
                self._observed(service, method, context, failed, started, info)

        return observed

    def stream(self, service: str, method: str, behavior: StreamBehavior) -> StreamBehavior:
        async def observed(request: Any, context: Context) -> AsyncIterator[Any]:
            started = time.perf_counter()
            info = observability.RequestInfo(_request_id(context))
            token = observability.enter(info)
            failed = False
            try:
                await self._spend(context)
                async for message in behavior(request, context):
                    yield message
            except BaseException:
                failed = True
                raise
            finally:
                observability.leave(token)
                self._observed(service, method, context, failed, started, info)

        return observed

    async def _spend(self, context: Context) -> None:
        if self._limiter is None:
            return
        wait = self._limiter.acquire(metadata.of(context, metadata.API_KEY) or "")
        if wait > 0:
            error = RateLimited(retry_after_seconds(wait))
            await status.abort(context, status.for_error(error), status.trailers(error))

    def _observed(
        self,
        service: str,
        method: str,
        context: Context,
        failed: bool,
        started: float,
        info: observability.RequestInfo,
    ) -> None:
        seconds = time.perf_counter() - started
        code = _code(context, failed)
        labels = (service, method, code)
        metrics = self._metrics.get(labels)
        if metrics is None:
            metrics = self._metrics[labels] = (REQUESTS.labels(*labels), LATENCY.labels(*labels))
        metrics[0].inc()
        metrics[1].observe(seconds)
        if self._log.isEnabledFor(logging.INFO):
            self._log.info(
                "%s %s %.1f ms",
                method,
                code,
                seconds * 1000,
                extra={
                    "fields": {
                        "request_id": info.request_id,
                        "service": service,
                        "method": method,
                        "code": code,
                        "latency_ms": round(seconds * 1000, 2),
                        "partner_id": info.partner_id,
                    }
                },
            )


def _request_id(context: Context) -> str:
    return metadata.of(context, metadata.REQUEST_ID) or f"local-{uuid.uuid4()}"


def _code(context: Context, failed: bool) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):  # grpc.aio may hand back the numeric code
        for item in grpc.StatusCode:
            if item.value[0] == code:
                return item.name
    # No code set: a normal return is OK; an exception that set none is UNKNOWN to the client.
    return "UNKNOWN" if failed else "OK"
