"""Every query on tenant-owned data, each scoped by (partner, environment) through `_scoped`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from journeys.domain import Environment, OfferRecord, Tenant, UserChanges, UserRecord
from journeys.storage.schema import offers, users

_PROFILE_FIELDS = ("display_name", "email", "phone", "country", "device", "source")


class TenantStore:
    def __init__(self, connection: AsyncConnection, tenant: Tenant) -> None:
        self._connection = connection
        self._tenant = tenant

    def _scoped(self, table: Table) -> ColumnElement[bool]:
        return and_(
            table.c.partner_id == self._tenant.partner_id,
            table.c.environment == self._tenant.environment.value,
        )

    def _tenant_columns(self) -> dict[str, str]:
        return {
            "partner_id": self._tenant.partner_id,
            "environment": self._tenant.environment.value,
        }

    async def upsert_user(self, changes: UserChanges, now: datetime) -> None:
        """Creates the profile or updates exactly the fields that were sent, in one statement,
        so two concurrent first writes of one user cannot both insert."""
        sent: dict[str, Any] = {
            name: value for name in _PROFILE_FIELDS if (value := getattr(changes, name)) is not None
        }
        if changes.tags is not None:
            sent["tags"] = changes.tags
        if changes.metadata is not None:
            sent["metadata"] = changes.metadata
        insert = (
            _insert_for(self._connection)(users)
            .values(
                id=str(uuid.uuid4()),
                **self._tenant_columns(),
                external_id=changes.external_id,
                **dict.fromkeys(_PROFILE_FIELDS, ""),
                tags={},
                metadata={},
                first_seen_at=now,
                last_seen_at=now,
                created_at=now,
                updated_at=now,
            )
            .values(**sent)
        )
        excluded = insert.excluded
        statement = insert.on_conflict_do_update(
            index_elements=[users.c.partner_id, users.c.environment, users.c.external_id],
            set_={
                **{name: excluded[name] for name in sent},
                "last_seen_at": case(
                    (excluded.last_seen_at > users.c.last_seen_at, excluded.last_seen_at),
                    else_=users.c.last_seen_at,
                ),
                "updated_at": excluded.updated_at,
            },
        )
        await self._connection.execute(statement)

    async def get_user(self, external_id: str) -> UserRecord | None:
        row = (
            await self._connection.execute(
                select(users).where(self._scoped(users), users.c.external_id == external_id)
            )
        ).first()
        return None if row is None else _user(row)

    async def active_offers(self, user_id: str, now: datetime) -> list[OfferRecord]:
        rows = await self._connection.execute(
            select(offers, users.c.external_id)
            .join(users, users.c.id == offers.c.user_id)
            .where(
                self._scoped(offers),
                offers.c.user_id == user_id,
                offers.c.status == "active",
                offers.c.expires_at > now,
            )
            .order_by(offers.c.created_at, offers.c.id)
        )
        return [_offer(row) for row in rows]


def _insert_for(connection: AsyncConnection) -> Any:
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def _user(row: Any) -> UserRecord:
    return UserRecord(
        id=row.id,
        partner_id=row.partner_id,
        environment=Environment(row.environment),
        external_id=row.external_id,
        display_name=row.display_name,
        email=row.email,
        phone=row.phone,
        country=row.country,
        device=row.device,
        source=row.source,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        tags=dict(row.tags),
        metadata=dict(row.metadata),
    )


def _offer(row: Any) -> OfferRecord:
    return OfferRecord(
        id=row.id,
        external_id=row.external_id,
        offer_type=row.offer_type,
        game_type=row.game_type,
        title=row.title,
        description=row.description,
        points_value=row.points_value,
        status=row.status,
        expires_at=row.expires_at,
        claimed_at=row.claimed_at,
        metadata=dict(row.metadata),
    )
