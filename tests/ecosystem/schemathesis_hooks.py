"""Schemathesis hooks for `test_schemathesis.py` (loaded through SCHEMATHESIS_HOOKS).

One request rule is the clock's, which no schema can state: `occurredAt` may be at most
5 minutes in the future. A body that is schema-valid only because the document cannot say so
is dropped before it is sent, so "schema-valid request rejected" keeps meaning what it says.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis

#: Less than the service's 5 minutes: the request is sent a moment after this check.
_AHEAD = timedelta(minutes=4)


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
    return not _in_the_future(body)


def _in_the_future(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    items = body.get("events")
    if isinstance(items, list):
        return any(_in_the_future(item) for item in items)
    value = body.get("occurredAt")
    if not isinstance(value, str):
        return False
    try:
        instant = datetime.fromisoformat(value.upper())
    except ValueError:
        return False
    if instant.tzinfo is None:
        return False
    try:
        return instant > datetime.now(UTC) + _AHEAD
    except OverflowError:
        return True
