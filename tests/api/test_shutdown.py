"""SIGTERM under load: calls in flight finish (one still uploading its body included), new
connections are refused, acknowledged writes are kept, exit is clean."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time

import httpx

from scripts.stack import Stack, migrate, new_key, running_stack, sql
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


def _active_requests(stack: Stack) -> int:
    stats = httpx.get(
        f"http://127.0.0.1:{stack.admin_port}/stats",
        params={"format": "json", "filter": r"^http\.journeys\.downstream_rq_active$"},
    ).json()["stats"]
    return sum(int(stat["value"]) for stat in stats)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_answers_a_request_still_uploading_and_refuses_new_connections(
    database_url: str,
) -> None:
    """The gateway used to close such a connection with no answer."""
    url = database_url
    migrate(url)
    key = new_key(url, "upload")
    body = json.dumps({"externalId": "uploader", "metadata": {"pad": "p" * 4000}}).encode()
    with running_stack(url) as stack:
        upload = socket.create_connection(("127.0.0.1", stack.http_port), timeout=30)
        upload.sendall(
            (
                "POST /v1/user-journeys/users HTTP/1.1\r\nHost: journeys\r\n"
                f"X-API-Key: {key}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body[: len(body) // 2]
        )
        deadline = time.monotonic() + 10
        while _active_requests(stack) < 1:
            assert time.monotonic() < deadline, "the gateway never saw the request"
            time.sleep(0.05)

        stack.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not _refused(stack.http_port):
            assert time.monotonic() < deadline, "new connections are still accepted"
            time.sleep(0.05)
        time.sleep(1)  # still uploading, well after the signal
        upload.sendall(body[len(body) // 2 :])
        answer = http.client.HTTPResponse(upload)
        answer.begin()
        received = json.loads(answer.read())
        upload.close()
        exit_code = stack.process.wait(timeout=30)

    assert answer.status == 200, received
    assert received["status"] == "success"
    assert received["data"]["externalId"] == "uploader"
    assert received["data"]["metadata"] == {"pad": "p" * 4000}
    assert answer.getheader("connection") == "close", "a draining gateway closes after answering"
    assert exit_code == 0, stack.log_text()
    assert sql(url, "SELECT external_id FROM users") == [("uploader",)]
