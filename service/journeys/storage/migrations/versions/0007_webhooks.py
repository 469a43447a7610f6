"""webhooks: the tenants' endpoints and the transactional outbox of their messages

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from journeys.storage.types import UTCDateTime, json_type

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT = ["partner_id", "environment"]


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("partner_id", sa.String(36), nullable=False),
        sa.Column("environment", sa.String(4), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("events", sa.String(200), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_webhooks_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint(*TENANT, "id", name=op.f("pk_webhooks")),
    )
    op.create_index(
        op.f("ix_webhooks_partner_id_environment_status"), "webhooks", [*TENANT, "status"]
    )
    op.create_table(
        "webhook_messages",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("partner_id", sa.String(36), nullable=False),
        sa.Column("environment", sa.String(4), nullable=False),
        sa.Column("webhook_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("subject", json_type(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("last_response_status", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_webhook_messages_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            [*TENANT, "webhook_id"],
            ["webhooks.partner_id", "webhooks.environment", "webhooks.id"],
            name=op.f("fk_webhook_messages_partner_id_webhooks"),
        ),
        sa.ForeignKeyConstraint(
            [*TENANT, "user_id"],
            ["users.partner_id", "users.environment", "users.id"],
            name=op.f("fk_webhook_messages_partner_id_users"),
        ),
        sa.PrimaryKeyConstraint(*TENANT, "id", name=op.f("pk_webhook_messages")),
    )
    op.create_index(
        "ix_webhook_messages_due", "webhook_messages", ["status", "next_attempt_at", *TENANT]
    )
    op.create_index(
        "ix_webhook_messages_tenant_log", "webhook_messages", [*TENANT, "webhook_id", "created_at"]
    )
    op.create_index(
        op.f("ix_webhook_messages_partner_id_environment_user_id"),
        "webhook_messages",
        [*TENANT, "user_id"],
    )


def downgrade() -> None:
    op.drop_table("webhook_messages")
    op.drop_index(op.f("ix_webhooks_partner_id_environment_status"), table_name="webhooks")
    op.drop_table("webhooks")
