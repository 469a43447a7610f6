"""The "workers 1 vs N" scenario (`--only workers`): GetOffers and GetUser over gRPC against
`journeys serve --workers 1` and `--workers N` on the same database, and against one no-op
server and N no-op servers sharing one port (SO_REUSEPORT, as the workers do). The ratio is N
workers' reads over one worker's; the target: `--workers 2` serves >= 1.8x the reads of
`--workers 1`. h2load's 32 connections are spread over the processes by the kernel."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from bench import h2load
from bench.noop_server import READY_LINE as NOOP_READY
from bench.report import Row
from scripts.stack import free_port

WORKERS = 2
TARGET = 1.8
READS = ("GetOffers", "GetUser")
SCENARIO = f"Workers 1 vs {WORKERS}"


@contextlib.contextmanager
def noop_servers(canned: Path, count: int, cwd: Path) -> Iterator[tuple[str, list[int]]]:
    """`count` no-op servers on one port: its target and their pids."""
    port = free_port()
    processes: list[subprocess.Popen[str]] = []
    try:
        for _ in range(count):
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.noop_server",
                    f"--port={port}",
                    f"--canned={canned}",
                    "--share-port",
                ],
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            processes.append(process)
            assert process.stdout is not None
            line = process.stdout.readline()
            if NOOP_READY not in line:
                raise RuntimeError(f"a no-op server did not start: {line}{process.stdout.read()}")
        yield f"127.0.0.1:{port}", [process.pid for process in processes]
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def worker_pids(supervisor: int) -> list[int]:
    """The worker processes of a `journeys serve --workers N` (not its Envoy)."""
    return [
        child
        for child in h2load.children(supervisor)
        if b"--worker" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def watch(pids: list[int], postmaster: int | None) -> dict[str, int]:
    """The processes whose CPU a load reports: each server process, and PostgreSQL."""
    found = {f"server {index}": pid for index, pid in enumerate(pids)}
    if postmaster is not None:
        found["postgres"] = postmaster
    return found


def row(call: str, engine: str, one: h2load.Measured, many: h2load.Measured) -> Row:
    ratio = many.rps / one.rps
    cpu = " + ".join(f"{name} {share:.0%}" for name, share in many.server_cpu.items())
    return Row(
        scenario=SCENARIO,
        call=call,
        engine=engine,
        measured=f"{many.rps:,.0f} req/s, p99 {many.p99_ms:.1f} ms ({WORKERS} workers)",
        baseline=f"{one.rps:,.0f} req/s, p99 {one.p99_ms:.1f} ms (1 worker)",
        ratio=ratio,
        ratio_label=f"{ratio:.2f}x",
        target=f">= {TARGET}x",
        met=ratio >= TARGET,
        extra=f"CPU at {WORKERS}: {cpu}; h2load {many.loadgen_cpu:.0%}",
        details={"one": one.as_json(), "many": many.as_json()},
    )
