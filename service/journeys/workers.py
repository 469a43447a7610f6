"""The worker processes of `journeys serve --workers N`: started, watched and stopped by the
supervising parent (journeys.app).

Each worker is a fresh interpreter (`python -m journeys serve --worker I --no-gateway`), so it
inherits no gRPC state: the parent never starts a gRPC server or its threads. Workers listen on
the one gRPC port together (SO_REUSEPORT, transport/server.py), each in a session of its own
so a terminal's Ctrl-C reaches only the parent, which stops them in order. The parent talks to
a worker over its standard streams: the worker prints READY_LINE on stdout once it serves
(health SERVING), and reads `stop SECONDS` on stdin, the grace its in-flight calls get. A
worker whose stdin closes (the parent died, even by kill -9) stops as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("journeys")
STOP_COMMAND = "stop"
#: How long the parent waits for a worker to serve, and beyond the grace for one to exit.
START_SECONDS = 60.0
EXIT_SECONDS = 10.0


def ensure_port_free(host: str, port: int) -> None:
    """Refuses a gRPC port any other socket listens on, before workers share it: SO_REUSEPORT
    would let them join a group another server of this user already holds. (A process that
    binds it between this check and the workers' own binds is not caught.)"""
    with socket.socket() as probe:
        # SO_REUSEADDR as gRPC sets it: closed connections in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise SystemExit(f"cannot listen on {host}:{port}: the port is in use") from None
            raise


def worker_metrics_port(metrics_port: int, index: int) -> int:
    """Worker I serves its metrics on JOURNEYS_METRICS_PORT + I (0 stays off)."""
    return metrics_port + index if metrics_port > 0 else 0


@dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process
    ready: asyncio.Event
    output: asyncio.Task[None]


class Workers:
    """N worker processes, each serving once it prints `ready_line`. `on_exit(index, status)`
    is called when one exits before `stop`."""

    def __init__(self, count: int, ready_line: str, on_exit: Callable[[int, int], None]) -> None:
        self._count = count
        self._ready_line = ready_line
        self._on_exit = on_exit
        self._workers: list[_Worker] = []
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        return [worker.process.pid for worker in self._workers]

    async def start(self) -> None:
        """Starts every worker and returns once all of them serve; raises RuntimeError if one
        exits or does not serve within START_SECONDS."""
        for index in range(self._count):
            self._workers.append(await self._spawn(index))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_SECONDS
        for worker in self._workers:
            ready = asyncio.ensure_future(worker.ready.wait())
            exited = asyncio.ensure_future(worker.process.wait())
            await asyncio.wait(
                (ready, exited),
                timeout=max(0.0, deadline - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            ready.cancel()
            if not worker.ready.is_set():
                exited.cancel()
                raise RuntimeError(f"worker {worker.index} did not start")
            self._watchers.append(asyncio.ensure_future(self._watch(worker, exited)))

    async def _spawn(self, index: int) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "journeys",
            "serve",
            "--no-gateway",
            # The worker's share of what the unit may open (database connections) is its
            # count's.
            "--workers",
            str(self._count),
            "--worker",
            str(index),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        ready = asyncio.Event()
        return _Worker(
            index, process, ready, asyncio.ensure_future(_relay(process, self._ready_line, ready))
        )

    async def _watch(self, worker: _Worker, exited: asyncio.Future[int]) -> None:
        status = await exited
        if not self._stopping:
            pid = worker.process.pid
            log.error("worker %d (pid %d) exited with status %s", worker.index, pid, status)
            self._on_exit(worker.index, status)

    async def stop(self, grace: float) -> None:
        """Gives every worker `grace` seconds for its in-flight calls, then waits for it to exit
        (killing one still running EXIT_SECONDS after that)."""
        self._stopping = True
        for worker in self._workers:
            if worker.process.returncode is None and worker.process.stdin is not None:
                with contextlib.suppress(ConnectionError):
                    worker.process.stdin.write(f"{STOP_COMMAND} {grace:.3f}\n".encode())
                    await worker.process.stdin.drain()
        for worker in self._workers:
            try:
                await asyncio.wait_for(worker.process.wait(), grace + EXIT_SECONDS)
            except TimeoutError:
                log.error("worker %d did not stop in time: killing it", worker.index)
                worker.process.kill()
                await worker.process.wait()
            await worker.output
        for watcher in self._watchers:
            watcher.cancel()

    def kill(self) -> None:
        """Kills the workers still running (the parent is failing)."""
        for worker in self._workers:
            if worker.process.returncode is None:
                worker.process.kill()


async def _relay(
    process: asyncio.subprocess.Process, ready_line: str, ready: asyncio.Event
) -> None:
    """Reads the worker's stdout: its ready line marks it serving; anything else is passed on."""
    assert process.stdout is not None
    async for raw in process.stdout:
        line = raw.decode(errors="replace")
        if ready_line in line:
            ready.set()
        else:
            sys.stdout.write(line)
            sys.stdout.flush()


async def stop_requests(on_stop: Callable[[float | None], None]) -> None:
    """The worker's side: calls `on_stop(grace)` when the parent writes `stop SECONDS`, and
    `on_stop(None)` (the configured grace) when its stdin closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode():
        command, _, seconds = line.strip().partition(" ")
        if command == STOP_COMMAND:
            on_stop(float(seconds))
            return
    on_stop(None)
