"""events, per-day activity, campaigns and profile counters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from journeys.storage.schema import SEQUENCE
from journeys.storage.types import UTCDateTime, json_type

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        for name in ("total_events", "total_plays", "won_plays"):
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "events",
        sa.Column("seq", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("partner_id", sa.String(length=36), nullable=False),
        sa.Column("environment", sa.String(length=4), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=True),
        sa.Column("metadata", json_type(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_events_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_events_user_id_users")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_events")),
        sa.UniqueConstraint("id", name=op.f("uq_events_id")),
        sa.UniqueConstraint(
            "partner_id",
            "environment",
            "message_id",
            name=op.f("uq_events_partner_id_environment_message_id"),
        ),
    )
    op.create_index(
        op.f("ix_events_user_id_occurred_at_seq"), "events", ["user_id", "occurred_at", "seq"]
    )
    op.create_table(
        "user_daily_activity",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("plays", sa.Integer(), nullable=False),
        sa.Column("points_earned", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_daily_activity_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "day", name=op.f("pk_user_daily_activity")),
    )
    op.create_table(
        "user_campaigns",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("campaign_id", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_campaigns_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "campaign_id", name=op.f("pk_user_campaigns")),
    )


def downgrade() -> None:
    op.drop_table("user_campaigns")
    op.drop_table("user_daily_activity")
    op.drop_table("events")
    with op.batch_alter_table("users") as batch:
        for name in ("won_plays", "total_plays", "total_events"):
            batch.drop_column(name)
