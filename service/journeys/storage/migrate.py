"""Schema migrations (Alembic), run by `journeys migrate` and before `journeys serve`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from journeys.storage.database import _ensure_parent_dir

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic interpolates %-signs in options; URL-encoded passwords contain them.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    _ensure_parent_dir(database_url)
    command.upgrade(alembic_config(database_url), "head")
