"""Every curl example in README.md and docs/ runs against a live server, so the docs cannot rot.

Each file's fenced ```sh blocks that contain `curl` (or set a placeholder) run in order, as one
walk through the API, in bash from the repository root, with a fresh key: the ports of
`make run` (8080, 9901, 9464) become the test server's, `NAME=...` placeholder lines get a value
(the key, or the id of the first offer in the last answer that listed offers), and
`.venv/bin/journeys` commands run against the test server's database. Every curl must answer
2xx (with the success envelope if the body is one), unless a `# answers STATUS: BODY` comment
above it says what it answers.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from journeys.config import REPO_ROOT
from journeys.domain import Environment, KeyKind
from sqlalchemy.engine import make_url

from scripts.stack import Stack, free_port, migrate, running_stack
from tests.api.rest import headers, success

BASE = "/v1/user-journeys"

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)
PLACEHOLDER = re.compile(r"^(?P<name>[A-Z_]+)=(?:[ps]k_test_)?\.\.\.(?:\s+#.*)?$")
ANSWERS = re.compile(r"^\s*# answers (?P<status>\d{3})(?::\s*(?P<body>.+))?$")

#: bash run before a file's blocks: `curl` records each call's status, body and expectation.
PRELUDE = r"""
set -euo pipefail
__n=0
__expect=""
curl() {
  __n=$((__n + 1))
  printf '%s' "$__expect" > "$__out/$__n.expect"
  printf '%s' "$__block" > "$__out/$__n.block"
  __expect=""
  command curl --silent --show-error --max-time 60 --output "$__out/$__n.body" \
    --write-out '%{http_code}' "$@" > "$__out/$__n.status"
}
__offer_id() {  # the first offer's id in the latest answer that listed offers
  "$__python" -c '
import json, pathlib, sys
bodies = sorted(pathlib.Path(sys.argv[1]).glob("*.body"), key=lambda p: int(p.stem))
for path in reversed(bodies):
    try:
        offers = json.loads(path.read_bytes())["data"]["offers"]
    except (ValueError, KeyError, TypeError):
        continue
    print(offers[0]["id"])
    break
else:
    sys.exit("no answer listed offers before OFFER_ID=...")
' "$__out"
}
"""

RESOLVERS = {
    "KEY": '"$__key"',
    "SECRET_KEY": '"$__secret_key"',
    "OFFER_ID": '"$(__offer_id)"',
}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # where the block starts, for messages
    text: str


def curl_blocks(path: Path) -> list[Block]:
    text = path.read_text()
    return [
        Block(path, text.count("\n", 0, match.start()) + 1, match.group(1))
        for match in SH_BLOCK.finditer(text)
        if re.search(r"^\s*curl\b", match.group(1), re.MULTILINE)
        or any(PLACEHOLDER.match(line) for line in match.group(1).splitlines())
    ]


def script(blocks: list[Block], stack: Stack, metrics_port: int) -> str:
    ports = {
        "127.0.0.1:8080": f"127.0.0.1:{stack.http_port}",
        "127.0.0.1:9901": f"127.0.0.1:{stack.admin_port}",
        "127.0.0.1:9464": f"127.0.0.1:{metrics_port}",
    }
    lines = [PRELUDE]
    for number, block in enumerate(blocks):
        lines.append(f"__block={shlex.quote(f'{block.path.name}:{block.line}')}")
        for line in block.text.splitlines():
            for documented, actual in ports.items():
                line = line.replace(documented, actual)
            placeholder = PLACEHOLDER.match(line)
            answers = ANSWERS.match(line)
            if placeholder:
                name = placeholder.group("name")
                assert name in RESOLVERS, f"{block.path.name}:{block.line}: no value for {name}"
                line = f"{name}={RESOLVERS[name]}"
            elif answers:
                line = f"__expect={shlex.quote(line.split('# answers ', 1)[1])}"
            lines.append(line)
        lines.append(f": end of block {number}")
    return "\n".join(lines) + "\n"


def check_answers(out: Path) -> list[str]:
    problems: list[str] = []
    for status_file in sorted(out.glob("*.status"), key=lambda p: int(p.stem)):
        n = status_file.stem
        where = (out / f"{n}.block").read_text()
        status = int(status_file.read_text())
        body = (out / f"{n}.body").read_bytes() if (out / f"{n}.body").exists() else b""
        expect = (out / f"{n}.expect").read_text()
        label = f"{where}, curl #{n}: {status} {body[:200]!r}"
        if expect:
            expected_status, _, expected_body = expect.partition(":")
            if status != int(expected_status):
                problems.append(f"{label}: expected {expected_status}")
            elif expected_body.strip() and json.loads(body) != json.loads(expected_body):
                problems.append(f"{label}: expected body {expected_body.strip()}")
            continue
        if not 200 <= status < 300:
            problems.append(f"{label}: expected a 2xx")
            continue
        try:
            document = json.loads(body)
        except ValueError:
            continue  # Envoy's `LIVE`, Prometheus text
        if not isinstance(document, dict) or "status" not in document:
            continue  # no envelope: the OpenAPI document
        if list(document) != ["status", "data"] or document["status"] != "success":
            problems.append(f"{label}: not the success envelope")
    return problems


@pytest.fixture
def docs_stack(database_url: str) -> Iterator[tuple[Stack, int]]:
    """A server of this test's own, with metrics on, for the operations examples."""
    migrate(database_url)
    metrics_port = free_port()
    with running_stack(
        database_url, env_overrides={"JOURNEYS_METRICS_PORT": str(metrics_port)}
    ) as stack:
        yield stack, metrics_port


