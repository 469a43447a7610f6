"""The `journeys` command line, run as a partner's operator would."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
from pathlib import Path

import pytest
from journeys.domain import EventInput, UserChanges
from journeys.storage.database import Database
from journeys.usecases import Journeys
from journeys.usecases.auth import Caller
from sqlalchemy.engine import make_url

from scripts.stack import journeys, migrate, sql

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


def _seed_user(env: dict[str, str], partner: str, external_id: str) -> None:
    key = journeys(
        "keys", "create", "--partner", partner, "--environment", "test", env=env
    ).stdout.splitlines()[-1]

    async def seed() -> None:
        async with Database(env["JOURNEYS_DATABASE_URL"]) as database:
            api = Journeys(database)
            await api.track_user(Caller(key), UserChanges(external_id=external_id))
            await api.track_event(Caller(key), EventInput(external_id, "GAME_PLAY", "spin", 5))

    asyncio.run(seed())


def test_privacy_export_writes_the_users_data_as_json(env: dict[str, str]) -> None:
    _seed_user(env, "acme", "user-1")

    exported = journeys(
        "privacy", "export", "--partner", "acme", "--environment", "test", "user-1", env=env
    )

    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert list(data) == ["profile", "events", "offers", "journey"]
    assert data["profile"]["externalId"] == "user-1"
    assert [event["eventType"] for event in data["events"]] == ["spin"]


def test_privacy_delete_erases_and_suppresses(env: dict[str, str]) -> None:
    _seed_user(env, "acme", "user-1")
    user = ("--partner", "acme", "--environment", "test")

    erased = journeys("privacy", "delete", *user, "--suppress", "user-1", env=env)
    again = journeys("privacy", "delete", *user, "user-1", env=env)
    export = journeys("privacy", "export", *user, "user-1", env=env)
    live = journeys(
        "privacy", "delete", "--partner", "acme", "--environment", "live", "user-1", env=env
    )

    assert erased.returncode == 0, erased.stderr
    # Rows removed: the profile, its event and its day.
    assert re.fullmatch(
        r"erased user 'user-1' at \S+Z: 3 rows removed, id suppressed\n", erased.stdout
    )
    assert (again.returncode, again.stderr) == (1, "error: User not found\n")
    assert (export.returncode, export.stderr, export.stdout) == (1, "error: User not found\n", "")
    assert (live.returncode, live.stderr) == (1, "error: User not found\n")
    assert sql(env["JOURNEYS_DATABASE_URL"], "SELECT count(*) FROM suppressions") == [(1,)]


def test_privacy_commands_refuse_an_unknown_partner(env: dict[str, str]) -> None:
    for action in ("delete", "export"):
        result = journeys(
            "privacy", action, "--partner", "nobody", "--environment", "test", "user-1", env=env
        )

        assert (result.returncode, result.stderr) == (1, "error: Partner not found\n")
