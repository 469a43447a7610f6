"""`journeys serve` and `journeys gateway`: the long-running processes (see journeys.app)."""

from __future__ import annotations

import argparse
import dataclasses

from journeys import app
from journeys.cli._common import Commands, run
from journeys.config import Settings


def add_commands(commands: Commands) -> None:
    serve_cmd = commands.add_parser("serve", help="run the gRPC server and the Envoy gateway")
    serve_cmd.add_argument(
        "--no-gateway", action="store_true", help="run only the gRPC server (no Envoy)"
    )
    serve_cmd.add_argument(
        "--demo-key",
        action="store_true",
        help="on a database without keys, create a TEST key for partner 'demo' and print it",
    )
    serve_cmd.add_argument(
        "--workers",
        type=_at_least_one,
        metavar="N",
        help="grpc.aio server processes on the one gRPC port (default: JOURNEYS_WORKERS, else "
        "the CPU count); 1 serves in this process alone",
    )
    # Set by the supervisor of `--workers N` for each worker it starts (journeys.workers).
    serve_cmd.add_argument("--worker", type=int, metavar="I", help=argparse.SUPPRESS)
    serve_cmd.set_defaults(command=serve)

    gateway_cmd = commands.add_parser(
        "gateway", help="run only Envoy, in front of one or more `serve --no-gateway` replicas"
    )
    gateway_cmd.add_argument(
        "--upstream",
        action="append",
        type=_host_port,
        required=True,
        metavar="HOST:PORT",
        help="a replica's gRPC address (repeat for several)",
    )
    gateway_cmd.set_defaults(command=gateway)


def serve(settings: Settings, args: argparse.Namespace) -> int:
    if args.workers is not None:
        settings = dataclasses.replace(settings, workers=args.workers)
    return run(
        app.serve(settings, gateway=not args.no_gateway, demo_key=args.demo_key, worker=args.worker)
    )


def gateway(settings: Settings, args: argparse.Namespace) -> int:
    return run(app.serve_gateway(settings, args.upstream))


def _at_least_one(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return int(value)


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)
