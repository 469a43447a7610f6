"""Segment member pages (GET /users) on PostgreSQL at 1M users: every shape of the page
statement the service sends (no filter, each filter, combined, each from a cursor) is planned as
one forward Index Scan of the index made for it, in externalId order, with no Sort and no Seq
Scan; and the last page of a listing starts at its cursor in the index and reads no more than
the first, so listing page by page stays linear.

The population is 1,000,000 profiles in one table, as a large deployment holds them: 900,000
in the tenant asked about and 100,000 in another (its live environment), so the tenant
predicate is not trivially true. They are written by one `INSERT … SELECT generate_series`
(through the service it would take many minutes) with skewed segments like a real
population's — most users churned or casual, few power users or whales, 3 % never classified —
and external ids that are hex digests, so the ids' order is unrelated to the rows' physical
order (as it is for ids that arrive over time). `ANALYZE` then gives the planner the statistics
autovacuum would gather after such a load. Seeding takes about 18 s, the whole test about 20 s
(it is one test so that a pytest-xdist run seeds once). The plans are those of the statements
as the service runs them (captured from `Members.segment_members`), explained with their own
parameters (the custom plans PostgreSQL makes for a prepared statement's values)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from journeys.domain import Environment, SegmentQuery, Tenant, utc_now
from journeys.storage.database import Database

from scripts.stack import migrate, sql

USERS = 1_000_000
TENANT_USERS = 900_000
UNIQUE_KEY = "uq_users_partner_id_environment_external_id"
BY_STAGE = "ix_users_partner_id_environment_segment_stage_external_id"
BY_TIER = "ix_users_partner_id_environment_segment_tier_external_id"
LIMIT = 100

# Buckets of n % 100 and (n / 100) % 100: shares of the population by stage and by tier.
_STAGE = """CASE
    WHEN n % 100 < 3 THEN NULL
    WHEN n % 100 < 40 THEN 'churned'
    WHEN n % 100 < 55 THEN 'at_risk'
    WHEN n % 100 < 75 THEN 'active'
    WHEN n % 100 < 85 THEN 'new'
    WHEN n % 100 < 97 THEN 'engaged'
    ELSE 'power_user' END"""
_TIER = """CASE
    WHEN (n / 100) % 100 < 60 THEN 'casual'
    WHEN (n / 100) % 100 < 85 THEN 'regular'
    WHEN (n / 100) % 100 < 97 THEN 'power_user'
    ELSE 'whale' END"""
# The tenant's users are n < TENANT_USERS; the others belong to its live environment.
_SEED = f"""
INSERT INTO users (id, partner_id, environment, external_id, display_name, email, phone,
    country, device, source, tags, metadata, first_seen_at, last_seen_at, created_at,
    updated_at, total_events, total_plays, won_plays, segment_stage, segment_tier,
    segment_engagement_score, segment_churn_risk, segments_computed_at)
SELECT md5('id' || n)::uuid::text, :partner,
    CASE WHEN n < {TENANT_USERS} THEN '{Environment.TEST}' ELSE '{Environment.LIVE}' END,
    md5(n::text), '', '', '', '', '', '', '{{}}', '{{}}', now(), now(), now(), now(), 0, 0, 0,
    stage, CASE WHEN stage IS NULL THEN NULL ELSE {_TIER} END,
    CASE WHEN stage IS NULL THEN NULL ELSE (n * 7) % 1000 / 10.0 END,
    CASE WHEN stage IS NULL THEN NULL ELSE (n * 37) % 101 END,
    CASE WHEN stage IS NULL THEN NULL ELSE now() END
