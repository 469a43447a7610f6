"""The grpc.aio server: the API, health checking, reflection and a graceful stop."""

from __future__ import annotations

import grpc
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from journeys.transport.interceptors import RateLimit, RequestObserver
from journeys.transport.ratelimit import RateLimiter
from journeys.transport.servicer import UserJourneysServicer, add_to_server
from journeys.usecases import Journeys

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["UserJourneysService"].full_name
_OPTIONS = (
    # Two servers must never share a port silently (gRPC enables SO_REUSEPORT by default).
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
)


class GrpcServer:
    def __init__(
        self, journeys: Journeys, host: str, port: int, limiter: RateLimiter | None = None
    ) -> None:
        self.address = f"{host}:{port}"
        # Outermost first: a call refused by the rate limit is still counted and logged.
        interceptors: list[grpc.aio.ServerInterceptor] = [RequestObserver()]
        if limiter is not None:
            interceptors.append(RateLimit(limiter, frozenset({SERVICE_NAME})))
        self._server = grpc.aio.server(interceptors=interceptors, options=_OPTIONS)
        add_to_server(UserJourneysServicer(journeys), self._server)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        if self._server.add_insecure_port(self.address) == 0:
            raise OSError(f"cannot listen on {self.address}")

    async def start(self) -> None:
        await self._server.start()
        for service in ("", SERVICE_NAME):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        """Refuses new calls, lets in-flight ones finish within `grace` seconds."""
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)
