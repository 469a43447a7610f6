"""CORS (api.md Part B, "Browsers"): preflights need no key, every response to a request with
an Origin carries Access-Control-Allow-Origin and -Expose-Headers, and JOURNEYS_CORS_ORIGINS
restricts the origins. tests/api/test_browser.py runs the same in a real browser."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import httpx
import pytest
from journeys.config import Settings

from scripts.stack import Stack, migrate, new_key, running_stack
from tests.api.rest import error, headers, success

BASE = "/v1/user-journeys"
ORIGIN = "https://app.partner.test"
EXPOSED = "x-request-id, retry-after"

PATH_METHODS = [
    (f"{BASE}/users", "POST", "GET, HEAD, POST"),
    (f"{BASE}/events", "POST", "POST"),
    (f"{BASE}/track", "POST", "POST"),
    (f"{BASE}/users/u", "DELETE", "GET, HEAD, DELETE"),
    (f"{BASE}/users/u/timeline", "GET", "GET, HEAD"),
    (f"{BASE}/users/u/offers", "GET", "GET, HEAD"),
    (f"{BASE}/users/u/offers/o/claim", "POST", "POST"),
    (f"{BASE}/users/u/export", "GET", "GET, HEAD"),
    (f"{BASE}/segments", "GET", "GET, HEAD"),
    (f"{BASE}/suppressions/u", "DELETE", "DELETE"),
    (f"{BASE}/openapi.json", "GET", "GET, HEAD"),
]


def preflight(http: httpx.Client, path: str, method: str, origin: str = ORIGIN) -> httpx.Response:
    return http.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "x-api-key, content-type",
        },
    )


@pytest.mark.parametrize(("path", "method", "methods"), PATH_METHODS)
def test_a_preflight_needs_no_key_and_answers_204(
    http: httpx.Client, path: str, method: str, methods: str
) -> None:
    response = preflight(http, path, method)

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-methods"] == methods
    allowed = {name.strip() for name in response.headers["access-control-allow-headers"].split(",")}
    assert {"x-api-key", "content-type", "content-encoding", "x-request-id"} <= allowed
    assert response.headers["access-control-max-age"] == "86400"


def test_every_response_to_a_request_with_an_origin_carries_the_cors_headers(
    http: httpx.Client, key: str
) -> None:
    with_origin = {"X-API-Key": key, "Content-Type": "application/json", "Origin": ORIGIN}
    responses = {
        "success": http.post(f"{BASE}/users", headers=with_origin, json={"externalId": "c"}),
        "service error": http.get(f"{BASE}/users/nobody", headers=with_origin),
        "no key": http.get(f"{BASE}/users/c", headers={"Origin": ORIGIN}),
        "malformed body": http.post(f"{BASE}/users", headers=with_origin, content=b"{"),
        "duplicate key": http.post(
            f"{BASE}/users", headers=with_origin, content=b'{"externalId":"c","externalId":"d"}'
        ),
        "unknown path": http.get("/nothing", headers=with_origin),
        "wrong method": http.put(f"{BASE}/users/c", headers=with_origin),
        "unknown method": http.request("FOO", "/nothing", headers=with_origin),
        "too large": http.post(
            f"{BASE}/users", headers=with_origin, content=b"{" + b" " * (1024 * 1024 + 1) + b"}"
        ),
        "gzip too large": http.post(
            f"{BASE}/users",
            headers={**with_origin, "Content-Encoding": "gzip"},
            content=gzip.compress(b'{"externalId":"c","x":"' + b"a" * 1_100_000 + b'"}'),
        ),
        "encoding": http.post(
            f"{BASE}/users", headers={**with_origin, "Content-Encoding": "br"}, content=b"{}"
        ),
        "headers too large": http.get(
            f"{BASE}/users/c", headers={**with_origin, "X-Junk": "j" * 10_000}
        ),
        "document": http.get(f"{BASE}/openapi.json", headers={"Origin": ORIGIN}),
        "head": http.head(f"{BASE}/users/c", headers=with_origin),
        "options": http.options(f"{BASE}/users/c", headers={"Origin": ORIGIN}),
    }

    statuses = {name: response.status_code for name, response in responses.items()}
    assert statuses == {
        "success": 200,
        "service error": 404,
        "no key": 401,
        "malformed body": 400,
        "duplicate key": 400,
        "unknown path": 404,
        "wrong method": 405,
        "unknown method": 501,
        "too large": 413,
        "gzip too large": 413,
        "encoding": 415,
        "headers too large": 431,
        "document": 200,
        "head": 200,
        "options": 204,
    }
    for name, response in responses.items():
        assert response.headers.get("access-control-allow-origin") == ORIGIN, name
        assert response.headers.get("access-control-expose-headers") == EXPOSED, name
        assert "Origin" in response.headers.get_list("vary", split_commas=True), name
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/json", name
            assert list(response.json()) == ["message", "code", "status"], name


def test_without_an_origin_no_cors_headers(http: httpx.Client, key: str) -> None:
    response = http.get(f"{BASE}/users/nobody", headers={"X-API-Key": key})

    error(response, 404, "User not found")
    assert "access-control-allow-origin" not in response.headers


ALLOWED = "https://allowed.partner.test"


@pytest.fixture
def restricted(database_url: str) -> Iterator[Stack]:
    migrate(database_url)
    origins = f" {ALLOWED} , https://other.partner.test:8443"
    with running_stack(database_url, env_overrides={"JOURNEYS_CORS_ORIGINS": origins}) as stack:
        yield stack


def test_cors_origins_restrict_who_gets_allow_origin(restricted: Stack) -> None:
    key = new_key(restricted.database_url, "cors")
    with httpx.Client(base_url=restricted.base_url, timeout=30) as http:
        allowed = preflight(http, f"{BASE}/users", "POST", ALLOWED)
        upper = preflight(http, f"{BASE}/users", "POST", ALLOWED.upper())
        refused = preflight(http, f"{BASE}/users", "POST", "https://evil.test")
        call = {**headers(key), "Origin": ALLOWED}
        ok = http.post(f"{BASE}/users", headers=call, json={"externalId": "r"})
        other = http.post(
            f"{BASE}/users",
            headers={**call, "Origin": "https://evil.test"},
            json={"externalId": "r"},
        )
        failed = http.get(f"{BASE}/users/nobody", headers={**call, "Origin": "https://evil.test"})

    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert upper.headers["access-control-allow-origin"] == ALLOWED.upper()
    assert refused.status_code == 204
    assert "access-control-allow-origin" not in refused.headers
    assert success(ok)["externalId"] == "r"
    assert ok.headers["access-control-allow-origin"] == ALLOWED
    # The gateway does not refuse the call (curl has no origin to check): the browser refuses
    # to hand the answer to the page.
    assert success(other)["externalId"] == "r"
    assert "access-control-allow-origin" not in other.headers
    error(failed, 404, "User not found")
    assert "access-control-allow-origin" not in failed.headers


def test_cors_origins_setting() -> None:
    assert Settings.from_env({}).cors_origins == ("*",)
    assert Settings.from_env({"JOURNEYS_CORS_ORIGINS": " "}).cors_origins == ("*",)
    parsed = Settings.from_env({"JOURNEYS_CORS_ORIGINS": "https://a.test, http://b.test:8080,"})
    assert parsed.cors_origins == ("https://a.test", "http://b.test:8080")
    for bad in ("a.test", "https://a.test/", "https://a.test/path", "*.a.test"):
        with pytest.raises(SystemExit, match="JOURNEYS_CORS_ORIGINS must be"):
            Settings.from_env({"JOURNEYS_CORS_ORIGINS": bad})
