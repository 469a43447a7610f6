"""Segments as the analytics job computes them, the stage transitions it sees, and the
journey those transitions make."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, bindparam, select, text

from journeys.domain import ANALYTICS_DUE_NOW, ComputedSegments, StageTransitionView
from journeys.storage.bulk import BulkInsert, bind_processor
from journeys.storage.schema import stage_transitions, users
from journeys.storage.scope import COLUMNS, ScopedStore, TenantScope

JOURNEY_LENGTH = 10


def _read(item: ComputedSegments) -> tuple[int | None, datetime | None, datetime | None]:
    return item.read if item.read is not None else (None, None, None)


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
            first_classified_at = COALESCE(users.first_classified_at, :as_of),
            analytics_due_at = CASE
                WHEN users.total_events = computed.read_events
                    AND users.first_seen_at = computed.read_first
                    AND users.last_seen_at = computed.read_last
                THEN computed.due ELSE :due_now END
        FROM locked
        JOIN unnest(
            CAST(:ids AS varchar[]), CAST(:stages AS varchar[]), CAST(:tiers AS varchar[]),
            CAST(:scores AS float8[]), CAST(:churn AS integer[]), CAST(:dues AS timestamptz[]),
            CAST(:read_events AS integer[]), CAST(:read_first AS timestamptz[]),
            CAST(:read_last AS timestamptz[])
        ) AS computed (
            user_id, stage, tier, score, churn, due, read_events, read_first, read_last
        ) ON computed.user_id = locked.id
        WHERE {TenantScope.sql("users")} AND users.id = locked.id"""
    )
    # SQLite: the driver's executemany, one row of stored values per profile (SQLAlchemy's
    # per-row handling cost more than the updates).
    _SAVE_SEGMENTS_SQLITE = (
        "UPDATE users SET segment_stage = ?, segment_tier = ?, segment_engagement_score = ?, "
        "segment_churn_risk = ?, segments_computed_at = ?, "
        "first_classified_at = COALESCE(first_classified_at, ?), analytics_due_at = ? "
        f"WHERE {TenantScope.driver_sql('users', ['?', '?'])} AND id = ?"
    )

    async def save_segments(self, computed: Sequence[ComputedSegments], as_of: datetime) -> None:
        """Stores each user's segments as computed as of `as_of`, with the instant the user
        is due next, in one driver call whatever the chunk's size. Profiles are locked in id
        order, as `record_events` does, so the two never deadlock.

        On PostgreSQL events may be stored for a user between the chunk's read and this
        write (READ COMMITTED; the read's FOR KEY SHARE lets them in): the due time is
        then replaced by "due now" when the profile's total events or seen times are not
        those the computation read, so the next run takes the new data. SQLite's write
        transaction excludes every other writer from the read to the commit."""
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
                    dues=[item.due_at for item in ordered],
                    read_events=[_read(item)[0] for item in ordered],
                    read_first=[_read(item)[1] for item in ordered],
                    read_last=[_read(item)[2] for item in ordered],
                    due_now=ANALYTICS_DUE_NOW,
                    as_of=as_of,
                ),
            )
            return
        stored_time = bind_processor(users, "segments_computed_at", self._connection.dialect)
        computed_at = stored_time(as_of)
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
                    stored_time(item.due_at),
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
