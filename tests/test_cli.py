"""The `journeys` command line, run as a partner's operator would."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from scripts.stack import journeys, migrate

KEY = re.compile(r"pk_(test|live)_[0-9a-f]{32}")
SECRET_KEY = re.compile(r"sk_(test|live)_[0-9a-f]{32}")


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    migrate(database_url)
    return {**os.environ, "JOURNEYS_DATABASE_URL": database_url}


def test_create_prints_the_key_alone_on_the_last_line(env: dict[str, str]) -> None:
    test = journeys("keys", "create", "--partner", "acme", "--environment", "test", env=env)
    live = journeys("keys", "create", "--partner", "acme", "--environment", "live", env=env)

    assert test.returncode == live.returncode == 0
    assert KEY.fullmatch(test.stdout.splitlines()[-1])
    assert test.stdout.splitlines()[-1].startswith("pk_test_")
    assert live.stdout.splitlines()[-1].startswith("pk_live_")


def test_create_secret_prints_a_secret_key_and_list_shows_its_kind(env: dict[str, str]) -> None:
    secret = journeys(
        "keys", "create", "--partner", "acme", "--environment", "live", "--secret", env=env
    )
    public = journeys("keys", "create", "--partner", "acme", "--environment", "live", env=env)

    assert secret.returncode == public.returncode == 0, secret.stderr
    secret_key = secret.stdout.splitlines()[-1]
    assert SECRET_KEY.fullmatch(secret_key)
    assert secret_key.startswith("sk_live_")
    rows = {
        line.split()[0].rstrip("…"): line.split()
        for line in journeys("keys", "list", env=env).stdout.splitlines()[1:]
    }
    assert rows[secret_key[:16]][1:3] == ["LIVE", "secret"]
    assert rows[public.stdout.splitlines()[-1][:16]][1:3] == ["LIVE", "public"]
    assert rows[secret_key[:16]][3] == "active"
    assert journeys("keys", "revoke", secret_key, env=env).returncode == 0
    revoked = [
        line.split()
        for line in journeys("keys", "list", env=env).stdout.splitlines()
        if line.startswith(secret_key[:16])
    ]
    assert [row[1:4] for row in revoked] == [["LIVE", "secret", "revoked"]]


def test_list_shows_prefixes_never_keys(env: dict[str, str]) -> None:
    key = journeys("keys", "create", "--partner", "acme", "--environment", "test", env=env)
    full = key.stdout.splitlines()[-1]

    listing = journeys("keys", "list", env=env)

    assert listing.returncode == 0
    assert full[:16] in listing.stdout
    assert full not in listing.stdout
    assert "acme" in listing.stdout
    assert "active" in listing.stdout


def test_revoke_by_display_prefix(env: dict[str, str]) -> None:
    full = journeys(
        "keys", "create", "--partner", "acme", "--environment", "live", env=env
    ).stdout.splitlines()[-1]

    revoked = journeys("keys", "revoke", full[:16] + "…", env=env)
    again = journeys("keys", "revoke", full, env=env)

    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in journeys("keys", "list", env=env).stdout
    assert again.returncode == 1
    assert "no active key matches" in again.stderr


def test_revoke_rejects_something_that_is_not_a_key(env: dict[str, str]) -> None:
    result = journeys("keys", "revoke", "pk_", env=env)

    assert result.returncode == 2
    assert "full key or its display prefix" in result.stderr


@pytest.mark.sqlite_only  # reads the database's files
def test_the_database_holds_only_key_digests(env: dict[str, str]) -> None:
    full = journeys(
        "keys", "create", "--partner", "acme", "--environment", "test", env=env
    ).stdout.splitlines()[-1]

    database = Path(str(make_url(env["JOURNEYS_DATABASE_URL"]).database))
    raw = b"".join(path.read_bytes() for path in database.parent.glob(database.name + "*"))
    with sqlite3.connect(database) as db:
        stored = db.execute("SELECT key_digest, display_prefix FROM api_keys").fetchall()

    assert full.encode() not in raw
    assert full[16:].encode() not in raw, "not even the secret part"
    assert [(len(digest), prefix) for digest, prefix in stored] == [(64, full[:16])]


def test_migrate_is_idempotent(env: dict[str, str]) -> None:
    assert journeys("migrate", env=env).returncode == 0
    assert journeys("migrate", env=env).returncode == 0
