"""Partner operations over a tenant's whole population (secret key): segment sizes and
members, as the analytics job last stored them."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from datetime import datetime

from journeys.domain import KeyKind, SegmentMember, SegmentQuery
from journeys.errors import InvalidArgument
from journeys.rules.segments import EngagementTier, LifecycleStage
from journeys.storage.analytics_state import AnalyticsState
from journeys.storage.database import Database
from journeys.usecases import validation
from journeys.usecases.auth import Caller, authenticate

MEMBERS_LIMIT_DEFAULT = 100
MEMBERS_LIMIT_MAX = 1000
#: Marks our cursors, so a value from elsewhere is refused rather than misread.
_CURSOR_PREFIX = "after:"


@dataclass(frozen=True)
class SegmentSizes:
    computed_at: datetime | None
    stages: dict[str, int]
    tiers: dict[str, int]


@dataclass(frozen=True)
class MemberPage:
    members: tuple[SegmentMember, ...]
    next_cursor: str


def encode_cursor(external_id: str) -> str:
    raw = (_CURSOR_PREFIX + external_id).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The externalId a cursor continues after; 400 naming `cursor` for anything else."""
    problem = InvalidArgument.field("cursor", "cursor is not one this API returned")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise problem from None
    if not text.startswith(_CURSOR_PREFIX):
        raise problem
    try:
        return validation.external_id(text[len(_CURSOR_PREFIX) :])
    except InvalidArgument:
        raise problem from None


def segment_query(
    stage: str | None,
    tier: str | None,
    min_churn_risk: int | None,
    limit: int | None,
    cursor: str | None,
) -> SegmentQuery:
    """GET /users' query parameters, each optional; empty text counts as not sent."""
    if stage and stage not in set(LifecycleStage):
        raise InvalidArgument.field(
            "lifecycleStage", f"lifecycleStage must be one of {', '.join(LifecycleStage)}"
        )
    if tier and tier not in set(EngagementTier):
        raise InvalidArgument.field(
            "engagementTier", f"engagementTier must be one of {', '.join(EngagementTier)}"
        )
    if min_churn_risk is not None and not 0 <= min_churn_risk <= 100:
        raise InvalidArgument.field("minChurnRisk", "minChurnRisk must be between 0 and 100")
    limit = MEMBERS_LIMIT_DEFAULT if limit is None else limit
    if not 1 <= limit <= MEMBERS_LIMIT_MAX:
        raise InvalidArgument.field("limit", f"limit must be between 1 and {MEMBERS_LIMIT_MAX}")
    return SegmentQuery(
        stage=stage or None,
        tier=tier or None,
        min_churn_risk=min_churn_risk,
        after=decode_cursor(cursor) if cursor else None,
        limit=limit,
    )


def query_schema() -> dict[str, validation.Schema]:
    """GET /users' query rules as JSON Schema, by parameter (see `validation.json_schemas`)."""
    return {
        "lifecycleStage": {"type": "string", "enum": ["", *LifecycleStage]},
        "engagementTier": {"type": "string", "enum": ["", *EngagementTier]},
        "minChurnRisk": {"type": "integer", "minimum": 0, "maximum": 100},
        "limit": {"type": "integer", "minimum": 1, "maximum": MEMBERS_LIMIT_MAX},
        "cursor": {"type": "string", "pattern": "^[A-Za-z0-9_-]*$"},
    }


class Segments:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def sizes(self, caller: Caller) -> SegmentSizes:
        async with self._db.transaction(write=False) as tx:
            store = tx.tenant(await authenticate(tx.keys, caller, needs=KeyKind.SECRET))
            stages, tiers = await store.segment_sizes()
            computed_at = await tx.jobs.last_finished_as_of()
        return SegmentSizes(
            computed_at=computed_at,
            stages={stage.value: stages.get(stage.value, 0) for stage in LifecycleStage},
            tiers={tier.value: tiers.get(tier.value, 0) for tier in EngagementTier},
        )

    async def members(
        self,
        caller: Caller,
        stage: str | None,
        tier: str | None,
        min_churn_risk: int | None,
        limit: int | None,
        cursor: str | None,
    ) -> MemberPage:
        async with self._db.transaction(write=False) as tx:
            store = tx.tenant(await authenticate(tx.keys, caller, needs=KeyKind.SECRET))
            query = segment_query(stage, tier, min_churn_risk, limit, cursor)
            # One row past the page tells whether another page follows.
            found = await store.segment_members(replace(query, limit=query.limit + 1))
            state = await store.analytics_state()
        page = tuple(_confirmed(member, state) for member in found[: query.limit])
        more = len(found) > query.limit
        return MemberPage(page, encode_cursor(page[-1].external_id) if more else "")


def _confirmed(member: SegmentMember, state: AnalyticsState | None) -> SegmentMember:
    """`computedAt` is the instant of the last run as of which the member's stored segments
    hold: an incremental run recomputes only the users due (`rules/due.py`) and confirms the
    others unchanged as of its instant, once it has finished the tenant."""
    if state is None or state.confirmed_as_of <= member.computed_at:
        return member
    return replace(member, computed_at=state.confirmed_as_of)
