"""Partners and their API keys: the only tables read before a tenant is known."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, func, or_, select, update

from journeys.domain import ApiKeyRecord, Environment, KeyKind, PresentedKey
from journeys.storage.connection import StoreConnection
from journeys.storage.driver import Row, Statement, driver_of
from journeys.storage.schema import api_keys, partners

_KEY_COLUMNS = (
    api_keys.c.id,
    api_keys.c.partner_id,
    partners.c.name,
    api_keys.c.environment,
    api_keys.c.kind,
    api_keys.c.display_prefix,
    api_keys.c.created_at,
    api_keys.c.revoked_at,
)
#: What a call reads of its key (`presented`), also joined into the request path's reads.
PRESENTED_COLUMNS = (
    api_keys.c.partner_id,
    api_keys.c.environment,
    api_keys.c.kind,
    api_keys.c.revoked_at,
)
# Every call reads its key (revocation binds at once), on the raw driver: on SQLAlchemy this
# lookup cost more than the rest of a small call.
_PRESENTED = Statement(
    select(*PRESENTED_COLUMNS).where(api_keys.c.key_digest == bindparam("digest", type_=String()))
)


def presented(row: Row) -> PresentedKey:
    """A row beginning with `PRESENTED_COLUMNS` as the key it is."""
    return PresentedKey(row[0], Environment(row[1]), KeyKind(row[2]), row[3] is not None)


class KeyStore:
    def __init__(self, connection: StoreConnection) -> None:
        self._connection = connection

    async def presented(self, key_digest: str) -> PresentedKey | None:
        """The key stored under this digest, as a call presenting it needs it."""
        driver = await driver_of(self._connection)
        rows = await driver.fetch(_PRESENTED, {"digest": key_digest})
        return presented(rows[0]) if rows else None

    async def partner_id(self, name: str) -> str | None:
        found = await self._connection.scalar(select(partners.c.id).where(partners.c.name == name))
        return None if found is None else str(found)

    async def ensure_partner(self, name: str, now: datetime) -> str:
        existing = await self._connection.scalar(
            select(partners.c.id).where(partners.c.name == name)
        )
        if existing is not None:
            return str(existing)
        partner_id = str(uuid.uuid4())
        await self._connection.execute(
            partners.insert().values(id=partner_id, name=name, created_at=now)
        )
        return partner_id

    async def add_key(
        self,
        partner_id: str,
        environment: Environment,
        kind: KeyKind,
        key_digest: str,
        display_prefix: str,
        now: datetime,
    ) -> None:
        await self._connection.execute(
            api_keys.insert().values(
                id=str(uuid.uuid4()),
                partner_id=partner_id,
                environment=environment.value,
                kind=kind.value,
                key_digest=key_digest,
                display_prefix=display_prefix,
                created_at=now,
            )
        )

    async def list_keys(self) -> list[ApiKeyRecord]:
        rows = await self._connection.execute(
            select(*_KEY_COLUMNS)
            .join(partners, partners.c.id == api_keys.c.partner_id)
            .order_by(partners.c.name, api_keys.c.created_at, api_keys.c.id)
        )
        return [_key(row) for row in rows]

    async def count_keys(self) -> int:
        return int(await self._connection.scalar(select(func.count()).select_from(api_keys)) or 0)

    async def revoke(self, key_digest: str, display_prefix: str, now: datetime) -> list[str]:
        """Revokes the key with this digest, or every key shown with this prefix; returns the
        ids of keys that were active until now."""
        matches = or_(
            api_keys.c.key_digest == key_digest, api_keys.c.display_prefix == display_prefix
        )
        result = await self._connection.execute(
            update(api_keys)
            .where(matches, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(api_keys.c.id)
        )
        return [str(row.id) for row in result]


def _key(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        partner_id=row.partner_id,
        partner_name=row.name,
        environment=Environment(row.environment),
        kind=KeyKind(row.kind),
        display_prefix=row.display_prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
