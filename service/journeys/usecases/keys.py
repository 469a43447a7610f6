"""Partner keys for operators (`journeys keys`, `serve --demo-key`): create, list, revoke.
Each is one transaction; what a key may do is decided in `auth`."""

from __future__ import annotations

from datetime import datetime

from journeys.domain import ApiKeyRecord, Environment, KeyKind
from journeys.errors import InvalidArgument
from journeys.storage.database import Database
from journeys.usecases import apikeys
from journeys.usecases.auth import create_key


async def create(
    database: Database,
    partner: str,
    environment: Environment,
    now: datetime,
    kind: KeyKind = KeyKind.PUBLIC,
) -> str:
    """A new key (and the partner, if new); the key is returned only here."""
    async with database.transaction(write=True) as tx:
        return await create_key(tx.keys, partner, environment, now, kind)


async def create_first(
    database: Database, partner: str, environment: Environment, now: datetime
) -> str | None:
    """A key for a database that has none yet (a demo), else nothing."""
    async with database.transaction(write=True) as tx:
        if await tx.keys.count_keys() > 0:
            return None
        return await create_key(tx.keys, partner, environment, now)


async def listing(database: Database) -> list[ApiKeyRecord]:
    async with database.transaction(write=False) as tx:
        return await tx.keys.list_keys()


async def revoke(database: Database, presented: str, now: datetime) -> int:
    """Revokes a key by its full value or by the display prefix `listing` shows (every key
    shown so); returns how many were active until now."""
    presented = presented.rstrip("…")
    is_full_key = apikeys.environment_of(presented) is not None
    if not is_full_key and len(presented) != apikeys.DISPLAY_PREFIX_LENGTH:
        raise InvalidArgument.field(
            "key", "give the full key or its display prefix (as `journeys keys list` shows)"
        )
    async with database.transaction(write=True) as tx:
        revoked = await tx.keys.revoke(
            apikeys.digest(presented) if is_full_key else "",
            "" if is_full_key else presented,
            now,
        )
    return len(revoked)
