"""Errors Envoy itself makes still reach REST clients in the documented envelope."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
from journeys.config import Settings
from journeys.gateway import envoy_binary, render_config

from scripts.stack import free_port, migrate, new_key, running_stack, sql
from tests.api.rest import error, headers


def test_unknown_path_is_not_found(http: httpx.Client, key: str) -> None:
    error(http.get("/v1/user-journeys/nothing-here", headers={"X-API-Key": key}), 404, "Not found")
    error(http.get("/", headers={"X-API-Key": key}), 404, "Not found")


def test_wrong_method_on_a_known_path_is_405_with_allow(http: httpx.Client, key: str) -> None:
    response = http.put("/v1/user-journeys/users/u", headers={"X-API-Key": key})

    error(response, 405, "Method not allowed")
    assert response.headers["allow"] == "GET, HEAD, DELETE, OPTIONS"


def test_body_over_one_mebibyte_is_413(http: httpx.Client, key: str) -> None:
    body = b'{"externalId":"big","metadata":{"blob":"' + b"x" * (1024 * 1024) + b'"}}'

    error(
        http.post("/v1/user-journeys/users", headers=headers(key), content=body),
        413,
        "Request body too large",
    )


def test_success_and_error_responses_leak_no_grpc_headers(http: httpx.Client, key: str) -> None:
    ok = http.post("/v1/user-journeys/users", headers=headers(key), json={"externalId": "h"})
    bad = http.post("/v1/user-journeys/users", headers=headers(key), json={})

    for response in (ok, bad):
        assert not [name for name in response.headers if name.startswith("grpc-")]


def test_upstream_down_is_503_in_the_envelope(tmp_path: Path) -> None:
    settings = Settings(http_port=free_port(), grpc_port=free_port(), admin_port=free_port())
    config = tmp_path / "envoy.yaml"
    # Nothing listens on the gRPC port: Envoy is alone.
    config.write_text(render_config(settings, [(settings.host, settings.grpc_port)]))
    envoy = subprocess.Popen(
        [envoy_binary(), "-c", str(config), "--use-dynamic-base-id", "-l", "critical"]
    )
    try:
        _wait_ready(f"http://127.0.0.1:{settings.admin_port}/ready")

        response = httpx.post(
            f"http://127.0.0.1:{settings.http_port}/v1/user-journeys/users",
            headers=headers("pk_test_" + "0" * 32),
            json={"externalId": "u"},
        )

        error(response, 503, "Service unavailable")
    finally:
        envoy.terminate()
        envoy.wait(timeout=10)


def _wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready")


MISSING_TABLE = {"sqlite": "no such table: users", "postgresql": 'relation "users" does not exist'}


def test_unexpected_failure_is_a_generic_500_logged_with_request_id(
    database_url: str, engine: str
) -> None:
    url = database_url
    migrate(url)
    key = new_key(url, "broken")
    with running_stack(url) as stack:
        # Storage fails under the running server: the profile table is gone.
        cascade = " CASCADE" if engine == "postgresql" else ""  # SQLite checks no references
        sql(url, "DROP TABLE offers", f"DROP TABLE users{cascade}")

        tracked = httpx.post(
            f"{stack.base_url}/v1/user-journeys/users",
            headers={**headers(key), "X-Request-Id": "req-broken-1"},
            json={"externalId": "u"},
        )
        fetched = httpx.get(
            f"{stack.base_url}/v1/user-journeys/users/u",
            headers={"X-API-Key": key, "X-Request-Id": "req-broken-2"},
        )

        error(tracked, 500, "Failed to track user")
        error(fetched, 500, "Internal server error")
        assert "users" not in tracked.text + fetched.text
        # The server's log reaches us through a pipe: wait (bounded) for both lines.
        deadline = time.monotonic() + 15
        while "req-broken-2" not in stack.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = stack.log_text()
        assert "request id req-broken-1" in log
        assert "request id req-broken-2" in log
        assert MISSING_TABLE[engine] in log, "the cause is logged for operators"
