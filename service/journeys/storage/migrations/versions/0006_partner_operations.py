"""partner operations: secret keys, segment member indexes, suppressions and erasures

Keys gain their kind (every existing key is public). Users gain the two indexes GET /users
pages through. Erasure writes an audit row per erased user and, when asked, keeps the id's
digest on the tenant's suppression list.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from journeys.storage.types import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT = ["partner_id", "environment"]


def upgrade() -> None:
    op.add_column(
        "api_keys", sa.Column("kind", sa.String(8), nullable=False, server_default="public")
    )
    for column in ("segment_stage", "segment_tier"):
        op.create_index(
            op.f(f"ix_users_partner_id_environment_{column}_external_id"),
            "users",
            [*TENANT, column, "external_id"],
        )
    op.create_table(
        "suppressions",
        sa.Column("partner_id", sa.String(36), nullable=False),
        sa.Column("environment", sa.String(4), nullable=False),
        sa.Column("external_id_digest", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_suppressions_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint(*TENANT, "external_id_digest", name=op.f("pk_suppressions")),
    )
    op.create_table(
        "erasures",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("partner_id", sa.String(36), nullable=False),
        sa.Column("environment", sa.String(4), nullable=False),
        sa.Column("external_id_digest", sa.String(64), nullable=False),
        sa.Column("erased_at", UTCDateTime(), nullable=False),
        sa.Column("rows_removed", sa.Integer(), nullable=False),
        sa.Column("suppressed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_erasures_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint(*TENANT, "id", name=op.f("pk_erasures")),
    )
    op.create_index(
        op.f("ix_erasures_partner_id_environment_erased_at"),
        "erasures",
        [*TENANT, "erased_at"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_erasures_partner_id_environment_erased_at"), table_name="erasures")
    op.drop_table("erasures")
    op.drop_table("suppressions")
    for column in ("segment_tier", "segment_stage"):
        op.drop_index(
            op.f(f"ix_users_partner_id_environment_{column}_external_id"), table_name="users"
        )
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("kind")
