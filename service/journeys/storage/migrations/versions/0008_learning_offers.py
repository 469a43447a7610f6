"""learning offers: each offer's context, outcome counts per context, holdout shares

Offers record the stage and tier they were made in. `offer_outcomes` counts, per tenant,
offer type and context, the offers claimed before expiry and those expired unclaimed; it is
maintained by the claim and the expiry sweep. `offer_holdouts` holds a tenant's holdout share
when it is not the default. Users record when a run first classified them (the offer report's
uplift week); users classified before this migration have no such instant and are left out of
it. Offers made before this migration carry no context and count for nothing.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from journeys.storage.types import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT = ["partner_id", "environment"]


def upgrade() -> None:
    op.add_column("offers", sa.Column("context_stage", sa.String(16), nullable=True))
    op.add_column("offers", sa.Column("context_tier", sa.String(16), nullable=True))
    op.add_column("users", sa.Column("first_classified_at", UTCDateTime(), nullable=True))
    op.create_table(
        "offer_outcomes",
        sa.Column("partner_id", sa.String(36), nullable=False),
        sa.Column("environment", sa.String(4), nullable=False),
        sa.Column("offer_type", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("successes", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_offer_outcomes_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint(
            *TENANT, "offer_type", "stage", "tier", name=op.f("pk_offer_outcomes")
        ),
    )
    op.create_table(
        "offer_holdouts",
        sa.Column("partner_id", sa.String(36), nullable=False),
        sa.Column("environment", sa.String(4), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_offer_holdouts_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint(*TENANT, name=op.f("pk_offer_holdouts")),
    )


def downgrade() -> None:
    op.drop_table("offer_holdouts")
    op.drop_table("offer_outcomes")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("first_classified_at")
    with op.batch_alter_table("offers") as batch:
        batch.drop_column("context_tier")
        batch.drop_column("context_stage")
