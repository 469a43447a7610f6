"""Request validation: pure functions that either return clean input or raise
`InvalidArgument` naming the field and the rule (contract Part B, "Validation")."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from journeys.domain import Category, EventInput, JsonObject, NewEvent, UserChanges
from journeys.errors import InvalidArgument

EXTERNAL_ID_MAX = 128
METADATA_MAX_BYTES = 16 * 1024
TAGS_MAX_KEYS = 50
TAG_KEY_MAX = 64
TAG_VALUE_MAX = 256
DEVICES = ("mobile", "desktop", "tablet")

# Character classes shared by the checks below and by `json_schemas()` (the OpenAPI document),
# so the two can never disagree.
_EXTERNAL_ID_CLASS = r"[A-Za-z0-9_\-.:@+]"
_ALPHANUMERIC_CLASS = r"[A-Za-z0-9]"
_NOT_NUL_CLASS = r"[^\u0000]"
#: A whole value without U+0000 (JSON Schema), as `no_nul` checks it.
NOT_NUL_PATTERN = f"^{_NOT_NUL_CLASS}*$"
# What Python's `\s` means, spelled out: regex dialects disagree on `\s` (ECMAScript adds
# U+FEFF, Rust leaves out U+001C-U+001F), and the OpenAPI document's readers use them all.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Deliberately loose: one @, something before it, a dotted domain after it, no spaces.
_EMAIL_PART = rf"[^@{_SPACE}\u0000]+"
_EMAIL_PATTERN = rf"{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}"
_EVENT_TYPE_PATTERN = r"[a-z0-9_]{1,64}"

_EXTERNAL_ID_CHARS = re.compile(f"{_EXTERNAL_ID_CLASS}+")
_HAS_ALNUM = re.compile(_ALPHANUMERIC_CLASS)
_EMAIL = re.compile(_EMAIL_PATTERN)
_COUNTRY = re.compile(r"[A-Z]{2}")
_COUNTRY_ANY_CASE = "[A-Za-z]{2}"  # what a partner may send: it is upper-cased
_MAX_LENGTHS = {"displayName": 200, "email": 254, "phone": 20, "source": 100}


def external_id(value: str, field: str = "externalId") -> str:
    if value == "":
        raise InvalidArgument.field(field, f"{field} is required")
    no_nul(field, value)
    if len(value) > EXTERNAL_ID_MAX:
        raise InvalidArgument.field(field, f"{field} must be at most {EXTERNAL_ID_MAX} characters")
    if not _EXTERNAL_ID_CHARS.fullmatch(value):
        raise InvalidArgument.field(
            field, f"{field} may contain only ASCII letters, digits and _ - . : @ +"
        )
    if not _HAS_ALNUM.search(value):
        raise InvalidArgument.field(field, f"{field} must contain a letter or digit")
    return value


def user_changes(raw: UserChanges) -> UserChanges:
    """Checks a POST /users body; returns it normalized (country upper-cased)."""
    country = raw.country
    if country is not None:
        no_nul("country", country)
        # ASCII only: str.upper() would turn "ß" into "SS" and "ﬀ" into "FF".
        upper = country.upper() if country.isascii() else country
        if country and not _COUNTRY.fullmatch(upper):
            raise InvalidArgument.field(
                "country", "country must be an ISO 3166-1 alpha-2 code such as NG, US or GB"
            )
        country = upper
    for field, value in (
        ("displayName", raw.display_name),
        ("email", raw.email),
        ("phone", raw.phone),
        ("source", raw.source),
        ("device", raw.device),
    ):
        if value is not None:
            no_nul(field, value)
            limit = _MAX_LENGTHS.get(field)
            if limit is not None and len(value) > limit:
                raise InvalidArgument.field(field, f"{field} must be at most {limit} characters")
    if raw.email and not _EMAIL.fullmatch(raw.email):
        raise InvalidArgument.field("email", "email must be an email address")
    if raw.device and raw.device not in DEVICES:
        raise InvalidArgument.field("device", "device must be one of mobile, desktop, tablet")
    return UserChanges(
        external_id=external_id(raw.external_id),
        display_name=raw.display_name,
        email=raw.email,
        phone=raw.phone,
        country=country,
        device=raw.device,
        source=raw.source,
        tags=None if raw.tags is None else tags(raw.tags),
        metadata=None if raw.metadata is None else metadata(raw.metadata),
    )


def tags(value: JsonObject) -> dict[str, str]:
    if len(value) > TAGS_MAX_KEYS:
        raise InvalidArgument.field("tags", f"tags must have at most {TAGS_MAX_KEYS} keys")
    clean: dict[str, str] = {}
    for key, tag in value.items():
        no_nul("tags", key)
        if not key:
            raise InvalidArgument.field("tags", "tags keys must not be empty")
        if len(key) > TAG_KEY_MAX:
            raise InvalidArgument.field(
                "tags", f"tags keys must be at most {TAG_KEY_MAX} characters"
            )
        if not isinstance(tag, str):
            raise InvalidArgument.field(f"tags.{key}", f"tags.{key} must be a string")
        no_nul(f"tags.{key}", tag)
        if len(tag) > TAG_VALUE_MAX:
            raise InvalidArgument.field(
                f"tags.{key}", f"tags.{key} must be at most {TAG_VALUE_MAX} characters"
            )
        clean[key] = tag
    return clean


def metadata(value: JsonObject, field: str = "metadata") -> JsonObject:
    _no_nul_anywhere(field, value)
    try:
        serialized = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:  # 1e400 parses as infinity; JSON (and PostgreSQL's jsonb) has none
        raise InvalidArgument.field(field, f"{field} numbers must be finite") from None
    size = len(serialized.encode())
    if size > METADATA_MAX_BYTES:
        raise InvalidArgument.field(
            field, f"{field} must be at most {METADATA_MAX_BYTES} bytes when serialized"
        )
    return value


def no_nul(field: str, value: str) -> None:
    if "\x00" in value:
        # PostgreSQL cannot store U+0000; rejecting it everywhere keeps both engines equal.
        raise InvalidArgument.field(field, f"{field} must not contain the NUL character")


def _no_nul_anywhere(field: str, value: Any) -> None:
    if isinstance(value, str):
        no_nul(field, value)
    elif isinstance(value, dict):
        for key, item in value.items():
            no_nul(field, key)
            _no_nul_anywhere(field, item)
    elif isinstance(value, list):
        for item in value:
            _no_nul_anywhere(field, item)


CATEGORIES = tuple(category.value for category in Category)
POINTS_LIMIT = 1_000_000
MESSAGE_ID_MAX = 100
FUTURE_TOLERANCE = timedelta(minutes=5)
#: GET /reports/offers without `since` covers this long before now.
REPORT_WINDOW = timedelta(days=30)
BATCH_MAX = 500
TIMELINE_LIMIT_MAX = 100
_EVENT_TYPE = re.compile(_EVENT_TYPE_PATTERN)


def new_event(raw: EventInput, now: datetime) -> NewEvent:
    """Checks one event (POST /events, or one item of POST /track)."""
    external = external_id(raw.external_id)
    if raw.category == "":
        raise InvalidArgument.field("category", "category is required")
    if raw.category not in CATEGORIES:
        raise InvalidArgument.field("category", f"category must be one of {', '.join(CATEGORIES)}")
    if raw.event_type == "":
        raise InvalidArgument.field("eventType", "eventType is required")
    if not _EVENT_TYPE.fullmatch(raw.event_type):
        raise InvalidArgument.field(
            "eventType", "eventType must be 1 to 64 lowercase letters, digits or _"
        )
    if not -POINTS_LIMIT <= raw.points <= POINTS_LIMIT:
        raise InvalidArgument.field(
            "points", f"points must be an integer between -{POINTS_LIMIT} and {POINTS_LIMIT}"
        )
    no_nul("messageId", raw.message_id)
    if len(raw.message_id) > MESSAGE_ID_MAX:
        raise InvalidArgument.field(
            "messageId", f"messageId must be at most {MESSAGE_ID_MAX} characters"
        )
    return NewEvent(
        external_id=external,
        category=Category(raw.category),
        event_type=raw.event_type,
        points=raw.points,
        occurred_at=occurred_at(raw.occurred_at, now),
        message_id=raw.message_id or None,
        metadata={} if raw.metadata is None else metadata(raw.metadata),
    )


#: The JSON names of an event item's fields (camelCase, or the proto's own snake_case, as
#: the gateway accepted before) and the EventInput field each fills.
_JSON_STRING_FIELDS = (
    ("externalId", "external_id"),
    ("category", "category"),
    ("eventType", "event_type"),
    ("occurredAt", "occurred_at"),
    ("messageId", "message_id"),
)


def event_from_json(item: JsonObject) -> EventInput:
    """One item of a raw POST /track body as an EventInput, or InvalidArgument naming the
    field whose JSON type is wrong (that item alone is rejected). `null` is "not sent"."""

    def sent(name: str, snake: str) -> Any:
        value = item.get(name)
        return item.get(snake) if value is None else value

    strings: dict[str, str] = {}
    for name, snake in _JSON_STRING_FIELDS:
        value = sent(name, snake)
        if value is not None and not isinstance(value, str):
            raise InvalidArgument.field(name, f"{name} must be a string")
        strings[snake] = value or ""
    points = sent("points", "points")
    if points is None:
        points = 0
    elif isinstance(points, float) and points.is_integer():
        points = int(points)
    if isinstance(points, bool) or not isinstance(points, int):
        raise InvalidArgument.field(
            "points", f"points must be an integer between -{POINTS_LIMIT} and {POINTS_LIMIT}"
        )
    metadata = sent("metadata", "metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidArgument.field("metadata", "metadata must be an object")
    return EventInput(points=points, metadata=metadata, **strings)


def occurred_at(value: str, now: datetime) -> datetime:
    if value == "":
        return now
    parsed = _timestamp("occurredAt", value)
    if parsed > now + FUTURE_TOLERANCE:
        raise InvalidArgument.field(
            "occurredAt", "occurredAt must not be more than 5 minutes in the future"
        )
    return parsed


def report_since(value: str, now: datetime) -> datetime:
    """GET /reports/offers' `since`: before `now`; empty means `REPORT_WINDOW` ago."""
    if value == "":
        return now - REPORT_WINDOW
    parsed = _timestamp("since", value)
    if parsed >= now:
        raise InvalidArgument.field("since", "since must be before now")
    return parsed


