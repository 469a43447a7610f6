"""Installing journeys: `make run` needs only Python and make, and the server wheel
(`make wheel`) in a fresh virtualenv outside the checkout serves the API through its own Envoy,
reading nothing from the repository."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from journeys.app import READY_LINE

from scripts.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
KEY = re.compile(r"pk_test_[0-9a-f]{32}")


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_make_run_needs_only_python_and_make() -> None:
    """Every command `make run` would run on a new machine (all targets out of date): no npm,
    no system packages, no PostgreSQL."""
    commands = _run("make", "--no-print-directory", "--dry-run", "--always-make", "run", cwd=ROOT)

    assert "journeys serve" in commands
    for tool in ("npm", "apt-get", "buf", "pgcluster", "initdb", "chromium", "sudo"):
        assert tool not in commands, (tool, commands)


def test_the_wheel_installed_in_a_fresh_venv_serves_the_api(tmp_path: Path) -> None:
    dist, venv, workdir = tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    workdir.mkdir()
    _run(
        "make",
        "--no-print-directory",
        "wheel",
        f"DIST={dist}",
        f"SERVER_BUILD={tmp_path / 'build'}",
        cwd=ROOT,
    )
    (wheel,) = dist.glob("journeys-*.whl")
    _run(sys.executable, "-m", "venv", venv, cwd=workdir)
    _run(
        venv / "bin" / "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "-c",
        ROOT / "constraints.txt",
        wheel,
        cwd=workdir,
    )
    installed = _run(
        venv / "bin" / "python", "-c", "import journeys; print(journeys.__file__)", cwd=workdir
    )
    assert Path(installed.strip()).is_relative_to(venv), installed

    # No JOURNEYS_DATABASE_URL: the embedded default, under the current directory.
    env = {name: value for name, value in os.environ.items() if not name.startswith("JOURNEYS_")}
    http_port = free_port()
    env |= {
        "PATH": f"{venv / 'bin'}:{env['PATH']}",
        "PYTHONPATH": "",
        "JOURNEYS_HTTP_PORT": str(http_port),
        "JOURNEYS_GRPC_PORT": str(free_port()),
        "JOURNEYS_ADMIN_PORT": str(free_port()),
        "JOURNEYS_METRICS_PORT": "0",
        "JOURNEYS_ANALYTICS_INTERVAL": "0",
    }
    _run(venv / "bin" / "journeys", "migrate", cwd=workdir, env=env)
    assert (workdir / "data" / "journeys.db").is_file()
    server = subprocess.Popen(
        [str(venv / "bin" / "journeys"), "serve", "--demo-key"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        output = []
        for line in server.stdout:
            output.append(line)
            if READY_LINE in line:
                break
        key = KEY.search("".join(output))
        assert key is not None, "".join(output)

        base = f"http://127.0.0.1:{http_port}/v1/user-journeys"
        with httpx.Client(timeout=30) as http:
            created = http.post(
                f"{base}/users",
                json={"externalId": "wheel_user"},
                headers={"X-API-Key": key.group()},
            )
            document = http.get(f"{base}/openapi.json")
            missing = http.get(f"{base}/users/nobody", headers={"X-API-Key": key.group()})

        assert created.status_code == 200, created.text
        assert created.json()["data"]["externalId"] == "wheel_user"
        assert document.status_code == 200
        assert "/v1/user-journeys/track" in document.json()["paths"]
        assert missing.json() == {"message": "User not found", "code": 404, "status": "error"}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
