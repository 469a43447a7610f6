"""The OpenAPI 3.1 document of the REST surface, generated from the protos.

    python -m journeys.openapi gateway/build/user_journeys.binpb gateway/build/openapi.json

`make` runs this on the descriptor set it builds for Envoy (with source info, so the protos'
comments become descriptions). Every operation comes from a `google.api.http` annotation of
`UserJourneysService`; every schema from a message, with the JSON names, types and presence of
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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from google.api import annotations_pb2, field_behavior_pb2
from google.protobuf import descriptor_pb2

from journeys.usecases import validation

SERVICE = "gamifyhost.userjourneys.v1.UserJourneysService"
DOCUMENT_PATH = "/v1/user-journeys/openapi.json"
TITLE = "GamifyHost User Journeys API"

FieldProto = descriptor_pb2.FieldDescriptorProto
Schema = dict[str, Any]

#: Response fields that print `null` while unset (the transcoder omits an unset message field;
#: gateway/envelope.lua writes the documented `null` in its place).
NULL_WHEN_UNSET = frozenset({"gamifyhost.userjourneys.v1.Offer.claimed_at"})

#: Well-known types in their proto3 JSON form.
WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {
        "type": "string",
        "format": "date-time",
        "examples": ["2025-01-15T10:30:00Z"],
    },
    "google.protobuf.Duration": {"type": "string", "examples": ["3.5s"]},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32"},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int64", "minimum": 0},
    "google.protobuf.DoubleValue": {"type": "number"},
    "google.protobuf.FloatValue": {"type": "number"},
}

_INT32 = {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1}
#: 64-bit integers print as JSON strings.
_INT64 = {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"}
SCALARS: dict[int, Schema] = {
    FieldProto.TYPE_STRING: {"type": "string"},
    FieldProto.TYPE_BYTES: {"type": "string", "format": "byte"},
    FieldProto.TYPE_BOOL: {"type": "boolean"},
    FieldProto.TYPE_DOUBLE: {"type": "number"},
    FieldProto.TYPE_FLOAT: {"type": "number"},
    FieldProto.TYPE_INT32: _INT32,
    FieldProto.TYPE_SINT32: _INT32,
    FieldProto.TYPE_SFIXED32: _INT32,
    FieldProto.TYPE_UINT32: _UINT32,
    FieldProto.TYPE_FIXED32: _UINT32,
    FieldProto.TYPE_INT64: _INT64,
    FieldProto.TYPE_SINT64: _INT64,
    FieldProto.TYPE_SFIXED64: _INT64,
    FieldProto.TYPE_UINT64: _INT64,
    FieldProto.TYPE_FIXED64: _INT64,
}

#: The error statuses every operation can answer, as the gateway writes them.
ERRORS: dict[str, tuple[str, str]] = {
    "400": (
        "BadRequest",
        "`Invalid request body` (malformed JSON or a wrong JSON type), `Invalid request body: "
        "<field> <rule>` (validation; nothing is written), `Offer is no longer active`, "
        "`Offer has expired`.",
    ),
    "401": ("Unauthorized", "`Missing X-API-Key header` or `Invalid API key`."),
    "403": ("Forbidden", "`API key has been revoked`."),
    "404": (
        "NotFound",
        "`User not found`, `Offer not found`; `Not found` for an unknown path or method.",
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

HTTP_BODY = ".google.api.HttpBody"
#: Requests whose body reaches the service as raw JSON (a `google.api.HttpBody`), by the typed
#: message that body is shaped like: the document shows that shape.
RAW_JSON_BODIES = {
    "gamifyhost.userjourneys.v1.TrackEventsJsonRequest": (
        ".gamifyhost.userjourneys.v1.TrackEventsRequest"
    ),
}
#: The service's request rules (`validation.json_schemas`) by the message whose fields they
#: govern. Every `externalId` of a path follows the rule of the ids it names.
REQUEST_RULES = {
    "gamifyhost.userjourneys.v1.TrackUserRequest": "user",
    "gamifyhost.userjourneys.v1.EventInput": "event",
    "gamifyhost.userjourneys.v1.TrackEventsRequest": "batch",
    "gamifyhost.userjourneys.v1.GetTimelineRequest": "timeline",
}
_SCHEMAS = "#/components/schemas/"
_PATH_VARIABLE = re.compile(r"\{([a-z_][a-z0-9_.]*)(?:=\*)?\}")


@dataclass
class _Index:
    """The descriptor set, indexed: messages by full name, comments by location path."""

    messages: dict[str, descriptor_pb2.DescriptorProto] = field(default_factory=dict)
    enums: dict[str, descriptor_pb2.EnumDescriptorProto] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)
    service: descriptor_pb2.ServiceDescriptorProto | None = None
    service_comment: str = ""
    method_comments: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, files: Iterable[descriptor_pb2.FileDescriptorProto]) -> _Index:
        index = cls()
        for file in files:
            located = {
                tuple(location.path): location.leading_comments
                for location in file.source_code_info.location
                if location.leading_comments
            }
            prefix = f".{file.package}" if file.package else ""
            for position, message in enumerate(file.message_type):
                index._add_message(message, prefix, (4, position), located)
            for enum in file.enum_type:
                index.enums[f"{prefix}.{enum.name}"] = enum
            for position, service in enumerate(file.service):
                if f"{file.package}.{service.name}" != SERVICE:
                    continue
                index.service = service
                index.service_comment = located.get((6, position), "")
                for number, method in enumerate(service.method):
                    index.method_comments[method.name] = located.get((6, position, 2, number), "")
        return index

    def _add_message(
        self,
        message: descriptor_pb2.DescriptorProto,
        prefix: str,
        path: tuple[int, ...],
        located: dict[tuple[int, ...], str],
    ) -> None:
        name = f"{prefix}.{message.name}"
        self.messages[name] = message
        if path in located:
            self.comments[name] = located[path]
        for number, item in enumerate(message.field):
            comment = located.get((*path, 2, number))
            if comment:
                self.comments[f"{name}.{item.name}"] = comment
        for number, nested in enumerate(message.nested_type):
            self._add_message(nested, name, (*path, 3, number), located)
        for enum in message.enum_type:
            self.enums[f"{name}.{enum.name}"] = enum


def _text(comment: str) -> str:
    """A proto comment as prose: buf lint directives dropped, paragraphs kept."""
    lines = [line.strip() for line in comment.splitlines()]
    kept = [line for line in lines if not line.startswith("buf:lint:")]
    paragraphs = "\n".join(kept).strip().split("\n\n")
    return "\n\n".join(" ".join(part.split()) for part in paragraphs if part.strip())


def _first_paragraph(comment: str) -> str:
    return _text(comment).split("\n\n")[0]


def _required(item: FieldProto) -> bool:
    behaviors = item.options.Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.REQUIRED in behaviors


class _Builder:
    def __init__(self, index: _Index) -> None:
        self._index = index
        self.schemas: dict[str, Schema] = {
            validation.JSON_VALUE: validation.json_value_schema(_SCHEMAS)
        }
        self._roles: dict[str, str] = {}
        self._rules = validation.json_schemas(_SCHEMAS)
        #: Items of raw JSON bodies are checked one by one: one that breaks a rule is rejected
        #: alone, in the answer, not the request.
        self._lenient_items = {shape.lstrip(".") for shape in RAW_JSON_BODIES.values()}

    def ref(self, full_name: str, role: str) -> Schema:
        """A reference to a message's schema, building it on first use. `role` is `request`
        (what a client sends) or `response` (what the gateway prints)."""
        name = full_name.lstrip(".")
        short = name.rsplit(".", 1)[-1]
        seen = self._roles.get(name)
        if seen is not None and seen != role:
            raise ValueError(f"{name} is used in requests and in responses; give each its own")
        if seen is None:
            self._roles[name] = role
            if short in self.schemas:
                raise ValueError(f"two messages are named {short}")
            self.schemas[short] = {}  # reserved: recursive messages end here
            self.schemas[short] = self._message(full_name, role)
        return {"$ref": f"#/components/schemas/{short}"}

    def _message(self, full_name: str, role: str) -> Schema:
        message = self._index.messages[full_name]
        name = full_name.lstrip(".")
        schema: Schema = {"type": "object"}
        description = _text(self._index.comments.get(full_name, ""))
        if description:
            schema["description"] = description
        properties: dict[str, Schema] = {}
        required: list[str] = []
        for item in message.field:
            properties[item.json_name] = self.field(name, item, role)
            if role == "response" or _required(item):
                required.append(item.json_name)
            elif role == "request":
                # proto3 JSON: `null` is "not sent".
                properties[item.json_name] = _or_null(properties[item.json_name])
        schema["properties"] = properties
        if required:
            schema["required"] = required
        if role == "response":
            # The gateway prints exactly these keys; requests may carry unknown ones (ignored).
            schema["additionalProperties"] = False
        elif name not in self._lenient_items:
            # ...but for the transcoder's JSON parser an empty key is no key at all.
            schema["propertyNames"] = {"minLength": 1}
        return schema

    def field(self, message_name: str, item: FieldProto, role: str) -> Schema:
        schema = self.value(item, role)
        if item.label == FieldProto.LABEL_REPEATED and not self._is_map(item):
            if message_name in self._lenient_items:
                schema = {
                    "anyOf": [schema, {"type": "object"}],
                    "description": "An object that breaks the item's rules is rejected alone: "
                    "its result says which field and why.",
                }
            schema = {"type": "array", "items": schema}
        if role == "request":
            schema = {**schema, **self._rule(message_name, item.json_name)}
        full = f"{message_name}.{item.name}"
        if role == "response" and full in NULL_WHEN_UNSET:
            schema = {"anyOf": [schema, {"type": "null"}]}
        description = _text(self._index.comments.get(f".{full}", ""))
        if description:
            # JSON Schema 2020-12 (OpenAPI 3.1) allows keywords beside `$ref`.
            schema = {**schema, "description": description}
        return schema

    def _rule(self, message_name: str, json_name: str) -> Schema:
        rules = self._rules.get(REQUEST_RULES.get(message_name, ""), {})
        if json_name == "externalId":
            return rules.get(json_name, self._rules["user"][json_name])
        return rules.get(json_name, {})

    def _is_map(self, item: FieldProto) -> bool:
        if item.type != FieldProto.TYPE_MESSAGE:
            return False
        entry = self._index.messages.get(item.type_name)
        return entry is not None and entry.options.map_entry

    def value(self, item: FieldProto, role: str) -> Schema:
        if item.type == FieldProto.TYPE_ENUM:
            enum = self._index.enums[item.type_name]
            return {"type": "string", "enum": [value.name for value in enum.value]}
        if item.type != FieldProto.TYPE_MESSAGE:
            return dict(SCALARS[item.type])
        if self._is_map(item):
            entry = self._index.messages[item.type_name]
            value = next(part for part in entry.field if part.name == "value")
            return {"type": "object", "additionalProperties": self.value(value, role)}
        well_known = WELL_KNOWN.get(item.type_name.lstrip("."))
        if well_known is not None:
            return dict(well_known)
        return self.ref(item.type_name, role)


def _or_null(schema: Schema) -> Schema:
    kind = schema.get("type")
    if isinstance(kind, str):
        widened = {**schema, "type": [kind, "null"]}
        if "enum" in schema:
            widened["enum"] = [*schema["enum"], None]
        return widened
    return {"anyOf": [schema, {"type": "null"}]}


def _fields(message: descriptor_pb2.DescriptorProto) -> dict[str, FieldProto]:
    return {item.name: item for item in message.field}


def _operation(
    builder: _Builder, index: _Index, method: descriptor_pb2.MethodDescriptorProto
) -> tuple[str, str, Schema]:
    rule = method.options.Extensions[annotations_pb2.http]
    verb = rule.WhichOneof("pattern")
    if verb is None or verb == "custom":
        raise ValueError(f"{method.name}: no supported google.api.http pattern")
    if rule.response_body or rule.additional_bindings:
        raise ValueError(f"{method.name}: response_body / additional_bindings are not supported")
    template: str = getattr(rule, verb)
    request = index.messages[method.input_type]
    fields = _fields(request)
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
    operation: Schema = {"operationId": method.name, "tags": ["UserJourneys"]}
    summary = _first_paragraph(index.method_comments.get(method.name, ""))
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
                "required": _required(item),
                "schema": builder.field(request_name, item, "request"),
            }
            parameters.append(parameter)
    for parameter in parameters:
        description = parameter["schema"].pop("description", None)
        if description:
            parameter["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }

    data = builder.ref(method.output_type, "response")
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
    index = _Index.of(files)
    if index.service is None:
        raise ValueError(f"the descriptor set has no {SERVICE}")
    builder = _Builder(index)
    paths: dict[str, Schema] = {}
    for method in index.service.method:
        if not method.options.HasExtension(annotations_pb2.http):
            continue  # a gRPC-only call (TrackEvents: REST reaches TrackEventsJson instead)
        path, verb, operation = _operation(builder, index, method)
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
    description = _text(index.service_comment)
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
        "tags": [{"name": "UserJourneys", "description": _first_paragraph(index.service_comment)}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "ApiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": (
                        "The partner's public key: `pk_live_…` (LIVE) or `pk_test_…` (TEST) "
                        "followed by 32 lowercase hex characters."
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
    parser = argparse.ArgumentParser(prog="python -m journeys.openapi", description=__doc__)
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
