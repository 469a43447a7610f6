"""A user's export as JSON, streamed in chunks: each profile, event, offer and transition
printed exactly as the REST API prints it (Envoy's transcoder, then the gateway's envelope
filter), so a partner can read an export with the code that reads our answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from journeys.transport import convert
from journeys.usecases.privacy import UserExport

#: A chunk is handed on once it holds this much; one item more at most.
CHUNK_BYTES = 256 * 1024
#: Integral doubles below this print as integers, as the transcoder prints them (beyond it
#: both print an exponent).
_EXACT_INTEGERS = 2.0**53


def as_api_json(message: Message) -> Any:
    """The message as the transcoder prints it: camelCase names, fields with no presence
    printed with their defaults, 64-bit integers as strings, unset messages left out, and
    integral doubles without a fraction (`42`, not `42.0`)."""
    return _integral_doubles(
        json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    )


def offer_json(message: Message) -> Any:
    """An offer as the REST API shows it: `"claimedAt": null` right after `expiresAt` while
    it is unclaimed (gateway/envelope.lua)."""
    printed = as_api_json(message)
    if "claimedAt" in printed:
        return printed
    shown: dict[str, Any] = {}
    for key, value in printed.items():
        shown[key] = value
        if key == "expiresAt":
            shown["claimedAt"] = None
    return shown


def _integral_doubles(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_INTEGERS:
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_doubles(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_doubles(item) for item in value]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class _Chunks:
    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = 0

    def add(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)

    @property
    def full(self) -> bool:
        return self._size >= CHUNK_BYTES

    def take(self) -> bytes:
        chunk = "".join(self._parts).encode()
        self._parts, self._size = [], 0
        return chunk


async def render(export: UserExport, *, envelope: bool) -> AsyncIterator[bytes]:
    """`{"profile":…,"events":[…],"offers":[…],"journey":[…]}` (inside the success
    envelope with `envelope`), in chunks of about `CHUNK_BYTES`: the events are printed as
    they are read, never all held at once."""
    chunks = _Chunks()
    if envelope:
        chunks.add('{"status":"success","data":')
    chunks.add('{"profile":' + _dumps(as_api_json(convert.user_detail(export.profile))))
    chunks.add(',"events":[')
    separator = ""
    async for event in export.events():
        chunks.add(separator + _dumps(as_api_json(convert.event(event))))
        separator = ","
        if chunks.full:
            yield chunks.take()
    chunks.add("]")
    offers = (offer_json(convert.offer(offer)) for offer in export.offers)
    for chunk in _array(chunks, "offers", offers):
        yield chunk
    journey = (as_api_json(convert.stage_transition(item)) for item in export.journey)
    for chunk in _array(chunks, "journey", journey):
        yield chunk
    chunks.add("}}" if envelope else "}")
    yield chunks.take()


def _array(chunks: _Chunks, name: str, items: Iterable[Any]) -> Iterable[bytes]:
    """`,"name":[…]` into `chunks`, yielding each chunk that fills up meanwhile."""
    chunks.add(f',"{name}":[')
    separator = ""
    for item in items:
        chunks.add(separator + _dumps(item))
        separator = ","
        if chunks.full:
            yield chunks.take()
    chunks.add("]")
