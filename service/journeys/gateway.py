"""The Envoy gateway: renders its config and runs it as a child process."""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

from journeys.config import REPO_ROOT, Settings
from journeys.openapi import DOCUMENT_PATH

log = logging.getLogger(__name__)


def _gateway_dir() -> Path:
    """The gateway's files: inside the package when it was installed from a wheel
    (`make wheel` puts them there), the checkout's `gateway/` otherwise."""
    packaged = Path(__file__).with_name("_gateway")
    return packaged if packaged.is_dir() else REPO_ROOT / "gateway"


GATEWAY_DIR = _gateway_dir()
TEMPLATE = GATEWAY_DIR / "envoy.yaml.tmpl"
LUA_FILTER = GATEWAY_DIR / "envelope.lua"
DESCRIPTOR = GATEWAY_DIR / "build" / "user_journeys.binpb"
OPENAPI_DOCUMENT = GATEWAY_DIR / "build" / "openapi.json"
#: Requests the REST/gRPC listener has received and not yet answered (stat_prefix journeys).
_ACTIVE_REQUESTS_STAT = r"^http\.journeys\.downstream_rq_active$"
#: Where the template's routes list sits, to indent the generated routes to it.
_ROUTE_INDENT = " " * 24
_MAPPER_INDENT = " " * 20


def render_config(settings: Settings, upstreams: Sequence[tuple[str, int]]) -> str:
    endpoints = [
        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
        for host, port in upstreams
    ]
    paths = json.loads(OPENAPI_DOCUMENT.read_text())["paths"]
    methods_by_path = {path: list(operations) for path, operations in paths.items()}
    routes = rest_routes(methods_by_path)
    mappers = query_mappers(methods_by_path)
    return Template(TEMPLATE.read_text()).substitute(
        host=settings.host,
        http_port=settings.http_port,
        admin_port=settings.admin_port,
        descriptor=json.dumps(str(DESCRIPTOR)),
        lua_filter=json.dumps(str(LUA_FILTER)),
        upstream_endpoints=json.dumps(endpoints),
        cors_origins=json.dumps(_origin_matchers(settings.cors_origins)),
        rest_routes="\n".join(f"{_ROUTE_INDENT}- {json.dumps(route)}" for route in routes),
        query_mappers="\n".join(f"{_MAPPER_INDENT}- {json.dumps(item)}" for item in mappers),
    )


def rest_routes(methods_by_path: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """Three routes per REST path (an OpenAPI path template and its lowercase methods): the
    path's methods (GET with HEAD) to the transcoder, OPTIONS (204) and any other method (405),
    both answered with `Allow`; each with the path's methods for CORS preflights.

    Envoy's CORS filter skips direct responses, so what the gateway answers itself (204, 405,
    the OpenAPI document) is answered by the envelope filter from the route's metadata, on
    routes that name the service's cluster but never reach it."""
    routes: list[dict[str, Any]] = []
    for template, operations in methods_by_path.items():
        methods = _methods(operations)
        path = {"safe_regex": {"regex": _path_regex(template)}}
        cors = {
            "envoy.filters.http.cors": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
                "allow_methods": ", ".join(methods),
            }
        }
        allow = _allow(methods)
        served: dict[str, Any] = {
            "match": {**path, "headers": [_method_matcher(methods)]},
            "route": _TO_SERVICE,
            # The transcoder copies the REST path into this header; a long path id would
            # exceed grpc.aio's metadata limit.
            "request_headers_to_remove": ["x-envoy-original-path"],
            "typed_per_filter_config": cors,
        }
        if template == DOCUMENT_PATH:
            served["metadata"] = _envelope_metadata(document=str(OPENAPI_DOCUMENT))
        options = {
            "match": {**path, "headers": [_method_matcher(["OPTIONS"])]},
            "route": _TO_SERVICE,
            "metadata": _envelope_metadata(answer="204", allow=allow),
            "typed_per_filter_config": cors,
        }
        other = {
            "match": path,
            "route": _TO_SERVICE,
            "metadata": _envelope_metadata(answer="405", allow=allow),
            "typed_per_filter_config": cors,
        }
        routes += [served, options, other]
    return routes


def query_mappers(methods_by_path: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """Local-reply mappers for the one request Envoy refuses before routing it (a QUERY
    without Content-Type, RFC 10008): on a REST path it is a method the path does not have,
    405 with the path's `Allow`, as every other unknown method there."""
    mappers: list[dict[str, Any]] = []
    for template, operations in methods_by_path.items():
        conditions = [
            {"status_code_filter": {"comparison": {"op": "EQ", "value": _QUERY_REFUSED}}},
            {"header_filter": {"header": _method_matcher(["QUERY"])}},
            {
                "header_filter": {
                    "header": {
                        "name": ":path",
                        # The path, with or without a query string.
                        "string_match": {
                            "safe_regex": {"regex": _path_regex(template) + r"(\?.*)?"}
                        },
                    }
                }
            },
        ]
        mappers.append(
            {
                "filter": {"and_filter": {"filters": conditions}},
                "status_code": 405,
                "headers_to_add": [
                    {"header": {"key": "allow", "value": _allow(_methods(operations))}},
                    # No request id was made for it yet.
                    {
                        "header": {"key": "x-request-id", "value": "%UNIQUE_ID%"},
                        "append_action": "ADD_IF_ABSENT",
                    },
                ],
            }
        )
    return mappers


def _methods(operations: Sequence[str]) -> list[str]:
    """A path's methods as `Allow` lists them: its operations, GET with HEAD."""
    methods = [method.upper() for method in operations]
    if "GET" in methods:
        methods.insert(methods.index("GET") + 1, "HEAD")
    return methods


def _allow(methods: Sequence[str]) -> str:
    return ", ".join([*methods, "OPTIONS"])


def _path_regex(template: str) -> str:
    # `{externalId}` is one path segment. Anything else (a trailing slash, an empty id) is the
    # transcoder's to judge, as for any unknown path.
    return re.sub(r"\\{[^/}]+\\}", "[^/]+", re.escape(template))


_TO_SERVICE = {"cluster": "journeys_grpc", "timeout": "30s"}
_QUERY_REFUSED = {"default_value": 400, "runtime_key": "journeys.query_status"}


def _envelope_metadata(**values: str) -> dict[str, Any]:
    """Route metadata the envelope filter (gateway/envelope.lua) reads."""
    return {"filter_metadata": {"envoy.filters.http.lua": values}}


def _method_matcher(methods: Sequence[str]) -> dict[str, Any]:
    return {"name": ":method", "string_match": {"safe_regex": {"regex": "|".join(methods)}}}


def _origin_matchers(origins: Sequence[str]) -> list[dict[str, Any]]:
    if "*" in origins:
        return [{"exact": "*"}]
    # Scheme and host are case-insensitive; browsers send them lowercase.
    return [{"exact": origin, "ignore_case": True} for origin in origins]


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
