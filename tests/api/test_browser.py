"""The seed's JavaScript `fetch` examples, run by a real headless Chromium in a page served from
another origin than the API: what the page gets is what a partner's web app gets."""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.stack import Stack, migrate, new_key, running_stack
from tests.api.rest import headers, success
from tests.api.test_offers import OFFER_KEYS, run_analytics

BASE = "/v1/user-journeys"

#: The seed's examples (POST users, GET offers), then errors a page must be able to read.
PAGE = """<!doctype html>
<html><body><pre id="out">running</pre><script>
const API = %(api)s;
const KEY = %(key)s;

async function call(path, init) {
  try {
    const response = await fetch(API + path, init);
    const data = await response.json();
    return {status: response.status, data: data,
            requestId: response.headers.get('x-request-id'),
            contentType: response.headers.get('content-type')};
  } catch (failure) {
    return {failure: String(failure)};
  }
}

async function run() {
  const results = {};
  results.created = await call('/v1/user-journeys/users', {
    method: 'POST',
    headers: {'X-API-Key': KEY, 'Content-Type': 'application/json'},
    body: JSON.stringify({
      externalId: 'user_12345', displayName: 'Jane Doe', email: 'jane@example.com',
      country: 'NG', device: 'mobile', source: 'referral',
      tags: {plan: 'premium', cohort: '2025-Q1'}, metadata: {signupDate: '2025-01-15'},
    }),
  });
  results.offers = await call('/v1/user-journeys/users/user_12345/offers', {
    headers: {'X-API-Key': KEY},
  });
  results.unknownUser = await call('/v1/user-journeys/users/nobody', {
    headers: {'X-API-Key': KEY, 'X-Request-Id': 'page-request-1'},
  });
  results.invalidBody = await call('/v1/user-journeys/users', {
    method: 'POST',
    headers: {'X-API-Key': KEY, 'Content-Type': 'application/json'},
    body: '{"externalId": "a", "externalId": "b"}',
  });
  results.noKey = await call('/v1/user-journeys/users/user_12345', {});
  document.getElementById('out').textContent = JSON.stringify(results);
}
run();
</script></body></html>
"""

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium tries the network beyond 127.0.0.1.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=20000",
    "--dump-dom",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is missing: `make test` installs it (make chromium)")
    return found


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A web server of its own: the page's origin is not the API's."""
    root = tmp_path / "site"
    root.mkdir()
    handler = partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def run_page(chromium: str, site: tuple[Path, str], stack: Stack, key: str, tmp: Path) -> Any:
    root, origin = site
    (root / "index.html").write_text(
        PAGE % {"api": json.dumps(stack.base_url), "key": json.dumps(key)}
    )
    profile = tmp / "chromium-profile"
    completed = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"{origin}/index.html"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    dom = completed.stdout
    start, end = dom.find('<pre id="out">'), dom.find("</pre>")
    assert start >= 0, f"no page output:\n{dom}\n{completed.stderr[-2000:]}"
    assert end > start, dom
    text = dom[start + len('<pre id="out">') : end]
    assert text != "running", "the page did not finish"
    return json.loads(html.unescape(text))


def test_a_web_page_on_another_origin_runs_the_seed_fetch_calls(
    chromium: str,
    page_server: tuple[Path, str],
    stack: Stack,
    key: str,
    http: httpx.Client,
    tmp_path: Path,
) -> None:
    success(http.post(f"{BASE}/users", headers=headers(key), json={"externalId": "user_12345"}))
    run_analytics(stack)

    got = run_page(chromium, page_server, stack, key, tmp_path)

    created = got["created"]
    assert created["status"] == 200, got
    assert created["data"]["status"] == "success"
    assert created["data"]["data"]["displayName"] == "Jane Doe"
    assert created["data"]["data"]["tags"] == {"plan": "premium", "cohort": "2025-Q1"}
    assert created["requestId"], "x-request-id is exposed to the page"
    offers = got["offers"]
    assert offers["status"] == 200, got
    held = offers["data"]["data"]["offers"]
    assert {offer["offerType"] for offer in held} == {"welcome_free_play", "welcome_bonus"}
    assert all(list(offer) == OFFER_KEYS and offer["claimedAt"] is None for offer in held)
    assert got["unknownUser"] == {
        "status": 404,
        "data": {"message": "User not found", "code": 404, "status": "error"},
        "requestId": "page-request-1",
        "contentType": "application/json",
    }
    assert got["invalidBody"]["status"] == 400
    assert got["invalidBody"]["data"]["message"] == (
        'Invalid request body: duplicate key "externalId"'
    )
    assert got["noKey"]["status"] == 401
    assert got["noKey"]["data"]["status"] == "error"


def test_a_page_from_an_origin_not_allowed_gets_nothing(
    chromium: str, page_server: tuple[Path, str], database_url: str, tmp_path: Path
) -> None:
    migrate(database_url)
    key = new_key(database_url, "web")
    only = {"JOURNEYS_CORS_ORIGINS": "https://app.partner.test"}
    with running_stack(database_url, env_overrides=only) as restricted:
        got = run_page(chromium, page_server, restricted, key, tmp_path)

    for name in ("created", "offers", "unknownUser", "invalidBody", "noKey"):
        assert got[name] == {"failure": "TypeError: Failed to fetch"}, (name, got)
