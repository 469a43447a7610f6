"""Tables of the analytics job itself: its lease, its run records, and the tenant list."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, select, update

from journeys.domain import Environment, Tenant
from journeys.storage.connection import StoreConnection
from journeys.storage.dialect import insert_for
from journeys.storage.schema import analytics_runs, job_leases, users
from journeys.storage.types import as_utc


class JobStore:
    def __init__(self, connection: StoreConnection) -> None:
        self._connection = connection

    async def tenants(self) -> list[Tenant]:
        """Every (partner, environment) that has users: the job's unit of work."""
        rows = await self._connection.execute(
            select(users.c.partner_id, users.c.environment)
            .distinct()
            .order_by(users.c.partner_id, users.c.environment)
        )
        return [Tenant(row.partner_id, Environment(row.environment)) for row in rows]

    async def count_users(self) -> int:
        return int(await self._connection.scalar(select(func.count()).select_from(users)) or 0)

    async def take_lease(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Takes the named lease if it is free or expired; True if `holder` now holds it."""
        await self._connection.execute(
            delete(job_leases).where(job_leases.c.name == name, job_leases.c.expires_at <= now)
        )
        await self._connection.execute(
            insert_for(self._connection)(job_leases)
            .values(name=name, holder=holder, expires_at=until)
            .on_conflict_do_nothing(index_elements=[job_leases.c.name])
        )
        current: str | None = await self._connection.scalar(
            select(job_leases.c.holder).where(job_leases.c.name == name)
        )
        return current == holder

    async def renew_lease(self, name: str, holder: str, until: datetime) -> bool:
        result = await self._connection.execute(
            update(job_leases)
            .where(job_leases.c.name == name, job_leases.c.holder == holder)
            .values(expires_at=until)
        )
        return bool(result.rowcount == 1)

    async def release_lease(self, name: str, holder: str) -> None:
        await self._connection.execute(
            delete(job_leases).where(job_leases.c.name == name, job_leases.c.holder == holder)
        )

    async def last_finished_as_of(self) -> datetime | None:
        """The instant the last succeeded run classified everyone as of, if any ran."""
        found: datetime | None = await self._connection.scalar(
            select(analytics_runs.c.as_of)
            .where(analytics_runs.c.status == "succeeded")
            # Finish times are whole seconds: of two runs finished in one, the later instant.
            .order_by(analytics_runs.c.finished_at.desc(), analytics_runs.c.as_of.desc())
            .limit(1)
        )
        return found

    async def last_full_run_started_at(self) -> datetime | None:
        """When the last succeeded full run started, if any (the schedule's full runs)."""
        found: datetime | None = await self._connection.scalar(
            select(func.max(analytics_runs.c.started_at)).where(
                analytics_runs.c.status == "succeeded", analytics_runs.c.mode == "full"
            )
        )
        return as_utc(found)

    async def start_run(self, as_of: datetime, now: datetime, mode: str) -> str:
        run_id = str(uuid.uuid4())
        await self._connection.execute(
            analytics_runs.insert().values(
                id=run_id, as_of=as_of, started_at=now, status="running", mode=mode
            )
        )
        return run_id

    async def finish_run(
        self,
        run_id: str,
        now: datetime,
        *,
        status: str,
        users_scanned: int,
        transitions: int,
        offers_created: int,
        offers_expired: int,
        users_with_new_data: int,
        tenants_full: int,
    ) -> None:
        await self._connection.execute(
            update(analytics_runs)
            .where(analytics_runs.c.id == run_id)
            .values(
                finished_at=now,
                status=status,
                users_scanned=users_scanned,
                transitions=transitions,
                offers_created=offers_created,
                offers_expired=offers_expired,
                users_with_new_data=users_with_new_data,
                tenants_full=tenants_full,
            )
        )
