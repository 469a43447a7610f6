"""incremental analytics: each user's next due instant, each tenant's last computation

`users.analytics_due_at` says when the analytics job must recompute the user next
(`rules/due.py`); writers of new data set it to 1970-01-01 ("due now"), which is also its
server default, so every existing user is due on the first run after this upgrade. The index
(tenant, due, id) is the incremental run's scan. `analytics_tenants` records per tenant the
fingerprint (catalogue, holdout share, rules version) its users were last computed by and the
instant that run finished the tenant; no tenant has a row yet, so the first run after the
upgrade recomputes every tenant whole. `analytics_runs` records each run's mode and counts.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from journeys.storage.types import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT = ["partner_id", "environment"]

# "Due now" as each engine stores the UTC column (SQLite: naive UTC text, as SQLAlchemy writes
# it, so it compares as text with every bound instant), frozen as written.
_DUE_NOW = {
    "sqlite": "'1970-01-01 00:00:00.000000'",
    "postgresql": "'1970-01-01 00:00:00+00'",
}


def upgrade() -> None:
    due_now = _DUE_NOW[op.get_bind().dialect.name]
    op.add_column(
        "users",
        sa.Column("analytics_due_at", UTCDateTime(), nullable=True, server_default=sa.text(due_now)),
    )
    op.create_index(
        op.f("ix_users_partner_id_environment_analytics_due_at_id"),
        "users",
        [*TENANT, "analytics_due_at", "id"],
    )
    op.create_table(
        "analytics_tenants",
        sa.Column("partner_id", sa.String(36), nullable=False),
        sa.Column("environment", sa.String(4), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("confirmed_as_of", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_analytics_tenants_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint(*TENANT, name=op.f("pk_analytics_tenants")),
    )
    op.add_column(
        "analytics_runs",
        sa.Column("mode", sa.String(16), nullable=False, server_default="full"),
    )
    op.add_column(
        "analytics_runs",
        sa.Column("users_with_new_data", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "analytics_runs",
        sa.Column("tenants_full", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("analytics_runs") as batch:
        batch.drop_column("tenants_full")
        batch.drop_column("users_with_new_data")
        batch.drop_column("mode")
    op.drop_table("analytics_tenants")
    op.drop_index(op.f("ix_users_partner_id_environment_analytics_due_at_id"), table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("analytics_due_at")
