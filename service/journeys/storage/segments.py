"""Segments as the analytics job computes them, the stage transitions it sees, and the
journey those transitions make."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, bindparam, select, text

from journeys.domain import ComputedSegments, StageTransitionView
from journeys.storage.bulk import BulkInsert, bind_processor
from journeys.storage.schema import stage_transitions, users
from journeys.storage.scope import COLUMNS, ScopedStore, TenantScope

JOURNEY_LENGTH = 10


def journey_of(user: Any, scope: Callable[[Table], ColumnElement[bool]]) -> Select[Any]:
    """A user's latest `JOURNEY_LENGTH` stage transitions, newest first: of the user
    `user` names (a parameter, or a column of a statement that finds the user first)."""
    return (
        select(
            stage_transitions.c.from_stage,
            stage_transitions.c.to_stage,
            stage_transitions.c.at,
            stage_transitions.c.seq,
        )
        .where(scope(stage_transitions), stage_transitions.c.user_id == user)
        .order_by(stage_transitions.c.at.desc(), stage_transitions.c.seq.desc())
        .limit(JOURNEY_LENGTH)
    )


JOURNEY = journey_of(bindparam("user_id"), TenantScope.of)


class Segments(ScopedStore):
    # One statement for the chunk instead of one per profile. The CTE takes the row locks in id
    # order (a lone UPDATE ... FROM locks in whatever order its plan visits the rows), and the
    # lock an UPDATE of non-key columns takes anyway: FOR UPDATE would also block the reference
    # checks of events being stored for these users (FOR KEY SHARE), and deadlock with them.
    _SAVE_SEGMENTS_PG = text(
        f"""WITH locked AS (
            SELECT id FROM users
            WHERE {TenantScope.sql("users")}
              AND id = ANY(CAST(:ids AS varchar[]))
            ORDER BY id
            FOR NO KEY UPDATE
        )
        UPDATE users SET
            segment_stage = computed.stage,
            segment_tier = computed.tier,
            segment_engagement_score = computed.score,
            segment_churn_risk = computed.churn,
            segments_computed_at = :as_of,
            first_classified_at = COALESCE(users.first_classified_at, :as_of)
        FROM locked
        JOIN unnest(
            CAST(:ids AS varchar[]), CAST(:stages AS varchar[]), CAST(:tiers AS varchar[]),
            CAST(:scores AS float8[]), CAST(:churn AS integer[])
        ) AS computed (user_id, stage, tier, score, churn) ON computed.user_id = locked.id
        WHERE {TenantScope.sql("users")} AND users.id = locked.id"""
    )
    # SQLite: the driver's executemany, one row of stored values per profile (SQLAlchemy's
    # per-row handling cost more than the updates).
    _SAVE_SEGMENTS_SQLITE = (
        "UPDATE users SET segment_stage = ?, segment_tier = ?, segment_engagement_score = ?, "
        "segment_churn_risk = ?, segments_computed_at = ?, "
        "first_classified_at = COALESCE(first_classified_at, ?) "
        f"WHERE {TenantScope.driver_sql('users', ['?', '?'])} AND id = ?"
    )

    async def save_segments(self, computed: Sequence[ComputedSegments], as_of: datetime) -> None:
        """Stores each user's segments as computed as of `as_of`, in one driver call whatever
        the chunk's size. Profiles are locked in id order, as `record_events` does, so the two
        never deadlock."""
        if not computed:
            return
        ordered = sorted(computed, key=lambda item: item.user_id)
        if self._connection.dialect.name == "postgresql":
            await self._connection.execute(
                self._SAVE_SEGMENTS_PG,
                self._scope.binds(
                    ids=[item.user_id for item in ordered],
                    stages=[item.stage for item in ordered],
                    tiers=[item.tier for item in ordered],
                    scores=[item.engagement_score for item in ordered],
                    churn=[item.churn_risk_score for item in ordered],
                    as_of=as_of,
                ),
            )
            return
        computed_at = bind_processor(users, "segments_computed_at", self._connection.dialect)(as_of)
        tenant = self._scope.values()
        await self._connection.exec_driver_sql(
            self._SAVE_SEGMENTS_SQLITE,
            [
                (
                    item.stage,
                    item.tier,
                    item.engagement_score,
                    item.churn_risk_score,
                    computed_at,
                    computed_at,
                    *tenant,
                    item.user_id,
                )
                for item in ordered
            ],
        )

    _TRANSITION_COLUMNS = (*COLUMNS, "user_id", "from_stage", "to_stage", "at")

    async def add_transitions(
        self, transitions: Sequence[tuple[str, str, str]], at: datetime
    ) -> None:
        """Records (user id, from stage, to stage) changes seen at `at`."""
        if not transitions:
            return
        insert = BulkInsert(stage_transitions, self._TRANSITION_COLUMNS, self._connection.dialect)
        stored_at = insert.processor("at")(at)
        tenant = self._scope.values()
        await insert.execute(
            self._connection,
            [
                (*tenant, user_id, before, after, stored_at)
                for user_id, before, after in transitions
            ],
        )

    async def journey(self, user_id: str) -> list[StageTransitionView]:
        """The user's latest `JOURNEY_LENGTH` stage transitions, newest first."""
        rows = await self._connection.execute(JOURNEY, self._scope.binds(user_id=user_id))
        return [StageTransitionView(row.from_stage, row.to_stage, row.at) for row in rows]
