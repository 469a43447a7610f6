"""The OpenAPI 3.1 document of the REST surface, generated from the protos.

    python -m journeys.gateway.openapi gateway/build/user_journeys.binpb gateway/build/openapi.json

`make` runs this on the descriptor set it builds for Envoy (with source info, so the protos'
comments become descriptions). Every operation comes from a `google.api.http` annotation of
the package's services; every schema from a message, with the JSON names, types and presence of
the transcoder's JSON printing (`always_print_primitive_fields`, camelCase). What the protos do
not say is the gateway's: the documented envelopes written by `gateway/envelope.lua`, the
`X-API-Key` header, the error statuses, and the `null` that envelope.lua prints for an unset
`claimedAt`. The document itself is served by Envoy, without a key, at
`/v1/user-journeys/openapi.json`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from journeys.gateway.schemas import (
    HTTP_BODY,
    NULLS_OWNERS,
    RAW_JSON_BODIES,
    STREAMED_DOCUMENTS,
    Builder,
    FieldProto,
    Index,
    Schema,
    Service,
    fields_of,
    first_paragraph,
    is_required,
    prose,
)

DOCUMENT_PATH = "/v1/user-journeys/openapi.json"
TITLE = "GamifyHost User Journeys API"
MAIN_SERVICE = "UserJourneysService"

#: The error statuses every operation can answer, as the gateway writes them.
ERRORS: dict[str, tuple[str, str]] = {
    "400": (
        "BadRequest",
        "`Invalid request body` (malformed JSON or a wrong JSON type), `Invalid request body: "
        "<field> <rule>` (validation; nothing is written), `Offer is no longer active`, "
        "`Offer has expired`.",
    ),
    "401": ("Unauthorized", "`Missing X-API-Key header` or `Invalid API key`."),
    "403": (
        "Forbidden",
        "`API key has been revoked`; `This endpoint requires a secret key` (segments, "
        "privacy and report operations called with a public key).",
    ),
    "404": (
        "NotFound",
        "`User not found`, `Offer not found`, `Suppression not found`; `Not found` for an "
        "unknown path or method.",
    ),
    "413": ("PayloadTooLarge", "`Request body too large` (bodies over 1 MiB)."),
    "429": ("TooManyRequests", "`Rate limit exceeded`; `Retry-After` says when to retry."),
    "500": (
        "InternalServerError",
        "`Failed to track user` (POST /users) or `Internal server error`; the cause is logged "
        "with the request id, never returned.",
    ),
    "503": ("ServiceUnavailable", "`Service unavailable` (the server is down or stopping)."),
}


_PATH_VARIABLE = re.compile(r"\{([a-z_][a-z0-9_.]*)(?:=\*)?\}")


def _operation(
    builder: Builder, index: Index, service: Service, method: descriptor_pb2.MethodDescriptorProto
) -> tuple[str, str, Schema]:
    rule = method.options.Extensions[annotations_pb2.http]
    verb = rule.WhichOneof("pattern")
    if verb is None or verb == "custom":
        raise ValueError(f"{method.name}: no supported google.api.http pattern")
    if rule.response_body or rule.additional_bindings:
        raise ValueError(f"{method.name}: response_body / additional_bindings are not supported")
    template: str = getattr(rule, verb)
    request = index.messages[method.input_type]
    fields = fields_of(request)
    request_name = method.input_type.lstrip(".")

    parameters: list[Schema] = []
    bound: set[str] = set()

    def path_parameter(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in fields:
            raise ValueError(f"{method.name}: path variable {name} is no field of the request")
        item = fields[name]
        bound.add(name)
        parameters.append(
            {
                "name": item.json_name,
                "in": "path",
                "required": True,
                "schema": builder.field(request_name, item, "request"),
            }
        )
        return "{" + item.json_name + "}"

    path = _PATH_VARIABLE.sub(path_parameter, template)
    operation: Schema = {"operationId": method.name, "tags": [service.tag]}
    summary = first_paragraph(service.method_comments.get(method.name, ""))
    if summary:
        operation["summary"] = summary

    if rule.body == "*":
        if bound:
            unbound = [item for name, item in fields.items() if name not in bound]
            body: Schema = {
                "type": "object",
                "properties": {
                    item.json_name: builder.field(request_name, item, "request") for item in unbound
                },
            }
        else:
            body = builder.ref(method.input_type, "request")
    elif rule.body:
        item = fields[rule.body]
        raw_shape = RAW_JSON_BODIES.get(request_name)
        body = (
            builder.ref(raw_shape, "request")
            if item.type_name == HTTP_BODY and raw_shape is not None
            else builder.value(item, "request")
        )
        bound.add(rule.body)
    else:
        body = {}
    if rule.body != "*":
        for name, item in fields.items():
            if name in bound:
                continue
            if item.type == FieldProto.TYPE_MESSAGE:
                raise ValueError(f"{method.name}: message field {name} as a query parameter")
            parameter: Schema = {
                "name": item.json_name,
                "in": "query",
                "required": is_required(item),
                "schema": builder.field(request_name, item, "request"),
            }
            parameters.append(parameter)
    for parameter in parameters:
        description = parameter["schema"].pop("description", None)
        if description:
            parameter["description"] = description
    if parameters:
        operation["parameters"] = parameters
    arrays = _object_arrays(index, shape) if (shape := _body_message(method, rule)) else []
    if arrays:
        # Members that must be arrays of objects, checked by the gateway before transcoding.
        operation["x-journeys-object-arrays"] = arrays
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }

    if method.server_streaming:
        if method.output_type != HTTP_BODY or method.name not in STREAMED_DOCUMENTS:
            raise ValueError(f"{method.name}: a stream that is no known JSON document")
        # The service writes the whole document, envelope included; the gateway passes its
        # chunks on as they come (gateway/config.py reads this mark).
        operation["x-journeys-streamed"] = True
        data = builder.ref(STREAMED_DOCUMENTS[method.name], "response")
    else:
        data = builder.ref(method.output_type, "response")
        holder = _offer_holder(index, method.output_type)
        if holder is not None:
            # The member whose offers get the documented `"claimedAt": null` from the gateway.
            operation["x-journeys-offer-holder"] = holder
    responses: Schema = {
        "200": {
            "description": "Success: the documented envelope, `data` holding the result.",
            "content": {"application/json": {"schema": _success(data)}},
        }
    }
    for status, (name, _) in ERRORS.items():
        responses[status] = {"$ref": f"#/components/responses/{name}"}
    operation["responses"] = responses
    return path, verb, operation


def _body_message(method: descriptor_pb2.MethodDescriptorProto, rule: Any) -> str | None:
    """The message a request body is shaped like, if the whole body is one."""
    if rule.body == "*":
        return method.input_type
    if rule.body:
        return RAW_JSON_BODIES.get(method.input_type.lstrip("."))
    return None


def _object_arrays(index: Index, message_name: str) -> list[str]:
    """The JSON names of the message's repeated message fields."""
    return [
        item.json_name
        for item in index.messages[message_name].field
        if item.label == FieldProto.LABEL_REPEATED and item.type == FieldProto.TYPE_MESSAGE
    ]


