"""The tenant scope audit: every statement the service runs on a tenant's table carries the
tenant predicate (partner and environment), on both engines.

Every use case runs in-process against a real database with a statement listener; each SQL
text that names a tenant table must constrain both tenant columns (SELECT, UPDATE, DELETE) or
write both (INSERT). The only statements allowed without it are the named cross-tenant reads
of the analytics job, which find the tenants to work on."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from journeys.domain import Environment, EventInput, KeyKind, UserChanges, WebhookEvent, utc_now
from journeys.storage.database import Database
from journeys.storage.driver import Statement
from journeys.storage.schema import metadata
from journeys.usecases import Journeys
from journeys.usecases.analytics import AnalyticsJob
from journeys.usecases.auth import Caller
from journeys.usecases.holdout import holdout
from journeys.usecases.reports import Reports
from journeys.usecases.segments import Segments
from journeys.usecases.webhooks import NewWebhook, Webhooks
from journeys.webhooks.dispatcher import Dispatcher, DispatchSettings

from scripts.stack import migrate, new_key
from tests.webhooks.receiver import receiving

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TENANT_COLUMNS = ("partner_id", "environment")
#: Maps a presented key to its tenant, so it is read before any tenant is known.
KEY_TABLES = frozenset({"api_keys"})
TENANT_TABLES = frozenset(
    table.name
    for table in metadata.sorted_tables
    if all(column in table.c for column in TENANT_COLUMNS) and table.name not in KEY_TABLES
)
#: The analytics job's reads across tenants (storage/job_store.py): the tenant list and the
#: population size for its progress bar.
CROSS_TENANT_READS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^select distinct users\.partner_id, users\.environment\s+from users\s+order by"),
    re.compile(r"^select count\(\*\) as count_1\s+from users$"),
)
#: The webhook dispatcher's (storage/webhooks.py `Outbox`): which tenants have messages due,
#: and the size and age of the backlog for its metrics.
CROSS_TENANT_READS += (
    re.compile(
        r"^select distinct webhook_messages\.partner_id, webhook_messages\.environment\s+"
        r"from webhook_messages\s+where webhook_messages\.status = \S+ and "
        r"webhook_messages\.next_attempt_at <= [^ ]+( with time zone)?$"
    ),
    re.compile(
        r"^select count\(\*\) as count_1, min\(webhook_messages\.created_at\) as min_1\s+"
        r"from webhook_messages\s+where webhook_messages\.status = \S+$"
    ),
    # The retention sweep finds old messages by tenant; it deletes them tenant by tenant.
    re.compile(
        r"^select webhook_messages\.partner_id, webhook_messages\.environment, "
        r"webhook_messages\.id\s+from webhook_messages\s+where webhook_messages\.status in "
        r".+ and webhook_messages\.created_at < .+ limit \S+( offset \S+)?$"
    ),
)
_NAMED_TABLE = re.compile(r'\b(?:from|join|into|update)\s+"?(\w+)"?', re.IGNORECASE)


def tables_named(sql: str) -> set[str]:
    """Tenant tables a statement names; PostgreSQL's monthly event partitions count as
    `events`."""
    names = {re.sub(r"_\d{4}_\d{2}$", "", name.lower()) for name in _NAMED_TABLE.findall(sql)}
    return names & TENANT_TABLES


def unscoped(sql: str) -> bool:
    """True when `sql` touches a tenant table without constraining (or, for an INSERT,
    writing) both tenant columns."""
    text = " ".join(sql.split()).lower()
    if not tables_named(text) or any(read.match(text) for read in CROSS_TENANT_READS):
        return False
    if text.startswith("insert"):
        columns = text[: text.find(")")]
        return not all(column in columns for column in TENANT_COLUMNS)
    where = text[text.find(" where ") :] if " where " in text else ""
    return not all(re.search(rf"\b{column}\s*(=|in\b|= any)", where) for column in TENANT_COLUMNS)


def scoped_by_key(sql: str) -> bool:
    """True when `sql` reads a presented key by its digest and joins every tenant table it
    names within that key's tenant, directly or through a table already joined so (the
    request path's reads, storage/lookups.py, find the tenant and its rows in one statement)."""
    text = " ".join(sql.split()).lower()
    if not re.search(r"\bwhere api_keys\.key_digest = ", text):
        return False
    joined = {"api_keys"}
    pending = tables_named(text)
    while pending:
        reached = {
            table
            for table in pending
            if any(
                all(
                    re.search(rf"\b{table}\.{column} = {other}\.{column}\b", text)
                    for column in TENANT_COLUMNS
                )
                for other in joined
            )
        }
        if not reached:
            return False
        joined |= reached
        pending -= reached
    return True


def test_the_audit_catches_an_unscoped_statement() -> None:
    assert unscoped("SELECT users.id FROM users WHERE users.external_id = ?")
    assert unscoped("UPDATE offers SET status = 'expired' WHERE expires_at <= ?")
    assert unscoped("DELETE FROM events WHERE user_id = $1 AND partner_id = $2")
    assert unscoped("INSERT INTO message_ids (message_id, event_id) VALUES (?, ?)")
    assert unscoped("SELECT count(*) FROM events_2026_06 WHERE user_id = $1")
    assert not unscoped(
        "SELECT users.id FROM users WHERE users.partner_id = ? AND users.environment = ? "
        "AND users.external_id = ?"
    )
    assert not unscoped("INSERT INTO events (id, partner_id, environment) VALUES (?, ?, ?)")
    assert not unscoped("SELECT api_keys.id FROM api_keys WHERE api_keys.key_digest = ?")


