"""JSON Schemas of protobuf messages, as Envoy's transcoder prints and parses them: the
building blocks of the OpenAPI document (`openapi.py`). Request schemas carry the service's
own validation rules (`journeys.usecases.validation.json_schemas`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import descriptor_pb2

from journeys.usecases import reports, segments, validation, webhooks

#: The package whose services make the REST API.
PACKAGE = "gamifyhost.userjourneys.v1"

FieldProto = descriptor_pb2.FieldDescriptorProto
Schema = dict[str, Any]

#: Response fields that print `null` while unset (the transcoder omits an unset message field;
#: gateway/envelope.lua writes the documented `null` in its place).
NULL_WHEN_UNSET = frozenset({"gamifyhost.userjourneys.v1.Offer.claimed_at"})
#: The messages holding those fields.
NULLS_OWNERS = frozenset(name.rsplit(".", 1)[0] for name in NULL_WHEN_UNSET)
#: `google.protobuf.Value` fields that hold a timestamp or `null`.
TIMESTAMP_OR_NULL = frozenset({"gamifyhost.userjourneys.v1.GetSegmentSizesResponse.computed_at"})

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

HTTP_BODY = ".google.api.HttpBody"
#: Requests whose body reaches the service as raw JSON (a `google.api.HttpBody`), by the typed
#: message that body is shaped like: the document shows that shape.
RAW_JSON_BODIES = {
    "gamifyhost.userjourneys.v1.TrackEventsJsonRequest": (
        ".gamifyhost.userjourneys.v1.TrackEventsRequest"
    ),
}
#: Server-streaming methods whose `google.api.HttpBody` chunks make one JSON document, by
#: the message that document is shaped like (its envelope's `data`).
STREAMED_DOCUMENTS = {"ExportUser": ".gamifyhost.userjourneys.v1.UserExport"}
#: The service's request rules (`validation.json_schemas`) by the message whose fields they
#: govern. Every `externalId` of a path follows the rule of the ids it names.
REQUEST_RULES = {
    "gamifyhost.userjourneys.v1.TrackUserRequest": "user",
    "gamifyhost.userjourneys.v1.EventInput": "event",
    "gamifyhost.userjourneys.v1.TrackEventsRequest": "batch",
    "gamifyhost.userjourneys.v1.GetTimelineRequest": "timeline",
    "gamifyhost.userjourneys.v1.ListSegmentMembersRequest": "segment_members",
    "gamifyhost.userjourneys.v1.CreateWebhookRequest": "webhook",
    "gamifyhost.userjourneys.v1.ListWebhookDeliveriesRequest": "webhook_deliveries",
    "gamifyhost.userjourneys.v1.GetOfferReportRequest": "offer_report",
}
_SCHEMAS = "#/components/schemas/"


@dataclass
class Service:
    """One service of the API, with its comments."""

    proto: descriptor_pb2.ServiceDescriptorProto
    comment: str
    method_comments: dict[str, str]

    @property
    def tag(self) -> str:
        """The OpenAPI tag of its operations: `SegmentsService` is `Segments`."""
        return self.proto.name.removesuffix("Service")


@dataclass
class Index:
    """The descriptor set, indexed: messages by full name, comments by location path, the
    API's services in the order of their files."""

    messages: dict[str, descriptor_pb2.DescriptorProto] = field(default_factory=dict)
    enums: dict[str, descriptor_pb2.EnumDescriptorProto] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)

    @classmethod
    def of(cls, files: Iterable[descriptor_pb2.FileDescriptorProto]) -> Index:
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
            if file.package != PACKAGE:
                continue
            for position, service in enumerate(file.service):
                index.services.append(
                    Service(
                        service,
                        located.get((6, position), ""),
                        {
                            method.name: located.get((6, position, 2, number), "")
                            for number, method in enumerate(service.method)
                        },
                    )
                )
        return index

    def service(self, name: str) -> Service:
        return next(service for service in self.services if service.proto.name == name)

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


def prose(comment: str) -> str:
    """A proto comment as prose: buf lint directives dropped, paragraphs kept."""
    lines = [line.strip() for line in comment.splitlines()]
    kept = [line for line in lines if not line.startswith("buf:lint:")]
    paragraphs = "\n".join(kept).strip().split("\n\n")
    return "\n\n".join(" ".join(part.split()) for part in paragraphs if part.strip())


def first_paragraph(comment: str) -> str:
    return prose(comment).split("\n\n")[0]


def is_required(item: FieldProto) -> bool:
    behaviors = item.options.Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.REQUIRED in behaviors


class Builder:
    def __init__(self, index: Index) -> None:
        self._index = index
        self.schemas: dict[str, Schema] = {
            validation.JSON_VALUE: validation.json_value_schema(_SCHEMAS)
        }
        self._roles: dict[str, str] = {}
        self._rules = {
            **validation.json_schemas(_SCHEMAS),
            "segment_members": segments.query_schema(),
            **webhooks.request_schemas(),
            "offer_report": reports.query_schema(),
        }
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
        description = prose(self._index.comments.get(full_name, ""))
        if description:
            schema["description"] = description
        properties: dict[str, Schema] = {}
        required: list[str] = []
        for item in message.field:
            properties[item.json_name] = self.field(name, item, role)
            # An answer carries every field but the proto3 `optional` ones left unset.
            if (role == "response" and not item.proto3_optional) or is_required(item):
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
        if full in TIMESTAMP_OR_NULL:
            schema = {"anyOf": [WELL_KNOWN["google.protobuf.Timestamp"], {"type": "null"}]}
        description = prose(self._index.comments.get(f".{full}", ""))
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


def fields_of(message: descriptor_pb2.DescriptorProto) -> dict[str, FieldProto]:
    return {item.name: item for item in message.field}
