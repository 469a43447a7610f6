"""Several stateless server replicas on one PostgreSQL behind one Envoy (`journeys gateway`)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
import httpx
import pytest
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2_grpc as pb_grpc

from scripts.pgcluster import Cluster
from scripts.stack import free_port, migrate, new_key, stack_env, start_journeys
from tests.api.rest import headers, success


@dataclass
class Replicas:
    database_url: str
    grpc_ports: list[int]
    http_port: int
    servers: list[subprocess.Popen[str]]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


@contextmanager
def replicas(url: str, count: int, interval: str = "0") -> Iterator[Replicas]:
    grpc_ports, http_port, admin_port = (
        [free_port() for _ in range(count)],
        free_port(),
        free_port(),
    )
    processes = []
    try:
        for port in grpc_ports:
            env = stack_env(url, 0, port, 0) | {"JOURNEYS_ANALYTICS_INTERVAL": interval}
            processes.append(start_journeys(["serve", "--no-gateway"], env))
        upstreams = [arg for port in grpc_ports for arg in ("--upstream", f"127.0.0.1:{port}")]
        processes.append(
            start_journeys(["gateway", *upstreams], stack_env(url, http_port, 0, admin_port))
        )
        yield Replicas(url, grpc_ports, http_port, processes[:-1])
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def database(postgres: Cluster) -> str:
    url = postgres.create_database(f"replicas_{uuid.uuid4().hex}")
    migrate(url)
    return url


def test_a_write_through_one_replica_is_read_through_the_other(database: str) -> None:
    key = new_key(database, "replicas")
    with replicas(database, 2) as running:
        stubs = [
            pb_grpc.UserJourneysServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
            for port in running.grpc_ports
        ]
        auth = (("x-api-key", key),)
        stubs[0].TrackUser(
            pb.TrackUserRequest(external_id="shared", display_name="A"), metadata=auth
        )

        read = stubs[1].GetUser(pb.GetUserRequest(external_id="shared"), metadata=auth)
        with httpx.Client(base_url=running.base_url) as http:
            through_envoy = [
                success(http.get("/v1/user-journeys/users/shared", headers={"X-API-Key": key}))
                for _ in range(4)
            ]

    assert read.display_name == "A"
    assert {profile["displayName"] for profile in through_envoy} == {"A"}


def test_one_message_id_sent_to_both_replicas_at_once_is_stored_once(database: str) -> None:
    key = new_key(database, "replicas")
    with replicas(database, 2) as running:
        barrier = threading.Barrier(8)
        outcomes: list[str] = []

        def send(port: int) -> None:
            stub = pb_grpc.UserJourneysServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
            event = pb.TrackEventRequest()
            event.event.external_id, event.event.category = "race", "GAME_PLAY"
            event.event.event_type, event.event.message_id = "spin", "same-message"
            barrier.wait()
            response = stub.TrackEvent(event, metadata=(("x-api-key", key),))
            outcomes.append(response.event.id)

        threads = [
            threading.Thread(target=send, args=(running.grpc_ports[n % 2],)) for n in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with httpx.Client(base_url=running.base_url) as http:
            profile = success(http.get("/v1/user-journeys/users/race", headers={"X-API-Key": key}))

    assert len(outcomes) == 8
    assert len(set(outcomes)) == 1
    assert profile["totalEvents"] == 1


def test_only_one_replica_runs_the_analytics_job_at_a_time(
    database: str, postgres: Cluster
) -> None:
    key = new_key(database, "replicas")
    with (
        replicas(database, 2, interval="1") as running,
        httpx.Client(base_url=running.base_url) as http,
    ):
        for n in range(50):
            http.post("/v1/user-journeys/users", headers=headers(key), json={"externalId": f"u{n}"})
        time.sleep(6)  # several ticks of both schedules

    name = database.rsplit("/", 1)[1]
    rows = postgres.psql(
        "SELECT extract(epoch FROM started_at), extract(epoch FROM finished_at) "
        "FROM analytics_runs ORDER BY started_at",
        database=name,
    ).split()
    runs = [tuple(float(v) for v in row.split("|")) for row in rows]
    assert len(runs) >= 2, "both schedules ran"
    for (_, first_end), (second_start, _) in itertools.pairwise(runs):
        assert second_start >= first_end, "two runs overlapped"
    active = postgres.psql(
        "SELECT count(*), count(DISTINCT (user_id, offer_type)) FROM offers "
        "WHERE status = 'active'",
        database=name,
    ).strip()
    total, distinct = (int(v) for v in active.split("|"))
    assert total == distinct == 100, "two welcome offers each, never doubled"


def test_killing_a_replica_mid_load_loses_no_acknowledged_write(database: str) -> None:
    key = new_key(database, "replicas")
    acknowledged: list[str] = []
    with replicas(database, 2) as running:
        stop = threading.Event()

        def load(worker: int) -> None:
            with httpx.Client(base_url=running.base_url, timeout=30) as http:
                n = 0
                while not stop.is_set():
                    user = f"k{worker}-{n}"
                    n += 1
                    items = [
                        {
                            "externalId": user,
                            "category": "CUSTOM",
                            "eventType": "tick",
                            "messageId": f"{user}-{i}",
                        }
                        for i in range(50)
                    ]
                    try:
                        response = http.post(
                            "/v1/user-journeys/track", headers=headers(key), json={"events": items}
                        )
                    except httpx.TransportError:
                        continue
                    if response.status_code == 200:
                        acknowledged.append(user)

        workers = [threading.Thread(target=load, args=(n,)) for n in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(2)
        os.kill(running.servers[0].pid, signal.SIGKILL)
        time.sleep(3)  # the survivor carries the load
        stop.set()
        for worker in workers:
            worker.join(timeout=60)

        with httpx.Client(base_url=running.base_url) as http:
            totals = [
                success(http.get(f"/v1/user-journeys/users/{user}", headers={"X-API-Key": key}))[
                    "totalEvents"
                ]
                for user in acknowledged
            ]

    assert len(acknowledged) > 10
    assert totals == [50] * len(acknowledged)
