"""kill -9 of the server under load: every acknowledged write survives, nothing is half
written, and Envoy answers 503 in the envelope until the server is back."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
from journeys.config import Settings
from journeys.gateway import envoy_binary, render_config

from scripts.stack import free_port, migrate, new_key, running_stack, stack_env, start_journeys
from tests.api.rest import error, headers, success

BATCH = 200


def test_kill_9_during_batches_loses_no_acknowledged_write(database_url: str) -> None:
    url = database_url
    migrate(url)
    key = new_key(url, "crash")
    acknowledged: list[str] = []
    attempted: list[str] = []
    lock = threading.Lock()
    with running_stack(url) as stack:

        def stream(worker: int) -> None:
            with httpx.Client(base_url=stack.base_url, timeout=30) as http:
                for n in range(100_000):
                    user = f"w{worker}-b{n}"
                    items = [
                        {
                            "externalId": user,
                            "category": "GAME_PLAY",
                            "eventType": "spin",
                            "messageId": f"{user}-{i}",
                        }
                        for i in range(BATCH)
                    ]
                    with lock:
                        attempted.append(user)
                    try:
                        response = http.post(
                            "/v1/user-journeys/track", headers=headers(key), json={"events": items}
                        )
                    except httpx.TransportError:
                        return
                    if response.status_code != 200:
                        return
                    assert response.json()["data"]["accepted"] == BATCH
                    with lock:
                        acknowledged.append(user)

        workers = [threading.Thread(target=stream, args=(n,)) for n in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(2.5)
        os.kill(stack.process.pid, signal.SIGKILL)
        stack.process.wait(timeout=10)
        for worker in workers:
            worker.join(timeout=60)

    assert len(acknowledged) >= 5, "the load really ran before the kill"
    with running_stack(url) as restarted, httpx.Client(base_url=restarted.base_url) as http:
        lost, half = [], []
        for user in attempted:
            response = http.get(f"/v1/user-journeys/users/{user}", headers={"X-API-Key": key})
            if response.status_code == 404:
                if user in acknowledged:
                    lost.append(user)
                continue
            total = success(response)["totalEvents"]
            if total != BATCH:
                half.append((user, total))
    print(f"kill -9 after {len(acknowledged)} acknowledged of {len(attempted)} attempted batches")
    assert lost == [], "acknowledged batches missing after the crash"
    assert half == [], "batches stored in part"


def test_envoy_answers_503_while_the_server_is_down_and_recovers(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'recover.db'}"
    migrate(url)
    key = new_key(url, "recover")
    settings = Settings(http_port=free_port(), grpc_port=free_port(), admin_port=free_port())
    config = tmp_path / "envoy.yaml"
    config.write_text(render_config(settings, [(settings.host, settings.grpc_port)]))
    envoy = subprocess.Popen(
        [envoy_binary(), "-c", str(config), "--use-dynamic-base-id", "-l", "critical"]
    )
    env = stack_env(url, settings.http_port, settings.grpc_port, settings.admin_port)
    base = f"http://127.0.0.1:{settings.http_port}/v1/user-journeys/users/u"
    try:
        server = start_journeys(["serve", "--no-gateway"], env)
        assert _poll_status(base, key) == 404
        server.kill()
        server.wait(timeout=10)

        error(httpx.get(base, headers={"X-API-Key": key}), 503, "Service unavailable")

        server = start_journeys(["serve", "--no-gateway"], env)
        assert _poll_status(base, key) == 404, "Envoy reconnects by itself"
        server.terminate()
        server.wait(timeout=30)
    finally:
        envoy.terminate()
        envoy.wait(timeout=10)


def _poll_status(url: str, key: str, timeout: float = 30) -> int:
    """The first status other than 503 (Envoy retries its connection on its own)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = httpx.get(url, headers={"X-API-Key": key}).status_code
        except httpx.TransportError:
            status = 503
        if status != 503 or time.monotonic() > deadline:
            return status
        time.sleep(0.2)