FROM (SELECT n, {_STAGE} AS stage FROM generate_series(0, {USERS - 1}) AS n) AS population
"""


#: Every shape of page (each filter alone, combined, and each from a cursor: a later page) and
#: the indexes it may read: those whose leading columns the filter's equalities fix, so the
#: rest of the key is externalId order. A filter left over (the tier beside a stage, churn risk)
#: is checked on the index's rows as they come, so a page reads about limit / selectivity rows.
_FIRST_PAGES: list[tuple[SegmentQuery, set[str]]] = [
    (SegmentQuery(None, None, None, None, LIMIT), {UNIQUE_KEY}),
    (SegmentQuery("at_risk", None, None, None, LIMIT), {BY_STAGE}),
    (SegmentQuery("power_user", None, None, None, LIMIT), {BY_STAGE}),
    (SegmentQuery(None, "casual", None, None, LIMIT), {BY_TIER}),
    (SegmentQuery(None, "whale", None, None, LIMIT), {BY_TIER}),
    (SegmentQuery(None, None, 60, None, LIMIT), {UNIQUE_KEY}),
    (SegmentQuery(None, None, 95, None, LIMIT), {UNIQUE_KEY}),
    (SegmentQuery("churned", "casual", None, None, LIMIT), {BY_STAGE, BY_TIER}),
    (SegmentQuery("at_risk", None, 60, None, LIMIT), {BY_STAGE}),
    (SegmentQuery("engaged", "regular", 50, None, 1000), {BY_STAGE, BY_TIER}),
]
SHAPES = _FIRST_PAGES + [
    (SegmentQuery(q.stage, q.tier, q.min_churn_risk, "8", q.limit), indexes)
    for q, indexes in _FIRST_PAGES
]
#: Fewer members in the whole tenant (about 160) than the page holds: every one must be read
#: whatever the plan, so the planner may collect them through the index's bitmap and sort
#: those few rows instead of visiting them in index order (a tenth of the buffers, measured).
SPARSE = SegmentQuery("power_user", "whale", 80, None, 1000)


def _seed(url: str) -> Tenant:
    """The million profiles, loaded as a bulk load is: the secondary indexes are dropped
    first and rebuilt afterwards from their own definitions (the same indexes; maintaining
    them row by row in random key order took 39 s instead of 18 s here)."""
    indexes = sql(
        url,
        """SELECT 'ALTER TABLE users ADD CONSTRAINT ' || quote_ident(conname) || ' '
                  || pg_get_constraintdef(oid),
                  'ALTER TABLE users DROP CONSTRAINT ' || quote_ident(conname)
           FROM pg_constraint WHERE conrelid = 'users'::regclass AND contype = 'u'
           UNION ALL
           SELECT indexdef, 'DROP INDEX ' || quote_ident(indexname)
           FROM pg_indexes WHERE tablename = 'users' AND indexname LIKE 'ix\\_%'""",
    )
    rebuilt = " ".join(definition for definition, _ in indexes)
    assert all(name in rebuilt for name in (UNIQUE_KEY, BY_STAGE, BY_TIER)), rebuilt
    partner = asyncio.run(_new_partner(url))
    sql(url, *[drop for _, drop in indexes])
    sql(url, _SEED.replace(":partner", f"'{partner}'"))
    sql(url, "SET maintenance_work_mem = '256MB'", *[create for create, _ in indexes])
    sql(url, "ANALYZE users")
    return Tenant(partner, Environment.TEST)


async def _new_partner(url: str) -> str:
    async with Database(url) as database, database.transaction(write=True) as tx:
        return await tx.keys.ensure_partner("plans", utc_now())


async def _explained(url: str, tenant: Tenant, query: SegmentQuery, options: str) -> Any:
    """The plan (EXPLAIN `options`, as JSON) of the page statement the service runs for
    `query`, with its parameters."""
    statements: list[tuple[str, Any]] = []
    async with Database(url) as database:
        database.on_statement(lambda s, p: statements.append((s, p)))
        async with database.transaction(write=False) as tx:
            await tx.tenant(tenant).segment_members(query)
        ((statement, parameters),) = [(s, p) for s, p in statements if "FROM users" in s]
        async with database.engine.connect() as connection:
            result = await connection.exec_driver_sql(
                f"EXPLAIN (FORMAT JSON, {options}) {statement}", parameters
            )
            return result.scalar_one()[0]["Plan"]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _users_scan(plan: dict[str, Any]) -> dict[str, Any]:
    (scan,) = [node for node in _nodes(plan) if node.get("Relation Name") == "users"]
    return scan


def _starts_at_cursor(scan: dict[str, Any], after: str) -> bool:
    """The cursor is a bound of the index range (not a filter on rows read from its start)."""
    return f"((external_id)::text > '{after}'::text)" in scan.get("Index Cond", "")


def _blocks(scan: dict[str, Any]) -> int:
    return int(scan["Shared Hit Blocks"]) + int(scan["Shared Read Blocks"])


def _last_page_cursor(url: str, tenant: Tenant, query: SegmentQuery) -> str:
    """The cursor of the last page of `query`'s listing: half a page before its end."""
    stage = "" if query.stage is None else f"AND segment_stage = '{query.stage}'"
    ((cursor,),) = sql(
        url,
        f"""SELECT external_id FROM users
            WHERE partner_id = '{tenant.partner_id}' AND environment = '{tenant.environment}'
                AND segment_stage IS NOT NULL {stage}
            ORDER BY external_id DESC OFFSET {query.limit // 2} LIMIT 1""",
    )
    return str(cursor)


