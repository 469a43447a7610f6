"""The gRPC metadata this service reads, and the one reader of it. Envoy turns the REST
headers of the same names into this metadata."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc

API_KEY = "x-api-key"
#: Envoy's id for the call (the client's own when valid); a native gRPC client may send one.
REQUEST_ID = "x-request-id"


def value(metadata: Iterable[tuple[str, Any]] | None, key: str) -> str | None:
    for name, item in metadata or ():
        if name == key:
            return item.decode(errors="replace") if isinstance(item, bytes) else item
    return None


def of(context: grpc.aio.ServicerContext[Any, Any], key: str) -> str | None:
    return value(context.invocation_metadata(), key)
