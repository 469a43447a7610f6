"""Plain data shared by the service, storage and transport layers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

JsonObject = dict[str, Any]


class Environment(StrEnum):
    LIVE = "LIVE"
    TEST = "TEST"


class KeyKind(StrEnum):
    """`pk_…` keys may ship in apps and web pages; `sk_…` keys live on the partner's servers
    only and also open the operations that expose many users or erase data (Part C)."""

    PUBLIC = "public"
    SECRET = "secret"


@dataclass(frozen=True)
class Tenant:
    """One partner's data in one environment: the unit of isolation."""

    partner_id: str
    environment: Environment


@dataclass(frozen=True)
class UserChanges:
    """A validated POST /users body. `None` means "not sent": the stored value stays."""

    external_id: str
    display_name: str | None = None
    email: str | None = None
    phone: str | None = None
    country: str | None = None
    device: str | None = None
    source: str | None = None
    tags: dict[str, str] | None = None
    metadata: JsonObject | None = None


@dataclass(frozen=True)
class UserRecord:
    """A stored profile with the activity counters kept beside it."""

    id: str
    partner_id: str
    environment: Environment
    external_id: str
    display_name: str
    email: str
    phone: str
    country: str
    device: str
    source: str
    first_seen_at: datetime
    last_seen_at: datetime
    tags: dict[str, str] = field(default_factory=dict)
    metadata: JsonObject = field(default_factory=dict)
    total_events: int = 0


@dataclass(frozen=True)
class OfferRecord:
    id: str
    external_id: str
    offer_type: str
    game_type: str
    title: str
    description: str
    points_value: int
    status: str
    expires_at: datetime
    claimed_at: datetime | None
    metadata: JsonObject = field(default_factory=dict)


class Category(StrEnum):
    GAME_PLAY = "GAME_PLAY"
    CAMPAIGN = "CAMPAIGN"
    POINTS = "POINTS"
    CUSTOM = "CUSTOM"


@dataclass(frozen=True)
class EventInput:
    """An event as a partner sent it: unvalidated, strings where partners make mistakes."""

    external_id: str
    category: str
    event_type: str
    points: int = 0
    occurred_at: str = ""
    message_id: str = ""
    metadata: JsonObject | None = None


@dataclass(frozen=True)
class NewEvent:
    """A validated event, ready to store."""

    external_id: str
    category: Category
    event_type: str
    points: int
    occurred_at: datetime
    message_id: str | None
    metadata: JsonObject

    @property
    def is_play(self) -> bool:
        return self.category is Category.GAME_PLAY

    @property
    def is_won_play(self) -> bool:
        return self.is_play and self.metadata.get("won") is True

    @property
    def campaign_id(self) -> str | None:
        """The campaign a CAMPAIGN event joins, as text (JSON numbers arrive as floats)."""
        if self.category is not Category.CAMPAIGN:
            return None
        value = self.metadata.get("campaignId")
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value) if isinstance(value, str | int | float) and str(value) else None


@dataclass(frozen=True)
class EventRecord:
    id: str
    partner_id: str
    external_id: str
    environment: Environment
    category: str
    event_type: str
    points: int
    occurred_at: datetime
    message_id: str
    metadata: JsonObject = field(default_factory=dict)


@dataclass(frozen=True)
class StoredEvent:
    """The outcome of storing one event: the stored event, and whether it is new."""

    event: EventRecord
    is_new: bool


#: A user's `analytics_due_at` once new data about them arrives (and a new profile's): before
#: any run's instant, so the next run recomputes them (`rules/due.py`).
ANALYTICS_DUE_NOW = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class UserCounters:
    """A user as the analytics job scans it: timestamps, counters, last stored stage."""

    id: str
    external_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    stored_stage: str | None
    total_events: int
    total_plays: int
    won_plays: int
    #: When the job was due to recompute the user (`rules/due.py`); None: not foreseen.
    due_at: datetime | None = None


