"""The tables.

Every tenant-owned table leads with (partner_id, environment): its primary key, its unique
indexes, and its foreign keys to `users`. That keeps a tenant's rows together and lets a
sharded PostgreSQL (Citus) distribute every table by `partner_id` (docs/scaling.md).
`partners` and `api_keys` are looked up before the tenant is known and stay global.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from journeys.storage.types import UTCDateTime, json_type

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

UUID = String(36)
ENVIRONMENT = String(4)
TENANT = ("partner_id", "environment")


def _owned_by_user() -> ForeignKeyConstraint:
    """A row of one user: the reference carries the tenant, as the user's key does."""
    return ForeignKeyConstraint(
        [*TENANT, "user_id"], ["users.partner_id", "users.environment", "users.id"]
    )


partners = Table(
    "partners",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("partner_id", UUID, ForeignKey("partners.id"), nullable=False),
    Column("environment", ENVIRONMENT, nullable=False),
    # `public` (pk_…) or `secret` (sk_…).
    Column("kind", String(8), nullable=False, server_default="public"),
    Column("key_digest", String(64), nullable=False, unique=True),
    Column("display_prefix", String(16), nullable=False, index=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
)

users = Table(
    "users",
    metadata,
    Column("id", UUID, nullable=False),
    Column("partner_id", UUID, ForeignKey("partners.id"), nullable=False),
    Column("environment", ENVIRONMENT, nullable=False),
    Column("external_id", String(128), nullable=False),
    Column("display_name", String(200), nullable=False, default=""),
    Column("email", String(254), nullable=False, default=""),
    Column("phone", String(20), nullable=False, default=""),
    Column("country", String(2), nullable=False, default=""),
    Column("device", String(16), nullable=False, default=""),
    Column("source", String(100), nullable=False, default=""),
    Column("tags", json_type(), nullable=False),
    Column("metadata", json_type(), nullable=False),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    # All-time counters, maintained by every accepted event so a read never scans events.
    Column("total_events", Integer, nullable=False, server_default="0"),
    Column("total_plays", Integer, nullable=False, server_default="0"),
    Column("won_plays", Integer, nullable=False, server_default="0"),
    # Segments as the analytics job last computed them (reads compute them live).
    Column("segment_stage", String(16), nullable=True),
    Column("segment_tier", String(16), nullable=True),
    Column("segment_engagement_score", Float, nullable=True),
    Column("segment_churn_risk", Integer, nullable=True),
    Column("segments_computed_at", UTCDateTime(), nullable=True),
    # The "as of" instant of the first analytics run that classified the user (from migration
    # 0007 on): the start of the week the offer report's uplift measures.
    Column("first_classified_at", UTCDateTime(), nullable=True),
    # When the analytics job must recompute the user next (`rules/due.py`), written with the
    # segments; `domain.ANALYTICS_DUE_NOW` once new data arrives (set by the writes of that
    # data) and for a profile no run has classified (migration 0010's server default); null
    # when nothing can change without new data. A run reads `analytics_due_at <= as_of`:
    # one range of the index below.
    Column("analytics_due_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint(*TENANT, "id"),
    UniqueConstraint(*TENANT, "external_id"),
    # Segment members (GET /users) page by externalId within one stage or tier: a page is a
    # range of one of these (or, unfiltered, of the unique key above).
    Index(None, *TENANT, "segment_stage", "external_id"),
    Index(None, *TENANT, "segment_tier", "external_id"),
    # The incremental run's scan, keyset-paged by (due, id).
    Index(None, *TENANT, "analytics_due_at", "id"),
)

offers = Table(
    "offers",
    metadata,
    Column("id", UUID, nullable=False),
    Column("partner_id", UUID, ForeignKey("partners.id"), nullable=False),
    Column("environment", ENVIRONMENT, nullable=False),
    Column("user_id", UUID, nullable=False),
    Column("offer_type", String(64), nullable=False),
    Column("game_type", String(64), nullable=False),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("points_value", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("claimed_at", UTCDateTime(), nullable=True),
    Column("metadata", json_type(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    # The context the offer was made in (the user's stage and tier then): what its outcome
    # counts towards in `offer_outcomes`. Null for offers made before migration 0007.
    Column("context_stage", String(16), nullable=True),
    Column("context_tier", String(16), nullable=True),
    PrimaryKeyConstraint(*TENANT, "id"),
    _owned_by_user(),
    # A user's active, unexpired offers: every condition of the read is in the index.
    Index(None, *TENANT, "user_id", "status", "expires_at"),
    # The database itself guarantees a user never holds two active offers of one type.
    Index(
        "uq_offers_active_type",
        *TENANT,
        "user_id",
        "offer_type",
        unique=True,
        sqlite_where=text("status = 'active'"),
        postgresql_where=text("status = 'active'"),
    ),
    # The job's expiry sweep, tenant by tenant.
    Index(None, *TENANT, "status", "expires_at"),
)

# What the learning offer engine knows: per offer type and context (stage and tier when the
# offer was made), how many offers were claimed before expiry and how many expired unclaimed,
# and the same outcomes weighed by recency, pre-scaled (`rules/recency.py`: each is stored as
# `scaled(instant it happened)`, so the sums only ever add). Kept up to date by the claim and
# the expiry sweep, in their transactions. Aggregates, about no one user: erasure leaves them.
offer_outcomes = Table(
    "offer_outcomes",
    metadata,
    Column("partner_id", UUID, ForeignKey("partners.id"), nullable=False),
    Column("environment", ENVIRONMENT, nullable=False),
    Column("offer_type", String(64), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("tier", String(16), nullable=False),
    Column("successes", Integer, nullable=False, server_default="0"),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("successes_scaled", Float, nullable=False, server_default="0"),
    Column("failures_scaled", Float, nullable=False, server_default="0"),
    PrimaryKeyConstraint(*TENANT, "offer_type", "stage", "tier"),
)

# A tenant's holdout share (users who get no offers, to measure what offers do); a tenant
# without a row has the documented default.
offer_holdouts = Table(
    "offer_holdouts",
    metadata,
    Column("partner_id", UUID, ForeignKey("partners.id"), nullable=False),
    Column("environment", ENVIRONMENT, nullable=False),
    Column("share", Float, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint(*TENANT),
)

# SQLite only aliases rowid (its cheap autoincrement) for a column typed exactly INTEGER.
SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")

# On PostgreSQL, events are range-partitioned by `occurred_at` month (storage/partitions.py),
# and a partitioned table's primary key must hold the partition key: there it is
# (partner_id, environment, occurred_at, seq), created by migration 0005. SQLite keeps `seq`
# as its rowid. Either way `seq` is unique and gives insertion order (timeline ties).
events = Table(
    "events",
    metadata,
    Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
    Column("id", UUID, nullable=False),
    Column("partner_id", UUID, ForeignKey("partners.id"), nullable=False),
    Column("environment", ENVIRONMENT, nullable=False),
    Column("user_id", UUID, nullable=False),
    Column("category", String(16), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("points", Integer, nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("message_id", String(100), nullable=True),
    Column("metadata", json_type(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    _owned_by_user(),
    # A user's timeline, the partial days at the edges of the activity windows, and the
    # original of a repeated messageId (`message_ids` holds its user and occurred_at).
    Index(None, *TENANT, "user_id", "occurred_at", "seq"),
)

#: An event row as the bulk paths write it: every column but `seq`, which the database assigns.
EVENT_COLUMNS = tuple(column.name for column in events.columns if column.name != "seq")

# Idempotency of ingestion: a messageId is stored once per tenant, forever. A table of its own
# because on PostgreSQL a unique index on the partitioned events would have to include
# `occurred_at`, and a repeat may carry another `occurred_at` than its original.
message_ids = Table(
    "message_ids",
    metadata,
    Column("partner_id", UUID, ForeignKey("partners.id"), nullable=False),
    Column("environment", ENVIRONMENT, nullable=False),
    Column("message_id", String(100), nullable=False),
    # Where the original is: one probe of the events' user index, in one month's partition.
    Column("event_id", UUID, nullable=False),
    Column("user_id", UUID, nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint(*TENANT, "message_id"),
)

# Per user and UTC day: turns 7- and 30-day windows into a few dozen rows to add up, and
# counts active days for churn risk.
user_daily_activity = Table(
    "user_daily_activity",
    metadata,
    Column("partner_id", UUID, nullable=False),
    Column("environment", ENVIRONMENT, nullable=False),
    Column("user_id", UUID, nullable=False),
    Column("day", Date, nullable=False),
    Column("events", Integer, nullable=False),
    Column("plays", Integer, nullable=False),
    Column("points_earned", BigInteger, nullable=False),
    PrimaryKeyConstraint(*TENANT, "user_id", "day"),
    _owned_by_user(),
)

user_campaigns = Table(
    "user_campaigns",
    metadata,
    Column("partner_id", UUID, nullable=False),
    Column("environment", ENVIRONMENT, nullable=False),
    Column("user_id", UUID, nullable=False),
    Column("campaign_id", String(200), nullable=False),
    PrimaryKeyConstraint(*TENANT, "user_id", "campaign_id"),
    _owned_by_user(),
)

# `seq` is SQLite's rowid; PostgreSQL's primary key is (partner_id, environment, seq)
# (migration 0005), as for events.
stage_transitions = Table(
    "stage_transitions",
    metadata,
    Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
    Column("partner_id", UUID, ForeignKey("partners.id"), nullable=False),
    Column("environment", ENVIRONMENT, nullable=False),
    Column("user_id", UUID, nullable=False),
    Column("from_stage", String(16), nullable=False),
    Column("to_stage", String(16), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    _owned_by_user(),
    Index(None, *TENANT, "user_id", "at"),
)

catalogue_overrides = Table(
    "catalogue_overrides",
    metadata,
    Column("partner_id", UUID, ForeignKey("partners.id"), primary_key=True),
    Column("environment", ENVIRONMENT, primary_key=True),
    Column("overrides", json_type(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

analytics_runs = Table(
    "analytics_runs",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("as_of", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("status", String(16), nullable=False),
    Column("users_scanned", Integer, nullable=False, server_default="0"),
    Column("transitions", Integer, nullable=False, server_default="0"),
    Column("offers_created", Integer, nullable=False, server_default="0"),
    Column("offers_expired", Integer, nullable=False, server_default="0"),
    # From migration 0010: `full` (every user recomputed) or `incremental` (the due ones; a
    # tenant whose catalogue, holdout or rules changed is still recomputed whole).
    Column("mode", String(16), nullable=False, server_default="full"),
    # Of the users scanned, those recomputed because new data arrived (or never classified).
    Column("users_with_new_data", Integer, nullable=False, server_default="0"),
    Column("tenants_full", Integer, nullable=False, server_default="0"),
)

# Per tenant, what its users' stored segments, offers and due times were last computed by
# (`fingerprint`: catalogue, holdout share, rules version) and the instant of the last run
# that finished the tenant: every classified user's segments hold as of it, recomputed then
# or provably unchanged (`confirmed_as_of`, the members' `computedAt`).
analytics_tenants = Table(
    "analytics_tenants",
    metadata,
    Column("partner_id", UUID, ForeignKey("partners.id"), nullable=False),
    Column("environment", ENVIRONMENT, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("confirmed_as_of", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint(*TENANT),
)

# Erased ids that may not come back (DELETE /users/{externalId}?suppress=true), as SHA-256
# digests only: the id itself is what the partner asked us to forget.
suppressions = Table(
    "suppressions",
    metadata,
    Column("partner_id", UUID, ForeignKey("partners.id"), nullable=False),
    Column("environment", ENVIRONMENT, nullable=False),
    Column("external_id_digest", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint(*TENANT, "external_id_digest"),
)

# The record that an erasure happened and what it removed, never whom it was about.
erasures = Table(
    "erasures",
    metadata,
    Column("id", UUID, nullable=False),
    Column("partner_id", UUID, ForeignKey("partners.id"), nullable=False),
    Column("environment", ENVIRONMENT, nullable=False),
    Column("external_id_digest", String(64), nullable=False),
    Column("erased_at", UTCDateTime(), nullable=False),
    Column("rows_removed", Integer, nullable=False),
    Column("suppressed", Boolean, nullable=False),
    PrimaryKeyConstraint(*TENANT, "id"),
    Index(None, *TENANT, "erased_at"),
)

# Where a tenant wants its events posted. The signing secret is kept as issued: signing
# needs the key itself, so it is as sensitive as the database (docs/security.md).
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", UUID, nullable=False),
    Column("partner_id", UUID, ForeignKey("partners.id"), nullable=False),
    Column("environment", ENVIRONMENT, nullable=False),
    Column("url", String(2048), nullable=False),
    # The subscribed event types, comma-separated.
    Column("events", String(200), nullable=False),
    Column("description", String(500), nullable=False),
    Column("secret", String(64), nullable=False),
    Column("status", String(8), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint(*TENANT, "id"),
    Index(None, *TENANT, "status"),
)

# The transactional outbox: one row per (change, subscribed webhook), written in the
# transaction of the change, and the state of its delivery. `subject` is the announced
# offer or stage change as it was then; each attempt signs the same body rendered from it.
webhook_messages = Table(
    "webhook_messages",
    metadata,
    Column("id", String(40), nullable=False),
    Column("partner_id", UUID, ForeignKey("partners.id"), nullable=False),
    Column("environment", ENVIRONMENT, nullable=False),
    Column("webhook_id", UUID, nullable=False),
    Column("user_id", UUID, nullable=False),
    Column("event", String(32), nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("subject", json_type(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("last_attempt_at", UTCDateTime(), nullable=True),
    Column("last_response_status", Integer, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint(*TENANT, "id"),
    ForeignKeyConstraint(
        [*TENANT, "webhook_id"],
        ["webhooks.partner_id", "webhooks.environment", "webhooks.id"],
    ),
    _owned_by_user(),
    # The dispatcher's scan for due messages: across tenants for the tenants that have some,
    # then within one (the tenant columns are in the index, so filtering reads no rows).
    Index("ix_webhook_messages_due", "status", "next_attempt_at", *TENANT),
    # A webhook's delivery log, newest first.
    Index("ix_webhook_messages_tenant_log", *TENANT, "webhook_id", "created_at"),
    # Erasure finds a user's messages.
    Index(None, *TENANT, "user_id"),
)

# A lease, not a transaction lock: the job commits chunk by chunk and must not block writers,
# yet two processes must never generate offers at once.
job_leases = Table(
    "job_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)
