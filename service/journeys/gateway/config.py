"""Envoy's configuration: the template in `gateway/` filled with the settings, the upstreams
and one set of routes per REST path of the OpenAPI document."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

from google.protobuf import descriptor_pb2

from journeys.config import REPO_ROOT, Settings
from journeys.gateway.openapi import DOCUMENT_PATH
from journeys.gateway.schemas import PACKAGE


def _gateway_dir() -> Path:
    """The gateway's files: inside the package when it was installed from a wheel
    (`make wheel` puts them there), the checkout's `gateway/` otherwise."""
    packaged = Path(__file__).parents[1] / "_gateway"
    return packaged if packaged.is_dir() else REPO_ROOT / "gateway"


GATEWAY_DIR = _gateway_dir()
TEMPLATE = GATEWAY_DIR / "envoy.yaml.tmpl"
LUA_FILTER = GATEWAY_DIR / "envelope.lua"
DESCRIPTOR = GATEWAY_DIR / "build" / "user_journeys.binpb"
OPENAPI_DOCUMENT = GATEWAY_DIR / "build" / "openapi.json"
#: Where the template's routes list sits, to indent the generated routes to it.
_ROUTE_INDENT = " " * 24
_MAPPER_INDENT = " " * 20


def render_config(settings: Settings, upstreams: Sequence[tuple[str, int]]) -> str:
    endpoints = [
        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
        for host, port in upstreams
    ]
    paths = json.loads(OPENAPI_DOCUMENT.read_text())["paths"]
    routes = rest_routes(paths)
    mappers = query_mappers({path: list(operations) for path, operations in paths.items()})
    return Template(TEMPLATE.read_text()).substitute(
        host=settings.host,
        http_port=settings.http_port,
        admin_port=settings.admin_port,
        descriptor=json.dumps(str(DESCRIPTOR)),
        services=json.dumps(api_services(DESCRIPTOR.read_bytes())),
        lua_filter=json.dumps(str(LUA_FILTER)),
        upstream_endpoints=json.dumps(endpoints),
        cors_origins=json.dumps(_origin_matchers(settings.cors_origins)),
        rest_routes="\n".join(f"{_ROUTE_INDENT}- {json.dumps(route)}" for route in routes),
        query_mappers="\n".join(f"{_MAPPER_INDENT}- {json.dumps(item)}" for item in mappers),
    )


def api_services(descriptor_set: bytes) -> list[str]:
    """The full names of the API's services in a descriptor set: what the transcoder serves."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set).file
    return [
        f"{file.package}.{service.name}"
        for file in files
        if file.package == PACKAGE
        for service in file.service
    ]


def rest_routes(paths: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The routes of the OpenAPI document's paths (template → lowercase method → operation):
    one per operation (GET with HEAD) to the transcoder, then OPTIONS (204) and any other
    method (405), both answered with `Allow`; each with the path's methods for CORS
    preflights.

    An operation's route tells the envelope filter (gateway/envelope.lua) its query
    parameters (every other one is dropped), whether the service streams the whole
    document itself, and which member of its answer holds offers. Envoy's CORS filter skips
    direct responses, so what the gateway answers itself (204, 405, the OpenAPI document) is
    answered by the envelope filter from the route's metadata, on routes that name the
    service's cluster but never reach it."""
    routes: list[dict[str, Any]] = []
    for template, operations in paths.items():
        methods = _methods(list(operations))
        path = {"safe_regex": {"regex": _path_regex(template)}}
        cors = {
            "envoy.filters.http.cors": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
                "allow_methods": ", ".join(methods),
            }
        }
        allow = _allow(methods)
        for verb, operation in operations.items():
            served: dict[str, Any] = {
                "match": {**path, "headers": [_method_matcher(_methods([verb]))]},
                "route": _TO_SERVICE,
                # The transcoder copies the REST path into this header; a long path id would
                # exceed grpc.aio's metadata limit.
                "request_headers_to_remove": ["x-envoy-original-path"],
                "typed_per_filter_config": cors,
            }
            if template == DOCUMENT_PATH:
                served["metadata"] = _envelope_metadata(document=str(OPENAPI_DOCUMENT))
            else:
                served["metadata"] = _envelope_metadata(**_operation_facts(operation))
            routes.append(served)
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
        routes += [options, other]
    return routes


def _operation_facts(operation: Mapping[str, Any]) -> dict[str, str]:
    query = [item["name"] for item in operation.get("parameters", ()) if item["in"] == "query"]
    facts = {"query": ",".join(query)}
    if operation.get("x-journeys-streamed"):
        facts["streamed"] = "true"
    if operation.get("x-journeys-object-arrays"):
        facts["object_arrays"] = ",".join(operation["x-journeys-object-arrays"])
    if "x-journeys-offer-holder" in operation:
        facts["offer_holder"] = operation["x-journeys-offer-holder"]
    return facts


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


_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _methods(operations: Sequence[str]) -> list[str]:
    """A path's methods as `Allow` lists them: its operations, GET with HEAD, in one order
    for every path."""
    methods = {method.upper() for method in operations}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods, key=_METHOD_ORDER.index)


def _allow(methods: Sequence[str]) -> str:
    return ", ".join([*methods, "OPTIONS"])


def _path_regex(template: str) -> str:
    # `{externalId}` is one path segment; the transcoder takes the path with a trailing slash
    # too, so its route (and the parameters it keeps) must. Anything else (an empty id) is the
    # transcoder's to judge, as for any unknown path.
    return re.sub(r"\\{[^/}]+\\}", "[^/]+", re.escape(template)) + "/?"


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
