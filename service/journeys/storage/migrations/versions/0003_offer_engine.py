"""offer engine: stored segments, transitions, catalogue overrides, job runs and lease

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from journeys.storage.schema import SEQUENCE
from journeys.storage.types import UTCDateTime, json_type

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("segment_stage", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("segment_tier", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("segment_engagement_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("segment_churn_risk", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("segments_computed_at", UTCDateTime(), nullable=True))
    op.create_index(
        "uq_offers_active_type",
        "offers",
        ["user_id", "offer_type"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index(op.f("ix_offers_status_expires_at"), "offers", ["status", "expires_at"])
    op.create_table(
        "stage_transitions",
        sa.Column("seq", SEQUENCE, autoincrement=True, nullable=False),
        sa.Column("partner_id", sa.String(length=36), nullable=False),
        sa.Column("environment", sa.String(length=4), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("from_stage", sa.String(length=16), nullable=False),
        sa.Column("to_stage", sa.String(length=16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_stage_transitions_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_stage_transitions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_stage_transitions")),
    )
    op.create_index(
        op.f("ix_stage_transitions_user_id_at"), "stage_transitions", ["user_id", "at"]
    )
    op.create_table(
        "catalogue_overrides",
        sa.Column("partner_id", sa.String(length=36), nullable=False),
        sa.Column("environment", sa.String(length=4), nullable=False),
        sa.Column("overrides", json_type(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_catalogue_overrides_partner_id_partners"),
        ),
        sa.PrimaryKeyConstraint("partner_id", "environment", name=op.f("pk_catalogue_overrides")),
    )
    op.create_table(
        "analytics_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("as_of", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("users_scanned", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("transitions", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("offers_created", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("offers_expired", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_runs")),
    )
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_leases")),
    )


def downgrade() -> None:
    op.drop_table("job_leases")
    op.drop_table("analytics_runs")
    op.drop_table("catalogue_overrides")
    op.drop_table("stage_transitions")
    op.drop_index(op.f("ix_offers_status_expires_at"), table_name="offers")
    op.drop_index("uq_offers_active_type", table_name="offers")
    with op.batch_alter_table("users") as batch:
        for name in (
            "segments_computed_at",
            "segment_churn_risk",
            "segment_engagement_score",
            "segment_tier",
            "segment_stage",
        ):
            batch.drop_column(name)
