"""The engine-specific INSERT (ON CONFLICT lives in each dialect's own construct)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from journeys.storage.connection import StoreConnection


def insert_for(connection: StoreConnection) -> Any:
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def per_dialect(build: Callable[[Any], Any]) -> dict[str, Any]:
    """A statement built once per engine from that engine's `insert`."""
    return {"sqlite": build(sqlite.insert), "postgresql": build(postgresql.insert)}
