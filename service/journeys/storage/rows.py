"""Rows read back as the domain's records."""

from __future__ import annotations

from typing import Any

from journeys.domain import Environment, EventRecord, OfferRecord, UserRecord


def user_record(row: Any) -> UserRecord:
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
        total_events=row.total_events,
    )


def event_record(row: Any) -> EventRecord:
    return EventRecord(
        id=row.id,
        partner_id=row.partner_id,
        external_id=row.external_id,
        environment=Environment(row.environment),
        category=row.category,
        event_type=row.event_type,
        points=row.points,
        occurred_at=row.occurred_at,
        message_id=row.message_id or "",
        metadata=dict(row.metadata),
    )


def offer_record(row: Any) -> OfferRecord:
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
