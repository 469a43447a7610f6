"""The tables. Every tenant-owned table leads with (partner_id, environment)."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
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
    Column("key_digest", String(64), nullable=False, unique=True),
    Column("display_prefix", String(16), nullable=False, index=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
)

users = Table(
    "users",
    metadata,
    Column("id", UUID, primary_key=True),
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
    UniqueConstraint("partner_id", "environment", "external_id"),
)

offers = Table(
    "offers",
    metadata,
    Column("id", UUID, primary_key=True),
    Column("partner_id", UUID, ForeignKey("partners.id"), nullable=False),
    Column("environment", ENVIRONMENT, nullable=False),
    Column("user_id", UUID, ForeignKey("users.id"), nullable=False),
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
    Index(None, "partner_id", "environment", "user_id", "status"),
)