@dataclass(frozen=True)
class ComputedSegments:
    user_id: str
    stage: str
    tier: str
    engagement_score: float
    churn_risk_score: int
    #: When the user is due next (`rules/due.py`), stored with the segments.
    due_at: datetime | None = None
    #: The profile's figures the computation read (total events, first and last seen): on
    #: PostgreSQL the due time is stored only if they are unchanged at the write, else the
    #: user stays due (data arrived meanwhile).
    read: tuple[int, datetime, datetime] | None = None


@dataclass(frozen=True)
class NewOffer:
    user_id: str
    offer_type: str
    game_type: str
    title: str
    description: str
    points_value: int
    expires_at: datetime
    metadata: JsonObject
    #: The user's stage and tier when the offer was made: the context its outcome counts in.
    context_stage: str | None = None
    context_tier: str | None = None


@dataclass(frozen=True)
class SegmentQuery:
    """A validated page request of segment members; None means "any" (or "from the start")."""

    stage: str | None
    tier: str | None
    min_churn_risk: int | None
    after: str | None
    limit: int


@dataclass(frozen=True)
class SegmentMember:
    """A user's segments as the analytics job last stored them."""

    external_id: str
    lifecycle_stage: str
    engagement_tier: str
    engagement_score: float
    churn_risk_score: int
    last_seen_at: datetime
    computed_at: datetime


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    partner_id: str
    partner_name: str
    environment: Environment
    kind: KeyKind
    display_prefix: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class PresentedKey:
    """What a call needs of the key it presents: whose it is, what it may do, whether it
    still may."""

    partner_id: str
    environment: Environment
    kind: KeyKind
    revoked: bool


def utc_now() -> datetime:
    """The service clock: UTC, whole seconds (the API's timestamp resolution)."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class RecommendationView:
    priority: int
    name: str
    reason: str


@dataclass(frozen=True)
class StageTransitionView:
    from_stage: str
    to_stage: str
    at: datetime


def external_id_digest(external_id: str) -> str:
    """How an erased user's id is kept on the suppression list and in the erasure record:
    SHA-256, hex. The id itself is what the partner asked us to forget."""
    return hashlib.sha256(external_id.encode()).hexdigest()


class SuppressedExternalIds(Exception):
    """Storage refused to create profiles for ids on the tenant's suppression list. Whatever
    the refused call had written is gone again, so the transaction may go on without them."""

    def __init__(self, external_ids: frozenset[str]) -> None:
        super().__init__(f"{len(external_ids)} suppressed external id(s)")
        self.external_ids = external_ids


class WebhookEvent(StrEnum):
    """What a webhook may subscribe to: the moments a partner acts on."""

    STAGE_CHANGED = "user.stage_changed"
    OFFER_CREATED = "offer.created"
    OFFER_CLAIMED = "offer.claimed"
    OFFER_EXPIRED = "offer.expired"


class WebhookStatus(StrEnum):
    ENABLED = "enabled"
    #: A delivery was answered 410 Gone: the partner asked us to stop.
    DISABLED = "disabled"
    DELETED = "deleted"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class StageChange:
    """A user's move from one lifecycle stage to another, with the segments it came with."""

    external_id: str
    from_stage: str
    to_stage: str
    at: datetime
    engagement_tier: str
    engagement_score: float
    churn_risk_score: int


@dataclass(frozen=True)
class Announcement:
    """A change worth a webhook message, written in the transaction that makes the change:
    the user it is about (so an erasure can drop it) and what happened, as of when."""

    event: WebhookEvent
    user_id: str
    occurred_at: datetime
    subject: OfferRecord | StageChange


@dataclass(frozen=True)
class WebhookRecord:
    id: str
    url: str
    events: tuple[WebhookEvent, ...]
    description: str
    status: WebhookStatus
    created_at: datetime
    #: `whsec_…`: what the partner verifies signatures with.
    secret: str


@dataclass(frozen=True)
class DeliveryRecord:
    """One message to a webhook and where its delivery stands."""

    message_id: str
    event: WebhookEvent
    attempts: int
    status: DeliveryStatus
    last_response_status: int | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class DueMessage:
    """A message claimed for one delivery attempt, with what the attempt needs."""

    tenant: Tenant
    message_id: str
    webhook_id: str
    url: str
    secret: str
    #: This attempt's number, from 1.
    attempt: int
    announcement: Announcement
