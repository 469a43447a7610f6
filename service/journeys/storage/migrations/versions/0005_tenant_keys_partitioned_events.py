"""tenant-leading keys everywhere; messageIds in a table of their own; events partitioned by
month on PostgreSQL

Every primary key, unique index and reference to a user now leads with (partner_id,
environment), so the schema can be distributed by tenant (docs/scaling.md). The per-day and
campaign rows gain the tenant columns they lacked. Idempotency moves from a unique constraint
on events to `message_ids`, because on PostgreSQL events become range-partitioned by
`occurred_at` month, and a partitioned table's unique indexes must include the partition key.

Existing rows are copied over; on a large PostgreSQL database the events copy is the long part.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

from journeys.storage import partitions
from journeys.storage.types import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT = ["partner_id", "environment"]
USER_KEY = [*TENANT, "id"]
#: The tables whose rows belong to one user.
CHILDREN = ("offers", "events", "user_daily_activity", "user_campaigns", "stage_transitions")


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    _create_message_ids()
    for table in ("user_daily_activity", "user_campaigns"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("partner_id", sa.String(length=36), nullable=True))
            batch.add_column(sa.Column("environment", sa.String(length=4), nullable=True))
        op.execute(
            f"UPDATE {table} SET partner_id = users.partner_id, environment = users.environment "
            f"FROM users WHERE users.id = {table}.user_id"
        )
    if postgresql:  # they depend on the primary key about to change
        for table in CHILDREN:
            op.drop_constraint(f"fk_{table}_user_id_users", table, type_="foreignkey")
    # In place on PostgreSQL; SQLite copies the table (it cannot alter a primary key).
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("pk_users", type_="primary")
        batch.create_primary_key("pk_users", USER_KEY)

    with _child("offers", postgresql) as batch:
        batch.drop_index("uq_offers_active_type")
        batch.drop_constraint("pk_offers", type_="primary")
        batch.create_primary_key("pk_offers", [*TENANT, "id"])
        batch.create_index(
            "uq_offers_active_type",
            [*TENANT, "user_id", "offer_type"],
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )
    for table, key in (
        ("user_daily_activity", "day"),
        ("user_campaigns", "campaign_id"),
    ):
        with _child(table, postgresql) as batch:
            batch.alter_column("partner_id", existing_type=sa.String(length=36), nullable=False)
            batch.alter_column("environment", existing_type=sa.String(length=4), nullable=False)
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", [*TENANT, "user_id", key])
    with _child("stage_transitions", postgresql) as batch:
        batch.drop_index("ix_stage_transitions_user_id_at")
        batch.create_index(
            "ix_stage_transitions_partner_id_environment_user_id_at", [*TENANT, "user_id", "at"]
        )
        if postgresql:  # SQLite keeps seq as its rowid
            batch.drop_constraint("pk_stage_transitions", type_="primary")
            batch.create_primary_key("pk_stage_transitions", [*TENANT, "seq"])
    if postgresql:
        _partition_events()
    else:
        with _child("events", postgresql) as batch:
            batch.drop_index("ix_events_user_id_occurred_at_seq")
            batch.drop_constraint("uq_events_id", type_="unique")
            batch.drop_constraint("uq_events_partner_id_environment_message_id", type_="unique")
            _index_events(batch)


@contextmanager
def _child(table: str, postgresql: bool) -> Iterator[BatchOperations]:
    """Alters a table of per-user rows; its reference to the user now carries the tenant."""
    with op.batch_alter_table(table, recreate="auto" if postgresql else "always") as batch:
        if not postgresql:  # PostgreSQL's were dropped before the users' key changed
            batch.drop_constraint(f"fk_{table}_user_id_users", type_="foreignkey")
        yield batch
        batch.create_foreign_key(
            f"fk_{table}_partner_id_users", "users", [*TENANT, "user_id"], USER_KEY
        )


def _index_events(batch: BatchOperations) -> None:
    batch.create_index(
        "ix_events_partner_id_environment_user_id_occurred_at_seq",
        [*TENANT, "user_id", "occurred_at", "seq"],
    )


def _partition_events() -> None:
    """Rebuilds events as a partitioned table holding the same rows and the same sequence."""
    op.rename_table("events", "events_unpartitioned")
    for name, kind in (
        ("pk_events", "primary"),
        ("uq_events_id", "unique"),
        ("uq_events_partner_id_environment_message_id", "unique"),
        ("fk_events_partner_id_partners", "foreignkey"),
    ):
        op.drop_constraint(name, "events_unpartitioned", type_=kind)
    op.drop_index("ix_events_user_id_occurred_at_seq", table_name="events_unpartitioned")
    op.execute("ALTER SEQUENCE events_seq_seq OWNED BY NONE")
    op.execute(
        """CREATE TABLE events (
            seq BIGINT NOT NULL DEFAULT nextval('events_seq_seq'),
            id VARCHAR(36) NOT NULL,
            partner_id VARCHAR(36) NOT NULL,
            environment VARCHAR(4) NOT NULL,
            user_id VARCHAR(36) NOT NULL,
            category VARCHAR(16) NOT NULL,
            event_type VARCHAR(64) NOT NULL,
            points INTEGER NOT NULL,
            occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
            message_id VARCHAR(100),
            metadata JSONB NOT NULL,
            created_at TIMESTAMP WITH TIME ZONE NOT NULL,
            CONSTRAINT pk_events PRIMARY KEY (partner_id, environment, occurred_at, seq),
            CONSTRAINT fk_events_partner_id_partners FOREIGN KEY (partner_id)
                REFERENCES partners (id)
        ) PARTITION BY RANGE (occurred_at)"""
    )
    op.execute("ALTER SEQUENCE events_seq_seq OWNED BY events.seq")
    this_month = partitions.Month.of(datetime.now(UTC).date())
    # Last month too: the 30-day window reaches into it.
    first = partitions.Month.of(this_month.start.replace(day=1) - timedelta(days=1))
    for statement in partitions.create_history_statements(first):
        op.execute(statement)
    for month in [first, *partitions.months_missing({first.table}, this_month.start)]:
        for statement in partitions.create_month_statements(month):
            op.execute(statement)
    op.execute(
        "INSERT INTO events SELECT seq, id, partner_id, environment, user_id, category, "
        "event_type, points, occurred_at, message_id, metadata, created_at "
        "FROM events_unpartitioned"
    )
    op.drop_table("events_unpartitioned")
    with op.batch_alter_table("events") as batch:
        _index_events(batch)
        batch.create_foreign_key(
            "fk_events_partner_id_users", "users", [*TENANT, "user_id"], USER_KEY
        )


def _create_message_ids() -> None:
    op.create_table(
        "message_ids",
        sa.Column("partner_id", sa.String(length=36), nullable=False),
        sa.Column("environment", sa.String(length=4), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_message_ids_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint(*TENANT, "message_id", name=op.f("pk_message_ids")),
    )
    op.execute(
        "INSERT INTO message_ids "
        "(partner_id, environment, message_id, event_id, user_id, occurred_at) "
        "SELECT partner_id, environment, message_id, id, user_id, occurred_at FROM events "
        "WHERE message_id IS NOT NULL"
    )


def downgrade() -> None:
    raise NotImplementedError("0005 is one-way: restore a backup taken before upgrading")
