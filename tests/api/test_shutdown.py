"""SIGTERM under load: calls in flight finish, acknowledged writes are kept, exit is clean."""

from __future__ import annotations

import signal
import threading
import time

import httpx

from scripts.stack import migrate, new_key, running_stack, sql
from tests.api.rest import headers


def test_sigterm_during_load_drains_and_loses_no_acknowledged_write(database_url: str) -> None:
    url = database_url
    migrate(url)
    key = new_key(url, "drain")
    acknowledged: list[str] = []
    statuses: list[int] = []
    lock = threading.Lock()
    with running_stack(url) as stack:

        def client(worker: int) -> None:
            with httpx.Client(base_url=stack.base_url, timeout=30) as http:
                for n in range(10_000):
                    external_id = f"w{worker}-{n}"
                    try:
                        response = http.post(
                            "/v1/user-journeys/users",
                            headers=headers(key),
                            json={"externalId": external_id},
                        )
                    except httpx.TransportError:
                        return  # the gateway is gone: refused, never half-answered
                    with lock:
                        statuses.append(response.status_code)
                        if response.status_code == 200:
                            acknowledged.append(external_id)
                    if response.status_code != 200:
                        assert response.json()["status"] == "error"
                        return

        workers = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for worker in workers:
            worker.start()
        time.sleep(1.5)
        started = time.monotonic()
        stack.process.send_signal(signal.SIGTERM)
        exit_code = stack.process.wait(timeout=30)
        stopped_after = time.monotonic() - started
        for worker in workers:
            worker.join(timeout=30)

    assert exit_code == 0, stack.log_text()
    assert stopped_after < 15, "the drain is bounded by JOURNEYS_SHUTDOWN_GRACE"
    assert len(acknowledged) >= 10, "the load really ran before the signal"
    assert set(statuses) <= {200, 503}, statuses
    stored = {row[0] for row in sql(url, "SELECT external_id FROM users")}
    assert set(acknowledged) <= stored
