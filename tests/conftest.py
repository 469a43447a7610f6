from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from journeys.domain import Environment

from tests.support import Stack, migrate, running_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The real service (grpc.aio + Envoy) on a real SQLite file, shared by a worker's tests.
    Tests isolate themselves by using partners of their own."""
    database = Path(tmp_path_factory.mktemp("db")) / "journeys.db"
    url = f"sqlite+aiosqlite:///{database}"
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
    """Makes a key for a partner of this test only (a fresh partner unless one is named)."""

    def make(environment: Environment = Environment.TEST, partner: str | None = None) -> str:
        return stack.new_key(partner or f"partner-{uuid.uuid4()}", environment)

    return make


@pytest.fixture
def key(new_key: KeyFactory) -> str:
    return new_key()
