"""The client package: `make dist` builds a wheel holding only the generated client code; a
fresh virtualenv with nothing but that wheel and its pinned dependencies calls the running
server, with the README's own example."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from journeys.config import REPO_ROOT

from scripts.stack import BIN, Stack

README = REPO_ROOT / "README.md"
CONSTRAINTS = REPO_ROOT / "constraints.txt"


@dataclass(frozen=True)
class Client:
    wheel: Path
    python: Path  # a virtualenv's interpreter with the wheel installed

    def run(self, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        # -I: neither the working directory nor PYTHONPATH is on sys.path, so only what the
        # virtualenv holds can be imported.
        return subprocess.run(
            [str(self.python), "-I", "-c", code],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="session")
def client(tmp_path_factory: pytest.TempPathFactory) -> Client:
    root = tmp_path_factory.mktemp("client")
    built = subprocess.run(
        [
            "make",
            "--no-print-directory",
            # Package what `make` generated for this run; never regenerate under running tests.
            "--old-file=.venv/.installed",
            "--old-file=service/gamifyhost/.generated",
            "dist",
            f"DIST={root / 'dist'}",
            f"CLIENT_BUILD={root / 'build'}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (root / "dist").glob("journeys_client-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [
            str(BIN / "pip"),
            "--python",
            str(python),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(CONSTRAINTS),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return Client(wheel, python)


def readme_client_example() -> str:
    section = README.read_text().split("### The client package", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, "README: the client package section shows a Python example"
    return found.group(1)


def test_the_wheel_holds_only_the_client_with_type_stubs(client: Client) -> None:
    with zipfile.ZipFile(client.wheel) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(
            next(name for name in names if name.endswith(".dist-info/METADATA"))
        ).decode()
    code = [name for name in names if ".dist-info/" not in name]
    assert all(name.startswith("gamifyhost/") for name in code), code
    assert "gamifyhost/py.typed" in code
    modules = {name for name in code if name.endswith(".py") and "_pb2" in name}
    assert "gamifyhost/userjourneys/v1/user_journeys_service_pb2_grpc.py" in modules
    for module in modules:
        assert module + "i" in code, f"{module} has its .pyi type stub"
    # The code was generated with the pinned versions and refuses older runtimes: the lower
    # bounds must follow the pins.
    pins = dict(line.split("==") for line in CONSTRAINTS.read_text().splitlines() if "==" in line)
    requirements = dict(re.findall(r"^Requires-Dist: ([\w.-]+)(\S*)", metadata, re.MULTILINE))
    assert sorted(requirements) == ["googleapis-common-protos", "grpcio", "protobuf"]
    for name, spec in requirements.items():
        assert f">={pins[name]}" in spec.split(","), (name, spec, pins[name])


def test_the_readme_example_calls_the_server_from_a_fresh_virtualenv(
    client: Client, stack: Stack, key: str, tmp_path: Path
) -> None:
    example = readme_client_example()
    assert len([line for line in example.splitlines() if line]) <= 7, "a short example"
    assert "127.0.0.1:50051" in example
    assert "pk_test_..." in example
    code = example.replace("127.0.0.1:50051", stack.direct_target).replace("pk_test_...", key)

    result = client.run(code, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    user_id, stage = result.stdout.split()
    assert re.fullmatch(r"[0-9a-f-]{36}", user_id)
    assert stage == "new"


def test_the_client_works_through_envoy_and_reads_rich_errors(
    client: Client, stack: Stack, key: str, tmp_path: Path
) -> None:
    code = f"""
import importlib.util, grpc
from google.rpc import error_details_pb2, status_pb2
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2_grpc as rpc

assert importlib.util.find_spec("journeys") is None, "nothing of the server"
with grpc.insecure_channel({stack.gateway_target!r}) as channel:
    stub = rpc.UserJourneysServiceStub(channel)
    metadata = [("x-api-key", {key!r})]
    stub.TrackUser(pb.TrackUserRequest(external_id="via_envoy", country="ng"), metadata=metadata)
    print(stub.GetUser(pb.GetUserRequest(external_id="via_envoy"), metadata=metadata).country)
    try:
        stub.TrackUser(pb.TrackUserRequest(external_id="via_envoy", phone="1" * 21),
                       metadata=metadata)
    except grpc.RpcError as error:
        details = dict(error.trailing_metadata())["grpc-status-details-bin"]
        status = status_pb2.Status.FromString(details)
        bad = error_details_pb2.BadRequest()
        assert any(detail.Unpack(bad) for detail in status.details)
        print(error.code().name, bad.field_violations[0].field)
"""
    result = client.run(code, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["NG", "INVALID_ARGUMENT", "phone"]
