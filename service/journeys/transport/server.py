"""The grpc.aio server: the API's services, health checking, reflection and a graceful
stop."""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from journeys.transport.calls import Calls
from journeys.transport.ratelimit import RateLimiter
from journeys.transport.rpc import add_to_server


def server_options(*, share_port: bool = False) -> tuple[tuple[str, int], ...]:
    """The grpc.aio server's options. `share_port`: a worker of `journeys serve --workers N`;
    the workers listen on one port together (SO_REUSEPORT: the kernel spreads connections over
    them). Otherwise two servers must never share a port silently (gRPC enables SO_REUSEPORT
    by default)."""
    return (
        ("grpc.so_reuseport", 1 if share_port else 0),
        ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    )


class GrpcServer:
    def __init__(
        self,
        servicers: Mapping[str, object],
        host: str,
        port: int,
        limiter: RateLimiter | None = None,
        *,
        share_port: bool = False,
    ) -> None:
        """`servicers`: the API's servicers by the full name of the service each serves;
        `share_port`: see `server_options`."""
        self.address = f"{host}:{port}"
        self._services = tuple(servicers)
        self._server = grpc.aio.server(options=server_options(share_port=share_port))
        calls = Calls(limiter)
        for name, servicer in servicers.items():
            add_to_server(servicer, name, self._server, calls)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (*self._services, health.SERVICE_NAME, reflection.SERVICE_NAME), self._server
        )
        if self._server.add_insecure_port(self.address) == 0:
            raise OSError(f"cannot listen on {self.address}")

    async def start(self) -> None:
        await self._server.start()
        for service in ("", *self._services):
            await self._health.set(service, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        """Refuses new calls, lets in-flight ones finish within `grace` seconds."""
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace)