@pytest.mark.postgresql_only
def test_every_page_shape_is_one_index_range_at_a_million_users(database_url: str) -> None:
    migrate(database_url)
    tenant = _seed(database_url)

    def plan(query: SegmentQuery, options: str = "COSTS OFF") -> dict[str, Any]:
        return asyncio.run(_explained(database_url, tenant, query, options))

    wrong = {
        query: reason
        for query, indexes in SHAPES
        if (reason := _not_an_ordered_range(plan(query), indexes, query))
    }
    assert not wrong, wrong

    sparse = plan(SPARSE, "COSTS ON")
    kinds = [node["Node Type"] for node in _nodes(sparse)]
    assert "Seq Scan" not in kinds, kinds
    assert {node.get("Index Name") for node in _nodes(sparse)} & {BY_STAGE, BY_TIER}, kinds
    assert all(
        node["Plan Rows"] <= SPARSE.limit for node in _nodes(sparse) if "Sort" in node["Node Type"]
    )

    # Listing page by page stays linear: the last page starts at its cursor in the index, and
    # reads no more than the first page did.
    for query, _ in _FIRST_PAGES[:3]:
        last = replace(query, after=_last_page_cursor(database_url, tenant, query))
        first_scan = _users_scan(plan(query, "ANALYZE, BUFFERS"))
        last_scan = _users_scan(plan(last, "ANALYZE, BUFFERS"))
        assert last.after is not None
        assert _starts_at_cursor(last_scan, last.after), last_scan
        assert last_scan["Actual Rows"] < query.limit
        assert _blocks(last_scan) <= _blocks(first_scan), (first_scan, last_scan)


def _not_an_ordered_range(
    plan: dict[str, Any], indexes: set[str], query: SegmentQuery
) -> str | None:
    """Why `plan` is not one forward range of one of `indexes` in key order, if it is not."""
    kinds = [f"{node['Node Type']} {node.get('Index Name', '')}".strip() for node in _nodes(plan)]
    if "Sort" in kinds or "Incremental Sort" in kinds:
        return f"sorted: {kinds}"
    scans = [node for node in _nodes(plan) if node.get("Relation Name") == "users"]
    if len(scans) != 1 or scans[0]["Node Type"] not in ("Index Scan", "Index Only Scan"):
        return f"not one index scan: {kinds}"
    (scan,) = scans
    if scan["Index Name"] not in indexes or scan["Scan Direction"] != "Forward":
        return f"another index or direction: {kinds}"
    if query.after is not None and not _starts_at_cursor(scan, query.after):
        return f"the cursor is not an index bound: {scan.get('Index Cond')}"
    return None
