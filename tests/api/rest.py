"""Helpers for asserting the documented REST envelopes."""

from __future__ import annotations

import re
from typing import Any

import httpx

RFC3339_SECONDS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
LOWER_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

PROFILE_KEYS = [
    "id",
    "partnerId",
    "externalId",
    "environment",
    "displayName",
    "email",
    "phone",
    "country",
    "device",
    "source",
    "firstSeenAt",
    "lastSeenAt",
    "lifecycleStage",
    "engagementTier",
    "engagementScore",
    "churnRiskScore",
    "totalPlays",
    "plays7d",
    "plays30d",
    "pointsEarned7d",
    "pointsEarned30d",
    "campaignsJoined",
    "winRate",
    "totalEvents",
    "tags",
    "metadata",
]


EVENT_KEYS = [
    "id",
    "partnerId",
    "externalId",
    "environment",
    "category",
    "eventType",
    "points",
    "occurredAt",
    "messageId",
    "metadata",
]


def success(response: httpx.Response) -> Any:
    """The `data` of a documented success envelope (and nothing else in it)."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["status", "data"], body
    assert body["status"] == "success"
    return body["data"]


def error(response: httpx.Response, status: int, message: str) -> None:
    """Asserts the documented error envelope, byte for byte in key order."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"message": message, "code": status, "status": "error"}
    assert list(response.json()) == ["message", "code", "status"]


def headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key, "Content-Type": "application/json"}