def test_the_docs_have_curl_examples_for_every_endpoint() -> None:
    commands = {
        path.name: sum(block.text.count("curl ") for block in curl_blocks(path)) for path in DOCS
    }
    assert commands["README.md"] >= 8
    assert commands["api.md"] >= 15
    assert commands["operations.md"] >= 3
    api = "\n".join(block.text for block in curl_blocks(REPO_ROOT / "docs" / "api.md"))
    for endpoint in [
        "-X POST http://127.0.0.1:8080/v1/user-journeys/users ",
        "-X POST http://127.0.0.1:8080/v1/user-journeys/events ",
        "-X POST http://127.0.0.1:8080/v1/user-journeys/track ",
        "http://127.0.0.1:8080/v1/user-journeys/users/user_12345 ",
        "/v1/user-journeys/users/user_12345/timeline?",
        "http://127.0.0.1:8080/v1/user-journeys/users/user_12345/offers ",
        "/offers/$OFFER_ID/claim",
        "http://127.0.0.1:8080/v1/user-journeys/openapi.json",
        "http://127.0.0.1:8080/v1/user-journeys/segments ",
        "/v1/user-journeys/users?lifecycleStage=",
        '-X DELETE "http://127.0.0.1:8080/v1/user-journeys/users/leaving_user?suppress=true"',
        "-X DELETE http://127.0.0.1:8080/v1/user-journeys/suppressions/",
        "/export ",
        "-X POST http://127.0.0.1:8080/v1/user-journeys/webhooks ",
        "http://127.0.0.1:8080/v1/user-journeys/webhooks -H",
        "-X DELETE http://127.0.0.1:8080/v1/user-journeys/webhooks/",
        "/deliveries?limit=",
    ]:
        assert endpoint in api, endpoint


def test_every_curl_example_runs(docs_stack: tuple[Stack, int], tmp_path: Path) -> None:
    stack, metrics_port = docs_stack
    failures: list[str] = []
    for path in DOCS:
        blocks = curl_blocks(path)
        if not blocks:
            continue
        out = tmp_path / path.stem
        out.mkdir()
        partner = f"docs-{uuid.uuid4()}"
        key = stack.new_key(partner)
        secret_key = stack.new_key(partner, Environment.TEST, KeyKind.SECRET)
        result = subprocess.run(
            ["bash", "-c", script(blocks, stack, metrics_port)],
            cwd=REPO_ROOT,
            env={
                **stack.env(),
                "__out": str(out),
                "__key": key,
                "__secret_key": secret_key,
                "__python": sys.executable,
            },
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            failures.append(f"{path.name}: the script failed: {result.stderr[-2000:]}")
        failures.extend(check_answers(out))
        if not list(out.glob("*.status")):
            failures.append(f"{path.name}: no curl ran")
    assert not failures, "\n".join(failures)


@pytest.mark.sqlite_only
def test_the_documented_sqlite_backup_works_while_serving(
    docs_stack: tuple[Stack, int], tmp_path: Path
) -> None:
    stack, _ = docs_stack
    operations = (REPO_ROOT / "docs" / "operations.md").read_text()
    (command,) = re.findall(r'^sqlite3 data/journeys\.db "\.backup .*"$', operations, re.MULTILINE)
    database = make_url(stack.database_url).database
    assert database is not None
    key = stack.new_key(f"backup-{uuid.uuid4()}")
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        for number in range(20):
            success(
                http.post(f"{BASE}/users", headers=headers(key), json={"externalId": f"b{number}"})
            )
    # pytest's temporary paths need no quoting.
    command = command.replace("data/journeys.db", database).replace(
        "data/journeys-", f"{tmp_path}/journeys-"
    )
    subprocess.run(["bash", "-c", command], check=True, timeout=60)
    (backup,) = tmp_path.glob("journeys-*.db")
    check = subprocess.run(
        ["sqlite3", str(backup), "PRAGMA integrity_check", "SELECT count(*) FROM users"],
        capture_output=True,
        text=True,
        check=True,
    )
    integrity, users = check.stdout.split()
    assert integrity == "ok"
    assert int(users) >= 20, "every committed user is in the backup, WAL included"
