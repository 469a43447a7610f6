"""offers: indexes that match their queries

Without statistics SQLite chose (status, expires_at) for a single user's active offers and
scanned every active offer of every user. A user's offers are now read through an index
holding every condition of that read (so no planner prefers another), and the expiry sweep's
index leads with the tenant.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(op.f("ix_offers_partner_id_environment_user_id_status"), table_name="offers")
    op.create_index(
        op.f("ix_offers_partner_id_environment_user_id_status_expires_at"),
        "offers",
        ["partner_id", "environment", "user_id", "status", "expires_at"],
    )
    op.drop_index(op.f("ix_offers_status_expires_at"), table_name="offers")
    op.create_index(
        op.f("ix_offers_partner_id_environment_status_expires_at"),
        "offers",
        ["partner_id", "environment", "status", "expires_at"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_offers_partner_id_environment_status_expires_at"), table_name="offers")
    op.create_index(op.f("ix_offers_status_expires_at"), "offers", ["status", "expires_at"])
    op.drop_index(
        op.f("ix_offers_partner_id_environment_user_id_status_expires_at"), table_name="offers"
    )
    op.create_index(
        op.f("ix_offers_partner_id_environment_user_id_status"),
        "offers",
        ["partner_id", "environment", "user_id", "status"],
    )
