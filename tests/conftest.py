"""Fixtures. Every test that touches a database runs once per engine, SQLite and PostgreSQL:
the ones using `stack` (and so `http`, `key`, `new_key`) or `database_url`/`engine`. Test ids
carry the engine, and `-m sqlite` / `-m postgresql` selects one. A test that inspects SQLite
itself (its files, pragmas, query plans) is marked `sqlite_only`; one that inspects what only
PostgreSQL has (partitions) is marked `postgresql_only`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from journeys.domain import Environment, KeyKind

from scripts.pgcluster import Cluster
from scripts.stack import Stack, migrate, running_stack
from scripts.throwaway_cluster import throwaway_cluster

ENGINES = [
    pytest.param("sqlite", marks=pytest.mark.sqlite),
    pytest.param("postgresql", marks=pytest.mark.postgresql),
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite: the test runs against SQLite")
    config.addinivalue_line("markers", "postgresql: the test runs against PostgreSQL")
    config.addinivalue_line("markers", "sqlite_only: the test inspects SQLite itself")
    config.addinivalue_line("markers", "postgresql_only: the test inspects PostgreSQL itself")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker
        if only("sqlite_only"):
            metafunc.parametrize("engine", ENGINES[:1])
        elif only("postgresql_only"):
            metafunc.parametrize("engine", ENGINES[1:])
        else:
            metafunc.parametrize("engine", ENGINES)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("sqlite_only"):
            item.add_marker(pytest.mark.sqlite)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A throw-away PostgreSQL cluster for this test process, started on first use."""
    with throwaway_cluster() as cluster:
        yield cluster


def _new_database(request: pytest.FixtureRequest, engine: str, directory: Path) -> str:
    if engine == "sqlite":
        return f"sqlite+aiosqlite:///{directory / 'journeys.db'}"
    cluster: Cluster = request.getfixturevalue("postgres")
    return cluster.create_database(f"test_{uuid.uuid4().hex}")


@pytest.fixture
def database_url(request: pytest.FixtureRequest, engine: str, tmp_path: Path) -> str:
    """A new, empty (not migrated) database of this test's own, on each engine in turn
    (`engine` is parametrized by `pytest_generate_tests`)."""
    return _new_database(request, engine, tmp_path)


@pytest.fixture(scope="session", params=ENGINES)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The real service (grpc.aio + Envoy) on a real database, shared by a worker's tests; once
    on SQLite, once on PostgreSQL. Tests isolate themselves by using partners of their own."""
    url = _new_database(request, request.param, tmp_path_factory.mktemp("db"))
    migrate(url)
    with running_stack(url) as running:
        yield running


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        yield client


KeyFactory = Callable[..., str]


@pytest.fixture
def new_key(stack: Stack) -> KeyFactory:
    """Makes a key for a partner of this test only (a fresh partner unless one is named).
    Its offer holdout share is 0 unless the test asks for another (`holdout=`; None keeps the
    default of a new tenant, 5 %): see `scripts.stack.new_key`."""

    def make(
        environment: Environment = Environment.TEST,
        partner: str | None = None,
        kind: KeyKind = KeyKind.PUBLIC,
        holdout: float | None = 0.0,
    ) -> str:
        return stack.new_key(partner or f"partner-{uuid.uuid4()}", environment, kind, holdout)

    return make


@pytest.fixture
def secret_key(new_key: KeyFactory) -> str:
    """A secret key (sk_test_…) of a partner of this test only."""
    return new_key(kind=KeyKind.SECRET)


@pytest.fixture
def key(new_key: KeyFactory) -> str:
    return new_key()


#: Webhooks may be delivered to this machine, and retried within seconds.
DELIVERING = {"JOURNEYS_WEBHOOK_ALLOW_PRIVATE": "true", "JOURNEYS_WEBHOOK_RETRY_SCHEDULE": "1,1,1"}


@pytest.fixture(scope="session", params=ENGINES)
def delivering_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The real service that may post webhooks to 127.0.0.1 (every other test's service
    refuses to), with three retries a second apart; once per engine."""
    url = _new_database(request, request.param, tmp_path_factory.mktemp("db"))
    migrate(url)
    with running_stack(url, env_overrides=DELIVERING) as running:
        yield running
