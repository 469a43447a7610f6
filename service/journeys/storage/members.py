"""Segment sizes and members as the analytics job last stored them (GET /segments,
GET /users): reads over a tenant's whole population, by index."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Column, Select, bindparam, func, select

from journeys.domain import SegmentMember, SegmentQuery
from journeys.storage.schema import users
from journeys.storage.scope import ScopedStore, TenantScope

_CLASSIFIED = users.c.segment_stage.is_not(None)


def _sizes_by(column: Column[Any]) -> Select[Any]:
    return select(column, func.count()).where(TenantScope.of(users), _CLASSIFIED).group_by(column)


@functools.cache
def _page(stage: bool, tier: bool, min_churn_risk: bool, after: bool) -> Select[Any]:
    """The page statement for one combination of filters sent: built once each (16 at most),
    as every other statement on a request's path is."""
    conditions = [TenantScope.of(users), _CLASSIFIED]
    if stage:
        conditions.append(users.c.segment_stage == bindparam("stage"))
    if tier:
        conditions.append(users.c.segment_tier == bindparam("tier"))
    if min_churn_risk:
        conditions.append(users.c.segment_churn_risk >= bindparam("min_churn_risk"))
    if after:
        conditions.append(users.c.external_id > bindparam("after"))
    return (
        select(
            users.c.external_id,
            users.c.segment_stage,
            users.c.segment_tier,
            users.c.segment_engagement_score,
            users.c.segment_churn_risk,
            users.c.last_seen_at,
            users.c.segments_computed_at,
        )
        .where(*conditions)
        .order_by(users.c.external_id)
        .limit(bindparam("limit"))
    )


class Members(ScopedStore):
    # Each is an index-only count over (tenant, stage|tier, externalId).
    _BY_STAGE = _sizes_by(users.c.segment_stage)
    _BY_TIER = _sizes_by(users.c.segment_tier)

    async def segment_sizes(self) -> tuple[dict[str, int], dict[str, int]]:
        """Classified users by stored stage and by stored tier."""
        stages = await self._connection.execute(self._BY_STAGE, self._scope.binds())
        tiers = await self._connection.execute(self._BY_TIER, self._scope.binds())
        return {row[0]: int(row[1]) for row in stages}, {row[0]: int(row[1]) for row in tiers}

    async def segment_members(self, query: SegmentQuery) -> list[SegmentMember]:
        """Up to `query.limit` classified users after `query.after`, by externalId: a keyset
        page, so each page is one index range whatever its depth."""
        statement = _page(
            query.stage is not None,
            query.tier is not None,
            query.min_churn_risk is not None,
            query.after is not None,
        )
        rows = await self._connection.execute(
            statement,
            self._scope.binds(
                stage=query.stage,
                tier=query.tier,
                min_churn_risk=query.min_churn_risk,
                after=query.after,
                limit=query.limit,
            ),
        )
        return [
            SegmentMember(
                external_id=row.external_id,
                lifecycle_stage=row.segment_stage,
                engagement_tier=row.segment_tier,
                engagement_score=row.segment_engagement_score,
                churn_risk_score=row.segment_churn_risk,
                last_seen_at=row.last_seen_at,
                computed_at=row.segments_computed_at,
            )
            for row in rows
        ]