def test_the_audit_catches_a_key_join_that_leaves_the_tenant() -> None:
    within = (
        "SELECT users.id, offers.id FROM api_keys LEFT OUTER JOIN users ON users.partner_id = "
        "api_keys.partner_id AND users.environment = api_keys.environment AND "
        "users.external_id = ? LEFT OUTER JOIN offers ON offers.partner_id = users.partner_id "
        "AND offers.environment = users.environment WHERE api_keys.key_digest = ?"
    )
    assert scoped_by_key(within)
    assert not scoped_by_key(within.replace("AND offers.environment = users.environment", ""))
    assert not scoped_by_key(within.replace("users.partner_id = api_keys.partner_id AND", ""))
    assert not scoped_by_key(within.replace("WHERE api_keys.key_digest = ?", ""))


def test_every_statement_of_every_use_case_is_scoped_to_the_tenant(database_url: str) -> None:
    migrate(database_url)
    key = Caller(new_key(database_url, "audited"))
    secret = Caller(new_key(database_url, "audited", kind=KeyKind.SECRET))
    statements: list[str] = []

    async def exercise() -> None:
        async with Database(database_url) as database:
            database.on_statement(lambda sql, _parameters: statements.append(sql))
            api = Journeys(database, clock=lambda: NOW)
            await api.track_user(key, UserChanges(external_id="u1", country="NG"))
            old = (NOW - timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%SZ")
            await api.track_event(key, EventInput("u1", "GAME_PLAY", "spin", 5, "", "m-1"))
            await api.track_events(
                key,
                [
                    EventInput("u2", "GAME_PLAY", "spin", 1, old, "m-2"),
                    EventInput("u2", "CAMPAIGN", "join", 0, old, "m-2"),
                    EventInput("u3", "CAMPAIGN", "join", 0, "", "", {"campaignId": "c1"}),
                    EventInput("u1", "GAME_PLAY", "spin", 1, "", "m-1"),
                ],
            )
            await api.get_user(key, "u1")
            await api.get_timeline(key, "u1", 1, 20)
            await holdout(database, "audited", Environment.TEST, NOW, 0.0)
            webhooks = Webhooks(database, allow_private=True, clock=lambda: NOW)
            webhook = await webhooks.create_webhook(
                secret, NewWebhook(receiver.url, [event.value for event in WebhookEvent], "")
            )
            await AnalyticsJob(database, clock=lambda: NOW).run(NOW)
            for user in ("u1", "u2", "u3"):
                for offer in await api.get_offers(key, user):
                    await api.claim_offer(key, user, offer.id)
            await AnalyticsJob(database, clock=lambda: NOW).run(NOW + timedelta(days=8))
            await Reports(database, clock=lambda: NOW + timedelta(days=8)).offers(secret, "")
            segments = Segments(database)
            await segments.sizes(secret)
            page = await segments.members(secret, "active", None, 1, 1, None)
            await segments.members(secret, None, "casual", None, 1, page.next_cursor or None)
            dispatcher = Dispatcher(database, DispatchSettings(allow_private=True))
            async with httpx.AsyncClient() as client:
                assert await dispatcher.dispatch_due(client) > 0
                await dispatcher.settled()
            assert await webhooks.deliveries(secret, webhook.id, None)
            month_later = Dispatcher(
                database, DispatchSettings(), clock=lambda: utc_now() + timedelta(days=31)
            )
            assert await month_later.forget_old_messages() > 0
            await webhooks.list_webhooks(secret)
            await webhooks.delete_webhook(secret, webhook.id)

    with receiving() as receiver:
        asyncio.run(exercise())
        assert receiver.received, "the dispatcher's statements ran"

    touched = [sql for sql in statements if tables_named(sql)]
    assert len(touched) > 20, "the use cases ran too few statements to audit"
    claims = [sql for sql in touched if "offers" in tables_named(sql)]
    assert claims, "no offer statement ran"
    assert [sql for sql in touched if unscoped(sql)] == []


def _driver_statements() -> dict[str, Statement]:
    """Every statement the stores run on the raw driver (storage/driver.py): module constants
    and class attributes of the storage modules. The driver bypasses SQLAlchemy, so the
    statement listener above never sees them run."""
    import journeys.storage

    found: dict[str, Statement] = {}
    for module_info in pkgutil.iter_modules(journeys.storage.__path__):
        if module_info.ispkg:
            continue  # migrations
        module = importlib.import_module(f"journeys.storage.{module_info.name}")
        for name, value in vars(module).items():
            owners = (
                [value] if inspect.isclass(value) and value.__module__ == module.__name__ else []
            )
            if isinstance(value, Statement):
                found[f"{module_info.name}.{name}"] = value
            for owner in owners:
                for attribute, member in vars(owner).items():
                    if isinstance(member, Statement):
                        found[f"{module_info.name}.{owner.__name__}.{attribute}"] = member
    return found


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_every_statement_run_on_the_raw_driver_is_scoped_to_the_tenant(dialect: str) -> None:
    statements = {
        name: statement.sql(dialect)[0] for name, statement in _driver_statements().items()
    }
    assert any(name.startswith("ingest.") for name in statements), "none of ingestion's found"
    assert sum(1 for sql in statements.values() if tables_named(sql)) >= 8
    assert [
        name for name, sql in statements.items() if unscoped(sql) and not scoped_by_key(sql)
    ] == []


@pytest.mark.parametrize("table", sorted(TENANT_TABLES))
def test_every_tenant_table_is_known_to_the_audit(table: str) -> None:
    assert unscoped(f"SELECT 1 FROM {table} WHERE id = 1")
