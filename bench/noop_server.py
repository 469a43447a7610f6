"""The baseline of the gRPC scenarios: a grpc.aio server that does no work.

Same process model as `journeys serve`: one Python process on uvloop, `grpc.aio.server` with
the service's own options, the generated UserJourneysService servicer base. Every method
returns a canned response captured from the real server, so responses have the same shapes
and sizes; requests are still parsed and responses serialized, as in the real server.

    python -m bench.noop_server --port PORT --canned FILE.json [--share-port]

With `--share-port`, several of them listen on one port, as the workers of `journeys serve
--workers N` do (the baseline of the workers scenario).
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path
from typing import Any

import grpc
import uvloop
from gamifyhost.userjourneys.v1 import segments_service_pb2 as segments_pb
from gamifyhost.userjourneys.v1 import segments_service_pb2_grpc as segments_pb_grpc
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2_grpc as pb_grpc
from gamifyhost.userjourneys.v1 import user_pb2
from journeys.transport.server import server_options

READY_LINE = "noop server is ready"

#: rpc name -> response type, for the calls the benchmark drives.
RESPONSES: dict[str, Any] = {
    "GetOffers": pb.GetOffersResponse,
    "GetUser": pb.GetUserResponse,
    "TrackEvent": pb.TrackEventResponse,
    "TrackEvents": pb.TrackEventsResponse,
    "ListSegmentMembers": segments_pb.ListSegmentMembersResponse,
}


class NoopServicer(pb_grpc.UserJourneysServiceServicer):
    def __init__(self, canned: dict[str, Any]) -> None:
        self._canned = canned

    async def GetOffers(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._canned["GetOffers"]

    async def GetUser(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._canned["GetUser"]

    async def TrackEvent(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._canned["TrackEvent"]

    async def TrackEvents(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._canned["TrackEvents"]

    async def TrackEventsJson(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._canned["TrackEvents"]

    # Not driven by the benchmark: empty answers.
    async def TrackUser(self, request: Any, context: Any) -> Any:  # noqa: N802
        return user_pb2.User()

    async def GetTimeline(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.GetTimelineResponse()

    async def ClaimOffer(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.ClaimOfferResponse()


class NoopSegmentsServicer(segments_pb_grpc.SegmentsServiceServicer):
    def __init__(self, canned: dict[str, Any]) -> None:
        self._canned = canned

    async def ListSegmentMembers(self, request: Any, context: Any) -> Any:  # noqa: N802
        return self._canned["ListSegmentMembers"]

    # Not driven by the benchmark: an empty answer.
    async def GetSegmentSizes(self, request: Any, context: Any) -> Any:  # noqa: N802
        return segments_pb.GetSegmentSizesResponse()


def load_canned(path: Path) -> dict[str, Any]:
    raw: dict[str, str] = json.loads(path.read_text())
    return {
        name: RESPONSES[name].FromString(base64.b64decode(raw.get(name, ""))) for name in RESPONSES
    }


async def serve(port: int, canned: dict[str, Any], *, share_port: bool = False) -> None:
    server = grpc.aio.server(options=server_options(share_port=share_port))
    pb_grpc.add_UserJourneysServiceServicer_to_server(NoopServicer(canned), server)
    segments_pb_grpc.add_SegmentsServiceServicer_to_server(NoopSegmentsServicer(canned), server)
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}")
    await server.start()
    print(READY_LINE, flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--canned", type=Path, required=True)
    parser.add_argument("--share-port", action="store_true", help="listen with SO_REUSEPORT")
    args = parser.parse_args()
    uvloop.run(serve(args.port, load_canned(args.canned), share_port=args.share_port))


if __name__ == "__main__":
    main()
