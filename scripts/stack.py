"""Starts the real service (grpc.aio server + Envoy) on free ports: for tests and benchmarks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from journeys.app import READY_LINE
from journeys.domain import Environment, KeyKind, Tenant, utc_now
from journeys.storage.database import Database
from journeys.usecases.auth import create_key
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    """One running `journeys serve`: its ports, its database and its output so far."""

    database_url: str
    http_port: int
    grpc_port: int
    admin_port: int
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def gateway_target(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def direct_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def env(self) -> dict[str, str]:
        return stack_env(self.database_url, self.http_port, self.grpc_port, self.admin_port)

    @property
    def engine(self) -> str:
        return engine_of(self.database_url)

    def log_text(self) -> str:
        return "".join(self.output)

    def new_key(
        self,
        partner: str,
        environment: Environment = Environment.TEST,
        kind: KeyKind = KeyKind.PUBLIC,
        holdout: float | None = 0.0,
    ) -> str:
        return new_key(self.database_url, partner, environment, kind, holdout)


def stack_env(database_url: str, http_port: int, grpc_port: int, admin_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "JOURNEYS_DATABASE_URL": database_url,
        "JOURNEYS_HTTP_PORT": str(http_port),
        "JOURNEYS_GRPC_PORT": str(grpc_port),
        "JOURNEYS_ADMIN_PORT": str(admin_port),
        "JOURNEYS_SHUTDOWN_GRACE": "5",
        # Tests run the analytics job explicitly, at instants they choose.
        "JOURNEYS_ANALYTICS_INTERVAL": "0",
        # Tests send bursts from one key on purpose; the limiter has tests of its own.
        "JOURNEYS_RATE_LIMIT": "0",
        # Many servers run at once: metrics (a port each) stay off unless a test turns them
        # on, and logs are text for tests to search (tests/ecosystem checks serve's default,
        # JSON, and the metrics).
        "JOURNEYS_METRICS_PORT": "0",
        "JOURNEYS_LOG_FORMAT": "text",
        # One server process, whatever the machine's CPU count; tests of `--workers` ask for
        # more.
        "JOURNEYS_WORKERS": "1",
    }


def journeys(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Runs the real `journeys` command line."""
    return subprocess.run(
        [str(BIN / "journeys"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def migrate(database_url: str) -> None:
    result = journeys("migrate", env={**os.environ, "JOURNEYS_DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr


def new_key(
    database_url: str,
    partner: str,
    environment: Environment = Environment.TEST,
    kind: KeyKind = KeyKind.PUBLIC,
    holdout: float | None = 0.0,
) -> str:
    """A key of `partner` (made if new). Its tenant's offer holdout share is set to `holdout`
    (0 unless asked: partner ids are random, so with the default 5 % one test user in twenty
    that a test expects offers for would be held out at random); None leaves the tenant's
    share as it is, the documented default for a new tenant."""

    async def create() -> str:
        async with Database(database_url) as database, database.transaction(write=True) as tx:
            key = await create_key(tx.keys, partner, environment, utc_now(), kind)
            if holdout is not None:
                partner_id = await tx.keys.partner_id(partner)
                assert partner_id is not None
                await tx.tenant(Tenant(partner_id, environment)).set_holdout_share(
                    holdout, utc_now()
                )
            return key

    return asyncio.run(create())


def engine_of(database_url: str) -> str:
    """`sqlite` or `postgresql`."""
    return make_url(database_url).get_backend_name()


def sql(database_url: str, *statements: str) -> list[tuple[Any, ...]]:
    """Runs raw SQL statements in one transaction, outside the service; returns the rows of
    the last one (none if it returns no rows)."""

    async def run() -> list[tuple[Any, ...]]:
        engine = create_async_engine(database_url)
        try:
            async with engine.begin() as connection:
                rows: list[tuple[Any, ...]] = []
                for statement in statements:
                    result = await connection.execute(text(statement))
                    rows = [tuple(row) for row in result] if result.returns_rows else []
                return rows
        finally:
            await engine.dispose()

    return asyncio.run(run())


def start_journeys(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """Starts a long-running `journeys` command (serve, gateway) and returns once it is ready;
    its output keeps draining in the background so it never blocks on a full pipe."""
    process = subprocess.Popen(
        [str(BIN / "journeys"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if READY_LINE in line:
            break
    else:
        raise RuntimeError(f"journeys {' '.join(args)} exited before it was ready")
    threading.Thread(target=process.stdout.read, daemon=True).start()
    return process


@contextmanager
def running_stack(
    database_url: str,
    *extra_args: str,
    timeout: float = 60,
    env_overrides: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """Runs `journeys serve` until the block exits, then stops it with SIGTERM."""
    http_port, grpc_port, admin_port = free_port(), free_port(), free_port()
    env = {**stack_env(database_url, http_port, grpc_port, admin_port), **(env_overrides or {})}
    process = subprocess.Popen(
        [str(BIN / "journeys"), "serve", *extra_args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stack = Stack(database_url, http_port, grpc_port, admin_port, process)
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            stack.output.append(line)
            if READY_LINE in line:
                ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.1):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("journeys serve did not start:\n" + stack.log_text())
    try:
        yield stack
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=5)


def wait_until(predicate: Callable[[], object], timeout: float = 20) -> None:
    """Polls `predicate` until it holds; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)
