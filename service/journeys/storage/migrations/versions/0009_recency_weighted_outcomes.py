"""recency-weighted offer outcomes

`offer_outcomes` gains the successes and failures weighed by recency, pre-scaled (each outcome
at instant t stored as 2 ** ((t - 2026-01-01) / 7 days), see `rules/recency.py`). The counts
already there are weighed as if they had happened when this migration runs: their instants
were not kept.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here as they were when this migration was written.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
HALF_LIFE = timedelta(days=7)


def upgrade() -> None:
    op.add_column(
        "offer_outcomes",
        sa.Column("successes_scaled", sa.Float(), nullable=False, server_default="0"),
    )
    op.add_column(
        "offer_outcomes",
        sa.Column("failures_scaled", sa.Float(), nullable=False, server_default="0"),
    )
    weight = float(2.0 ** ((datetime.now(UTC) - EPOCH) / HALF_LIFE))
    op.execute(
        sa.text(
            "UPDATE offer_outcomes SET successes_scaled = successes * :weight, "
            "failures_scaled = failures * :weight"
        ).bindparams(weight=weight)
    )


def downgrade() -> None:
    with op.batch_alter_table("offer_outcomes") as batch:
        batch.drop_column("failures_scaled")
        batch.drop_column("successes_scaled")