def _timestamp(field: str, value: str) -> datetime:
    """An RFC 3339 timestamp in UTC, to the API's resolution of whole seconds."""
    problem = InvalidArgument.field(
        field, f"{field} must be an RFC 3339 timestamp such as 2025-01-15T10:30:00Z"
    )
    no_nul(field, value)
    try:
        # RFC 3339 allows a lowercase `t` and `z`; fromisoformat takes only the uppercase ones.
        parsed = datetime.fromisoformat(value.upper())
    except ValueError:
        raise problem from None
    if parsed.tzinfo is None:
        raise problem
    try:
        return parsed.astimezone(UTC).replace(microsecond=0)
    except OverflowError:  # an offset moves 0001-01-01 or 9999-12-31 out of range
        raise problem from None


def batch_size(count: int) -> None:
    if not 1 <= count <= BATCH_MAX:
        raise InvalidArgument.field(
            "events", f"events must contain between 1 and {BATCH_MAX} events"
        )


def page_and_limit(page: int | None, limit: int | None) -> tuple[int, int]:
    page = 1 if page is None else page
    limit = 20 if limit is None else limit
    if page < 1:
        raise InvalidArgument.field("page", "page must be at least 1")
    if not 1 <= limit <= TIMELINE_LIMIT_MAX:
        raise InvalidArgument.field("limit", f"limit must be between 1 and {TIMELINE_LIMIT_MAX}")
    return page, limit


