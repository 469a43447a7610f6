"""Envoy as a child process: started, health-checked, drained and stopped."""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from journeys.config import Settings
from journeys.gateway.config import DESCRIPTOR, OPENAPI_DOCUMENT, render_config

log = logging.getLogger(__name__)
#: Requests the REST/gRPC listener has received and not yet answered (stat_prefix journeys).
_ACTIVE_REQUESTS_STAT = r"^http\.journeys\.downstream_rq_active$"


def envoy_binary() -> str:
    beside_python = Path(sys.executable).parent / "envoy"
    found = str(beside_python) if beside_python.exists() else shutil.which("envoy")
    if found is None:
        raise SystemExit("envoy not found: install the pinned dependencies (make setup)")
    return found


class Gateway:
    def __init__(self, settings: Settings, upstreams: Sequence[tuple[str, int]]) -> None:
        self._settings = settings
        self._upstreams = upstreams
        self._process: asyncio.subprocess.Process | None = None
        self._config_dir = tempfile.TemporaryDirectory(prefix="journeys-envoy-")

    async def start(self) -> None:
        for generated in (DESCRIPTOR, OPENAPI_DOCUMENT):
            if not generated.exists():
                raise SystemExit(f"{generated} is missing: run `make setup`")
        config = Path(self._config_dir.name) / "envoy.yaml"
        config.write_text(render_config(self._settings, self._upstreams))
        self._process = await asyncio.create_subprocess_exec(
            envoy_binary(),
            "--config-path",
            str(config),
            "--use-dynamic-base-id",
            "--concurrency",
            str(self._settings.envoy_concurrency),
            "--log-level",
            os.environ.get("JOURNEYS_ENVOY_LOG_LEVEL", "warning"),
            # At every start `misc` warns that allow_custom_methods (unknown methods get 405 or
            # 501, not the codec's 400) is a work-in-progress field: noise in the server's log.
            "--component-log-level",
            "misc:error",
            # Once draining (see drain), every connection is asked to close after its current
            # request, not a growing share of them over the drain time.
            "--drain-strategy",
            "immediate",
            # Own process group: a terminal's Ctrl-C reaches us, and we stop Envoy after the
            # server has drained, not before.
            start_new_session=True,
            preexec_fn=_exit_with_parent,
        )
        await self._wait_ready()

    async def _wait_ready(self, within_seconds: float = 30.0) -> None:
        url = f"http://{self._settings.host}:{self._settings.admin_port}/ready"
        deadline = asyncio.get_running_loop().time() + within_seconds
        while True:
            if self._process is not None and self._process.returncode is not None:
                raise RuntimeError(f"envoy exited with status {self._process.returncode}")
            try:
                if await asyncio.to_thread(_get_ok, url):
                    return
            except OSError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"envoy not ready after {within_seconds:.0f}s")
            await asyncio.sleep(0.1)

    async def drain(self, grace: float) -> float:
        """Stops accepting connections and waits, at most `grace` seconds, until every request
        Envoy has received (one still uploading its body included) is answered; open
        connections close after their answer. Returns the seconds of `grace` left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self._process is None or self._process.returncode is not None:
            return grace
        try:
            # `graceful` starts the drain: answers close their connection (HTTP/2: GOAWAY).
            # Without it the listening socket closes: new connections are refused from now on.
            await asyncio.to_thread(self._admin, "/drain_listeners?graceful", "POST")
            await asyncio.to_thread(self._admin, "/drain_listeners", "POST")
            active = await asyncio.to_thread(self._active_requests)
            log.info("draining the gateway: new connections refused, %d requests in flight", active)
            while active > 0 and loop.time() < deadline:
                await asyncio.sleep(0.05)
                active = await asyncio.to_thread(self._active_requests)
            if active > 0:
                log.warning("%d requests still in flight at the gateway after the grace", active)
        except OSError as failure:  # Envoy is gone: nothing left to drain
            log.warning("cannot drain the gateway: %s", failure)
        return max(0.0, deadline - loop.time())

    def _admin(self, path: str, method: str = "GET") -> bytes:
        url = f"http://{self._settings.host}:{self._settings.admin_port}{path}"
        request = urllib.request.Request(url, method=method)
        with urllib.request.urlopen(request, timeout=2) as response:
            body: bytes = response.read()
            return body

    def _active_requests(self) -> int:
        query = urllib.parse.urlencode({"format": "json", "filter": _ACTIVE_REQUESTS_STAT})
        stats = json.loads(self._admin(f"/stats?{query}"))
        return sum(int(stat.get("value", 0)) for stat in stats.get("stats", []))

    async def wait_exit(self) -> int:
        assert self._process is not None
        return await self._process.wait()

    async def stop(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()
        self._config_dir.cleanup()


def _exit_with_parent() -> None:
    """Runs in the forked child: Linux sends it SIGTERM if we die without stopping it
    (kill -9), so no orphaned Envoy keeps holding the port."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _get_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as response:
        return bool(response.status == 200)
