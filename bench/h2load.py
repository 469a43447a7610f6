"""Drives a server with h2load and reads back throughput, latency percentiles and CPU.

gRPC is spoken directly: HTTP/2 POSTs of one length-prefixed message (flag byte 0, 4-byte
big-endian length, the serialized request). A gRPC error still answers HTTP 200, so for gRPC
the DATA bytes received are checked against the size of a successful response: an error
answer carries no message, so every failed call would be missing one whole response.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

H2LOAD = "h2load"


def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


@dataclass(frozen=True)
class Load:
    """One h2load run's settings."""

    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None = None
    http1: bool = False
    clients: int = 32
    streams_per_client: int = 1
    seconds: float = 3.0
    warmup_seconds: float = 1.0


@dataclass
class Measured:
    requests: int
    succeeded: int
    failed: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    data_bytes: int
    status_2xx: int
    loadgen_cpu: float  # h2load's CPU seconds / wall seconds (1.0 = one core)
    server_cpu: dict[str, float] = field(default_factory=dict)  # same, per watched process
    checked: str = ""

    def as_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def run(load: Load, watch: dict[str, int] | None = None) -> Measured:
    """Runs h2load once; `watch` names processes whose CPU use over the run is reported."""
    with tempfile.TemporaryDirectory(prefix="journeys-h2load-") as scratch:
        log_file = Path(scratch) / "requests.log"
        command = [
            H2LOAD,
            f"--clients={load.clients}",
            f"--max-concurrent-streams={load.streams_per_client}",
            "--threads=1",
            f"--duration={round(load.seconds * 1000)}ms",
            f"--warm-up-time={round(load.warmup_seconds * 1000)}ms",
            f"--log-file={log_file}",
        ]
        for name, value in load.headers:
            command.append(f"--header={name}: {value}")
        if load.body is not None:
            body = Path(scratch) / "body"
            body.write_bytes(load.body)
            command.append(f"--data={body}")
        if load.http1:
            command.append("--h1")
        command.append(load.url)
        cpu_before = {name: _cpu(name, pid) for name, pid in (watch or {}).items()}
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert process.stdout is not None
        output = process.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        cpu_after = {name: _cpu(name, pid) for name, pid in (watch or {}).items()}
        if process.returncode != 0:
            raise RuntimeError(f"h2load failed ({process.returncode}):\n{output}")
        latencies = sorted(_latencies_us(log_file))
    summary = _summary(output)
    return Measured(
        requests=summary["done"],
        succeeded=summary["succeeded"],
        failed=summary["failed"] + summary["errored"] + summary["timeout"],
        seconds=load.seconds,
        rps=summary["succeeded"] / load.seconds,
        p50_ms=_percentile(latencies, 0.50) / 1000,
        p99_ms=_percentile(latencies, 0.99) / 1000,
        data_bytes=summary["data"],
        status_2xx=summary["2xx"],
        loadgen_cpu=(usage.ru_utime + usage.ru_stime) / max(wall, 1e-9),
        server_cpu={
            name: _cpu_delta(cpu_before[name], cpu_after[name]) / max(wall, 1e-9)
            for name in cpu_before
        },
    )


def _latencies_us(log_file: Path) -> list[int]:
    """h2load's log: start (µs since epoch), status, elapsed (µs) per request; written for the
    measurement period only."""
    found = []
    for line in log_file.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            found.append(int(parts[2]))
    return found


def _percentile(sorted_values: list[int], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return float(sorted_values[index])


_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_TRAFFIC = re.compile(r"traffic: .*?, \S+ \((\d+)\) data")


def _summary(output: str) -> dict[str, int]:
    requests = _REQUESTS.search(output)
    status = _STATUS.search(output)
    traffic = _TRAFFIC.search(output)
    if requests is None or status is None or traffic is None:
        raise RuntimeError(f"cannot read h2load's summary:\n{output}")
    total, _started, done, succeeded, failed, errored, timeout = map(int, requests.groups())
    return {
        "total": total,
        "done": done,
        "succeeded": succeeded,
        "failed": failed,
        "errored": errored,
        "timeout": timeout,
        "2xx": int(status.group(1)),
        "data": int(traffic.group(1)),
    }


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (its threads included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _cpu(name: str, pid: int) -> dict[int, float]:
    """A watched process's CPU seconds by pid; PostgreSQL's are its postmaster's and
    backends'."""
    pids = [pid, *children(pid)] if name == "postgres" else [pid]
    return {each: process_cpu_seconds(each) for each in pids}


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two snapshots by the processes alive at the second (a backend born in
    between counts from zero; one that exited in between is lost)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
