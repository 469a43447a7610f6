"""`journeys serve --workers 2`: two worker processes on one gRPC port behind one Envoy, a
supervisor that stops them in order, and once-only work decided by the database."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2_grpc as pb_grpc
from journeys.domain import KeyKind
from sqlalchemy.engine import make_url

from scripts.stack import (
    BIN,
    Stack,
    free_port,
    journeys,
    migrate,
    running_stack,
    sql,
    stack_env,
    wait_until,
)
from tests.api.rest import headers, success
from tests.conftest import DELIVERING
from tests.webhooks.receiver import receiving

BASE = "/v1/user-journeys"
TWO_WORKERS = ("--workers", "2")


def worker_pids(stack: Stack) -> list[int]:
    """The supervisor's worker children (its other child is Envoy)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == stack.process.pid and b"--worker" in command:
            found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited: only its parent has not collected it yet.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def counted(metrics_port: int, series: str, label: str) -> float:
    """The sum of a counter's `series` with `label` on one worker's Prometheus endpoint."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(f"{series}{{") and label in line
    )


@pytest.fixture
def url(database_url: str) -> str:
    migrate(database_url)
    return database_url


@pytest.fixture
def metrics_port() -> int:
    """A base metrics port: worker I serves on it + I."""
    return free_port()


@pytest.fixture
def two_workers(url: str, metrics_port: int) -> Iterator[Stack]:
    env = {"JOURNEYS_METRICS_PORT": str(metrics_port)}
    with running_stack(url, *TWO_WORKERS, env_overrides=env) as stack:
        yield stack


def test_both_workers_answer_on_one_port_and_rest_goes_through_the_one_envoy(
    two_workers: Stack, metrics_port: int
) -> None:
    stack = two_workers
    key = stack.new_key(f"workers-{uuid.uuid4()}")

    def per_worker() -> list[float]:
        return [
            counted(metrics_port + index, "grpc_server_handled_total", 'grpc_method="GetUser"')
            for index in range(2)
        ]

    with httpx.Client(base_url=stack.base_url) as http:
        success(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": "w"}))
        through_envoy = [
            success(http.get(f"{BASE}/users/w", headers={"X-API-Key": key}))["externalId"]
            for _ in range(40)
        ]
    after_rest = per_worker()
    # Each channel is a connection of its own; the kernel hands each to one of the workers.
    for _ in range(24):
        with grpc.insecure_channel(stack.direct_target) as channel:
            pb_grpc.UserJourneysServiceStub(channel).GetUser(
                pb.GetUserRequest(external_id="w"), metadata=(("x-api-key", key),)
            )
    after_grpc = per_worker()

    assert through_envoy == ["w"] * 40
    assert len(worker_pids(stack)) == 2, "two worker processes under the supervisor"
    assert all(count > 0 for count in after_rest), f"Envoy reached both workers: {after_rest}"
    direct = [after - before for after, before in zip(after_grpc, after_rest, strict=True)]
    assert all(count > 0 for count in direct), f"direct calls reached both: {direct}"
    assert sum(after_grpc) == 40 + 24
    assert stack.log_text().count("journeys is ready") == 1, "only the supervisor says ready"


def test_sigterm_drains_envoy_then_stops_every_worker_within_the_grace(url: str) -> None:
    with running_stack(url, *TWO_WORKERS) as stack:
        key = stack.new_key(f"workers-{uuid.uuid4()}")
        pids = worker_pids(stack)
        acknowledged: list[str] = []
        statuses: list[int] = []
        lock = threading.Lock()

        def client(n: int) -> None:
            with httpx.Client(base_url=stack.base_url, timeout=30) as http:
                for i in range(10_000):
                    user = f"c{n}-{i}"
                    try:
                        answer = http.post(
                            f"{BASE}/users", headers=headers(key), json={"externalId": user}
                        )
                    except httpx.TransportError:
                        return  # the gateway is gone: refused, never half-answered
                    with lock:
                        statuses.append(answer.status_code)
                        if answer.status_code == 200:
                            acknowledged.append(user)
                    if answer.status_code != 200:
                        return

        clients = [threading.Thread(target=client, args=(n,)) for n in range(6)]
        for thread in clients:
            thread.start()
        time.sleep(1.5)
        started = time.monotonic()
        stack.process.send_signal(signal.SIGTERM)
        exit_code = stack.process.wait(timeout=30)
        stopped_after = time.monotonic() - started
        for thread in clients:
            thread.join(timeout=30)

    assert exit_code == 0, stack.log_text()
    assert stopped_after < 5 + 3, "within JOURNEYS_SHUTDOWN_GRACE (5 s in tests)"
    assert not any(alive(pid) for pid in pids), "every worker stopped"
    assert len(acknowledged) >= 10, "the load really ran before the signal"
    assert set(statuses) <= {200, 503}, statuses
    stored = {row[0] for row in sql(url, "SELECT external_id FROM users")}
    assert set(acknowledged) <= stored


def test_a_worker_that_dies_stops_the_others_and_the_supervisor_exits_1(url: str) -> None:
    with running_stack(url, *TWO_WORKERS) as stack:
        killed, survivor = worker_pids(stack)
        os.kill(killed, signal.SIGKILL)
        exit_code = stack.process.wait(timeout=20)

    assert exit_code == 1, stack.log_text()
    assert "worker 0 (pid" in stack.log_text() or "worker 1 (pid" in stack.log_text()
    assert not alive(survivor)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{stack.base_url}{BASE}/users/x", timeout=2)


def test_an_analytics_tick_runs_once_not_once_per_worker(url: str) -> None:
    interval = {"JOURNEYS_ANALYTICS_INTERVAL": "4"}
    with running_stack(url, *TWO_WORKERS, env_overrides=interval) as stack:
        wait_until(lambda: sql(url, "SELECT count(*) FROM analytics_runs")[0][0] >= 1)
        time.sleep(2)  # both workers ticked at start; the second found the tick taken
        at_start = sql(url, "SELECT count(*) FROM analytics_runs")[0][0]
        time.sleep(4.5)  # the next interval's tick
        after_one_interval = sql(url, "SELECT count(*) FROM analytics_runs")[0][0]

    assert at_start == 1, stack.log_text()
    assert after_one_interval == 2, stack.log_text()
    assert sql(url, "SELECT count(*) FROM job_leases")[0][0] == 0, "the stop released the tick"


def test_two_workers_dispatching_one_outbox_deliver_each_message_once(
    url: str, metrics_port: int
) -> None:
    env = {**DELIVERING, "JOURNEYS_METRICS_PORT": str(metrics_port)}
    with receiving() as receiver, running_stack(url, *TWO_WORKERS, env_overrides=env) as stack:
        receiver.delay = 0.005
        partner = f"workers-{uuid.uuid4()}"
        public, secret = stack.new_key(partner), stack.new_key(partner, kind=KeyKind.SECRET)
        with httpx.Client(base_url=stack.base_url, timeout=30) as http:
            body = {"url": receiver.url, "events": ["offer.created"]}
            success(http.post(f"{BASE}/webhooks", json=body, headers={"X-API-Key": secret}))
            for n in range(150):
                success(
                    http.post(
                        f"{BASE}/users", headers=headers(public), json={"externalId": f"u{n}"}
                    )
                )
        # Written by another process: both workers' dispatchers find the messages by polling.
        ran = journeys("analytics", "run", env=stack.env())
        assert ran.returncode == 0, ran.stderr
        made = sql(url, "SELECT count(*) FROM webhook_messages")[0][0]
        receiver.wait_for(made, timeout=60)
        time.sleep(2)  # room for a doubled delivery to arrive
        per_worker = [
            counted(metrics_port + index, "journeys_webhook_deliveries_total", "delivered")
            for index in range(2)
        ]

    ids = [item.headers["webhook-id"] for item in receiver.received]
    assert made >= 300, "two welcome offers a user"
    assert len(ids) == made
    assert len(set(ids)) == made, "no message was delivered twice"
    assert all(count > 0 for count in per_worker), f"both dispatchers delivered: {per_worker}"


@pytest.mark.sqlite_only
def test_a_worker_waiting_for_the_write_lock_keeps_answering_reads(url: str) -> None:
    path = make_url(url).database
    assert path is not None
    with running_stack(url, *TWO_WORKERS) as stack:
        key = stack.new_key(f"workers-{uuid.uuid4()}")
        auth = (("x-api-key", key),)
        # One channel, one connection: every call below reaches the same worker.
        with grpc.insecure_channel(stack.direct_target) as channel:
            stub = pb_grpc.UserJourneysServiceStub(channel)
            stub.TrackUser(pb.TrackUserRequest(external_id="reader"), metadata=auth)
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
            write = stub.TrackUser.future(
                pb.TrackUserRequest(external_id="writer"), metadata=auth, timeout=30
            )
            read_times = []
            held_until = time.monotonic() + 1.5
            while time.monotonic() < held_until:
                started = time.monotonic()
                stub.GetUser(pb.GetUserRequest(external_id="reader"), metadata=auth, timeout=5)
                read_times.append(time.monotonic() - started)
                time.sleep(0.05)
            assert not write.done(), "the write waits for the lock"
            released = time.monotonic()
            holder.execute("COMMIT")
            holder.close()
            written = write.result()
            write_done = time.monotonic()

    assert written.external_id == "writer"
    assert write_done - released < 1.0, "the write went ahead once the lock was free"
    assert len(read_times) >= 10, read_times
    assert max(read_times) < 0.5, f"a read waited behind the write: {read_times}"


@pytest.mark.sqlite_only
def test_workers_refuse_a_grpc_port_another_process_listens_on(url: str) -> None:
    with socket.socket() as foreign:
        foreign.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        port = foreign.getsockname()[1]
        env = stack_env(url, free_port(), port, free_port())
        result = subprocess.run(
            [str(BIN / "journeys"), "serve", *TWO_WORKERS],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in result.stderr


@pytest.mark.postgresql_only
def test_the_workers_together_open_no_more_connections_than_the_unit_may(url: str) -> None:
    """JOURNEYS_DATABASE_CONNECTIONS bounds the whole unit: each of the 2 workers takes half,
    split between its read pool and the rest, however many calls arrive at once."""
    budget = 6
    env = {
        "JOURNEYS_DATABASE_CONNECTIONS": str(budget),
        "JOURNEYS_ANALYTICS_INTERVAL": "0",
        "JOURNEYS_RATE_LIMIT": "0",
    }
    database = make_url(url).database
    with running_stack(url, *TWO_WORKERS, env_overrides=env) as stack:
        key = stack.new_key(f"workers-{uuid.uuid4()}")
        auth = (("x-api-key", key),)
        peak = 0
        channels = [grpc.insecure_channel(stack.direct_target) for _ in range(8)]
        try:
            stubs = [pb_grpc.UserJourneysServiceStub(channel) for channel in channels]
            stubs[0].TrackUser(pb.TrackUserRequest(external_id="crowd"), metadata=auth)
            for _ in range(5):
                reads, writes = [], []
                for stub in stubs:
                    reads += [
                        stub.GetUser.future(
                            pb.GetUserRequest(external_id="crowd"), metadata=auth, timeout=30
                        )
                        for _ in range(12)
                    ]
                    writes += [
                        stub.TrackUser.future(
                            pb.TrackUserRequest(external_id=f"crowd-{n}"), metadata=auth, timeout=30
                        )
                        for n in range(4)
                    ]
                opened = sql(
                    url,
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                    f"'{database}' AND pid <> pg_backend_pid()",
                )[0][0]
                peak = max(peak, opened)
                assert {call.result().external_id for call in reads} == {"crowd"}
                assert len({call.result().external_id for call in writes}) == 4
            opened_after = sql(
                url,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                f"'{database}' AND pid <> pg_backend_pid()",
            )[0][0]
        finally:
            for channel in channels:
                channel.close()

    # The audit's own connection is excluded; `sql` opens one at a time.
    assert max(peak, opened_after) <= budget, (peak, opened_after)
    assert opened_after >= 2, "both workers hold connections"