def _offer_holder(index: Index, message_name: str) -> str | None:
    """The JSON name of the response's member holding an offer or a list of them, if any."""
    for item in index.messages[message_name].field:
        if item.type_name.lstrip(".") in NULLS_OWNERS:
            return item.json_name
    return None


def _success(data: Schema) -> Schema:
    return {
        "type": "object",
        "properties": {"status": {"const": "success"}, "data": data},
        "required": ["status", "data"],
        "additionalProperties": False,
    }


def _error_responses() -> Schema:
    responses: Schema = {}
    for status, (name, description) in ERRORS.items():
        response: Schema = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        if status == "429":
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before the next request.",
                    "schema": {"type": "integer", "minimum": 1},
                }
            }
        responses[name] = response
    return responses


ERROR_SCHEMA: Schema = {
    "type": "object",
    "description": "The documented error envelope.",
    "properties": {
        "message": {"type": "string", "examples": ["Invalid request body: externalId is required"]},
        "code": {"type": "integer", "description": "The HTTP status, repeated."},
        "status": {"const": "error"},
    },
    "required": ["message", "code", "status"],
    "additionalProperties": False,
}


def _version() -> str:
    try:
        return metadata.version("journeys")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "0.0.0"


def generate(descriptor_set: bytes) -> dict[str, Any]:
    """The OpenAPI document for a serialized FileDescriptorSet (with `--include_imports`;
    `--include_source_info` adds descriptions)."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set).file
    index = Index.of(files)
    if not index.services:
        raise ValueError("the descriptor set has no service of the API")
    builder = Builder(index)
    paths: dict[str, Schema] = {}
    # The documented API first, then the partner operations.
    index.services.sort(key=lambda service: service.proto.name != MAIN_SERVICE)
    for service in index.services:
        for method in service.proto.method:
            if not method.options.HasExtension(annotations_pb2.http):
                continue  # a gRPC-only call (TrackEvents: REST reaches TrackEventsJson instead)
            path, verb, operation = _operation(builder, index, service, method)
            if verb in paths.setdefault(path, {}):
                raise ValueError(f"two operations for {verb.upper()} {path}")
            paths[path][verb] = operation
    paths[DOCUMENT_PATH] = {
        "get": {
            "operationId": "GetOpenApiDocument",
            "tags": ["UserJourneys"],
            "summary": "This document (no key needed).",
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI document, as is (no envelope).",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    main = index.service(MAIN_SERVICE)
    description = prose(main.comment)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": _version(),
            "description": (
                f"{description}\n\n"
                'Every answer is a JSON envelope: `{"status":"success","data":{…}}` or '
                '`{"message":"…","code":<HTTP status>,"status":"error"}`. Generated from the '
                "protos' google.api.http annotations (package gamifyhost.userjourneys.v1)."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/", "description": "the gateway that serves this document"}],
        "security": [{"ApiKey": []}],
        "tags": [
            {"name": service.tag, "description": first_paragraph(service.comment)}
            for service in index.services
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "ApiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": (
                        "The partner's key: `pk_live_…` / `sk_live_…` (LIVE) or `pk_test_…` / "
                        "`sk_test_…` (TEST) followed by 32 lowercase hex characters. A public "
                        "(`pk_`) key may ship in apps; a secret (`sk_`) key stays on the "
                        "partner's servers and is needed for segments, privacy and report "
                        "operations."
                    ),
                }
            },
            "schemas": {**dict(sorted(builder.schemas.items())), "Error": ERROR_SCHEMA},
            "responses": _error_responses(),
        },
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m journeys.gateway.openapi", description=__doc__)
    parser.add_argument("descriptor_set", type=Path, help="FileDescriptorSet (protoc output)")
    parser.add_argument("output", type=Path, help="where to write the JSON document")
    args = parser.parse_args(argv)
    text = render(generate(args.descriptor_set.read_bytes()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.output.with_suffix(".tmp")
    temporary.write_text(text)
    temporary.replace(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
