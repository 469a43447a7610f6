"""Schemathesis hooks for `test_schemathesis.py` (loaded through SCHEMATHESIS_HOOKS).

Request rules no schema can state: `occurredAt` may be at most 5 minutes in the future and
the offer report's `since` must be in the past (the clock's), a `cursor` must be one the API
returned (it encodes an id), an id erased with `?suppress=true` is refused from then on (the
state's: a later schema-valid POST /users for it would be rejected), a webhook's `url` must
resolve to a public address (the name server's), and a tenant holds at most 10 webhooks (the
state's). A request that is schema-valid only because the document cannot say so is dropped
or mended before it is sent, so "schema-valid request rejected" keeps meaning what it says.

Webhooks: every schema-valid `url` is replaced by one on 127.0.0.1 (a closed port), which
the stack under test accepts and delivers to, so nothing is ever posted off this machine;
and the tenant's webhooks are deleted before each creation.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import schemathesis
from journeys.errors import InvalidArgument
from journeys.usecases.segments import decode_cursor
from journeys.usecases.webhooks import URL_PATTERN
from journeys.webhooks.addresses import MAX_URL_LENGTH

#: Where every generated webhook points: this machine, a port nothing listens on.
LOCAL_URL = "http://127.0.0.1:9/schemathesis"

#: Less than the service's 5 minutes: the request is sent a moment after this check.
_AHEAD = timedelta(minutes=4)


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
    return not _in_the_future(body)


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Every phase passes here (the coverage phase does not filter): an erasure is sent
    without suppression, and a cursor of the right alphabet that this API did not return
    is left out, as a partner paging from the first page would; so is a report's `since`
    that is not in the past."""
    if case.method.upper() == "POST" and case.path.endswith("/webhooks"):
        _mend_webhook(case.body)
    query = case.query
    if not isinstance(query, dict):
        return
    if case.method.upper() == "DELETE" and str(query.get("suppress", "")).lower() in _TRUE:
        query["suppress"] = "false"
    cursor = query.get("cursor")
    if isinstance(cursor, str) and cursor and re.fullmatch(r"[A-Za-z0-9_-]*", cursor):
        try:
            decode_cursor(cursor)
        except InvalidArgument:
            del query["cursor"]
    since = query.get("since")
    if isinstance(since, str) and _not_past(since):
        del query["since"]


_TRUE = {"true", "1", "t"}


def _mend_webhook(body: Any) -> None:
    if not isinstance(body, dict):
        return
    url = body.get("url")
    if isinstance(url, str) and len(url) <= MAX_URL_LENGTH and re.fullmatch(URL_PATTERN, url):
        body["url"] = LOCAL_URL
        _delete_webhooks()


def _delete_webhooks() -> None:
    base, key = os.environ["JOURNEYS_TEST_BASE_URL"], os.environ["JOURNEYS_TEST_SECRET_KEY"]
    headers = {"X-API-Key": key}
    with httpx.Client(base_url=f"{base}/v1/user-journeys", headers=headers) as client:
        for webhook in client.get("/webhooks").raise_for_status().json()["data"]["webhooks"]:
            client.delete(f"/webhooks/{webhook['id']}").raise_for_status()


def _not_past(value: str) -> bool:
    """A timestamp at or after now (an unreadable one is left to the service to refuse)."""
    return _after(value, datetime.now(UTC) - timedelta(seconds=5), or_equal=True)


def _in_the_future(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    items = body.get("events")
    if isinstance(items, list):
        return any(_in_the_future(item) for item in items)
    value = body.get("occurredAt")
    return isinstance(value, str) and _after(value, datetime.now(UTC) + _AHEAD)


def _after(value: str, bound: datetime, *, or_equal: bool = False) -> bool:
    """Whether `value` is an RFC 3339 timestamp (with its offset) after `bound`; False for
    anything unreadable, which the service refuses on its own."""
    try:
        instant = datetime.fromisoformat(value.upper())
    except ValueError:
        return False
    if instant.tzinfo is None:
        return False
    try:
        return instant >= bound if or_equal else instant > bound
    except OverflowError:
        return True
