"""Schemathesis against the live gateway, with every check: the OpenAPI document carries every
request rule (so each request it calls valid is accepted, and each it calls invalid is
refused), and every answer matches it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from journeys.domain import Environment, KeyKind

from scripts.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def test_schemathesis_with_all_checks_finds_no_failure(
    delivering_stack: Stack, tmp_path: Path
) -> None:
    # A secret key reaches every operation, the partner operations included. The stack may
    # deliver webhooks to 127.0.0.1, so the webhooks the run creates (all pointed there by
    # the hooks) are accepted as a partner's would be.
    stack = delivering_stack
    secret_key = stack.new_key("schemathesis", Environment.TEST, KeyKind.SECRET)
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{stack.base_url}/v1/user-journeys/openapi.json",
            "--checks",
            "all",
            "--header",
            f"X-API-Key: {secret_key}",
            "--max-examples",
            "60",
            # The same cases on every run, and none remembered from an earlier one.
            "--seed",
            "20261202",
            "--generation-database",
            "none",
            "--no-color",
            "--workers",
            "1",
        ],
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.ecosystem.schemathesis_hooks",
            "PYTHONPATH": str(ROOT),
            "JOURNEYS_TEST_BASE_URL": stack.base_url,
            "JOURNEYS_TEST_SECRET_KEY": secret_key,
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    summary = result.stdout[-4000:]
    assert result.returncode == 0, summary
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in summary, summary
    counts = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert counts is not None, summary
    generated, passed = map(int, counts.groups())
    assert generated == passed > 500, summary