# --- The same rules as JSON Schema ------------------------------------------------------------

Schema = dict[str, Any]

#: Where `json_schemas()` refers to the schema of any JSON value a partner may store
#: (`metadata`); the document defines it under this name.
JSON_VALUE = "JsonValue"


def json_schemas(reference: str) -> dict[str, dict[str, Schema]]:
    """Every rule above as JSON Schema 2020-12 (what OpenAPI 3.1 uses), by request body and
    JSON field name: `user` (POST /users), `event` (an event, alone or in a batch), `batch`
    (POST /track) and `timeline` (its query). `reference` is the prefix of `$ref`s to sibling
    schemas, such as `#/components/schemas/`.

    Only what the clock decides (an `occurredAt` more than 5 minutes ahead), what the
    serializer measures (the 16 KiB of `metadata`) and the nesting depth are left to the
    descriptions: JSON Schema cannot say them."""
    not_nul = _anchored(f"{_NOT_NUL_CLASS}*")
    external = {
        "type": "string",
        "minLength": 1,
        "maxLength": EXTERNAL_ID_MAX,
        # The allowed characters, one of them a letter or a digit.
        "pattern": _anchored(f"{_EXTERNAL_ID_CLASS}*{_ALPHANUMERIC_CLASS}{_EXTERNAL_ID_CLASS}*"),
    }
    metadata = {
        "type": "object",
        "additionalProperties": {"$ref": reference + JSON_VALUE},
        "propertyNames": {"pattern": not_nul},
    }

    def text(field: str) -> Schema:
        return {"type": "string", "maxLength": _MAX_LENGTHS[field], "pattern": not_nul}

    return {
        "user": {
            "externalId": external,
            "displayName": text("displayName"),
            "email": {**text("email"), "pattern": _anchored(f"(?:{_EMAIL_PATTERN})?")},
            "phone": text("phone"),
            "country": {"type": "string", "pattern": _anchored(f"(?:{_COUNTRY_ANY_CASE})?")},
            "device": {"type": "string", "enum": ["", *DEVICES]},
            "source": text("source"),
            "tags": {
                "type": "object",
                "maxProperties": TAGS_MAX_KEYS,
                "propertyNames": {"minLength": 1, "maxLength": TAG_KEY_MAX, "pattern": not_nul},
                "additionalProperties": {
                    "type": "string",
                    "maxLength": TAG_VALUE_MAX,
                    "pattern": not_nul,
                },
            },
            "metadata": metadata,
        },
        "event": {
            "externalId": external,
            "category": {"type": "string", "enum": list(CATEGORIES)},
            "eventType": {"type": "string", "pattern": _anchored(_EVENT_TYPE_PATTERN)},
            "points": {"type": "integer", "minimum": -POINTS_LIMIT, "maximum": POINTS_LIMIT},
            "occurredAt": {
                "type": "string",
                "anyOf": [{"const": ""}, {"format": "date-time"}],
            },
            "messageId": {"type": "string", "maxLength": MESSAGE_ID_MAX, "pattern": not_nul},
            "metadata": metadata,
        },
        "batch": {"events": {"type": "array", "minItems": 1, "maxItems": BATCH_MAX}},
        "timeline": {
            "page": {"type": "integer", "minimum": 1},
            "limit": {"type": "integer", "minimum": 1, "maximum": TIMELINE_LIMIT_MAX},
        },
    }


def json_value_schema(reference: str) -> Schema:
    """Any JSON value the service stores: no NUL character in a string or a key."""
    itself = {"$ref": reference + JSON_VALUE}
    return {
        "anyOf": [
            {"type": "string", "pattern": _anchored(f"{_NOT_NUL_CLASS}*")},
            {"type": ["number", "boolean", "null"]},
            {"type": "array", "items": itself},
            {
                "type": "object",
                "additionalProperties": itself,
                "propertyNames": {"pattern": _anchored(f"{_NOT_NUL_CLASS}*")},
            },
        ]
    }


def _anchored(pattern: str) -> str:
    """A whole-value pattern for JSON Schema, whose patterns match anywhere."""
    return f"^{pattern}$"
