"""What the hardening tests share: hypothesis profiles, hostile-input strategies, a raw HTTP
client that sends paths byte for byte, and the envelope checks every response must pass.

Profiles: `make test` runs the small deterministic one; `make fuzz` sets
`JOURNEYS_FUZZ_PROFILE=long` for a bigger, randomized run (failures print a reproduction blob).
The profiles are applied per test (`@FUZZ`), never loaded globally, so other hypothesis tests
keep their own settings.
"""

from __future__ import annotations

import http.client
import json
import os
import string
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from scripts.stack import Stack

# --- hypothesis profiles -------------------------------------------------------------------

_COMMON: dict[str, Any] = {
    "deadline": None,
    # The fixtures (an HTTP client, a tenant's key, what the test stored so far) are meant to
    # live across examples.
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
}
settings.register_profile("journeys-hardening", max_examples=25, derandomize=True, **_COMMON)
settings.register_profile("journeys-hardening-long", max_examples=400, print_blob=True, **_COMMON)

PROFILE = (
    "journeys-hardening-long"
    if os.environ.get("JOURNEYS_FUZZ_PROFILE") == "long"
    else "journeys-hardening"
)
FUZZ = settings(settings.get_profile(PROFILE))

BASE = "/v1/user-journeys"
USERS = f"{BASE}/users"

# --- raw HTTP ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def __str__(self) -> str:
        return f"{self.status} {self.content_type} {self.body[:400]!r}"


def reply_of(response: httpx.Response) -> Reply:
    return Reply(response.status_code, response.headers.get("content-type", ""), response.content)


@dataclass
class Api:
    """One tenant's view of the running stack (short repr: hypothesis prints it on failure)."""

    stack: Stack
    key: str
    http: httpx.Client

    def __repr__(self) -> str:
        return f"Api(key={self.key[:16]}..., http_port={self.stack.http_port})"

    def send(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        return send(self.stack, method, target, key=self.key, body=body, headers=headers)

    def post_json(self, path: str, raw: bytes) -> Reply:
        """POSTs the bytes as they are (httpx; the path is plain)."""
        headers = {"X-API-Key": self.key, "Content-Type": "application/json"}
        return reply_of(self.http.post(path, content=raw, headers=headers))


def send(
    stack: Stack,
    method: str,
    target: str,
    *,
    key: str | None,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """Sends `target` exactly as given (httpx would normalize `.`/`..` segments away)."""
    all_headers = {"Connection": "close", **(headers or {})}
    if key is not None:
        all_headers["X-API-Key"] = key
    if body is not None:
        all_headers["Content-Type"] = "application/json"
    connection = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=30)
    try:
        connection.request(method, target, body=body, headers=all_headers)
        response = connection.getresponse()
        return Reply(response.status, response.getheader("content-type") or "", response.read())
    finally:
        connection.close()


# --- the envelope every REST response must have -----------------------------------------------

#: What each error status may say; a 400 may also name the field after `Invalid request body: `.
ERROR_MESSAGES: dict[int, tuple[str, ...]] = {
    400: (
        "Invalid request body",
        "Offer is no longer active",
        "Offer has expired",
        "At most 10 webhooks per partner and environment",
    ),
    401: ("Missing X-API-Key header", "Invalid API key"),
    403: ("API key has been revoked", "This endpoint requires a secret key"),
    404: (
        "User not found",
        "Offer not found",
        "Suppression not found",
        "Webhook not found",
        "Not found",
    ),
    405: ("Method not allowed",),
    413: ("Request body too large",),
    415: ("Unsupported content encoding",),
    431: ("Request headers too large",),
    501: ("Not implemented",),
}


def envelope(reply: Reply, allowed: Collection[int], messages: Collection[str] = ()) -> Any:
    """Asserts the documented envelope and returns `data` (success) or the message (error).

    `allowed` are the statuses this request may get; `messages` narrows the error messages."""
    assert reply.status in allowed, f"status not in {sorted(allowed)}: {reply}"
    assert reply.status < 500 or reply.status == 501, f"server error: {reply}"
    assert reply.content_type == "application/json", str(reply)
    body = reply.json()
    assert isinstance(body, dict), str(reply)
    if 200 <= reply.status < 300:
        assert list(body) == ["status", "data"], str(reply)
        assert body["status"] == "success", str(reply)
        assert isinstance(body["data"], dict), str(reply)
        return body["data"]
    assert list(body) == ["message", "code", "status"], str(reply)
    assert body["status"] == "error", str(reply)
    assert type(body["code"]) is int, str(reply)
    assert body["code"] == reply.status, str(reply)
    message = body["message"]
    assert isinstance(message, str), str(reply)
    known = ERROR_MESSAGES.get(reply.status, ())
    field_rule = reply.status == 400 and message.startswith("Invalid request body: ")
    assert message in known or field_rule, f"unexpected message: {reply}"
    if messages:
        assert message in messages or (field_rule and "Invalid request body" in messages), str(
            reply
        )
    return message


# --- hostile input -------------------------------------------------------------------------

#: Any code point but surrogates (JSON cannot carry them as text): NUL, controls, bidi marks,
#: noncharacters, private use and unassigned code points included.
ANY_CHAR = st.characters(exclude_categories=["Cs"])

HOSTILE_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    ".",
    "..",
    "../../etc/passwd",
    "/",
    "a/b",
    "%2F",
    "%00",
    "%FF",
    "null",
    "true",
    "0",
    "-1",
    "1e309",
    "NaN",
    "\u202egnp.exe",
    "\ufeffbom",
    "\ufffe\uffff",
    "\U0010ffff",
    "😀",
    "e\u0301",
    "İ",
    "<script>alert(1)</script>",
    "'; DROP TABLE users; --",
    '"',
    "\\",
    "\\u0000",
    "\r\nX-Injected: 1",
    '{"domain":"journeys","message":"pwned"}',
    "${jndi:ldap://x}",
    "user_12345",
    "pk_test_" + "0" * 32,
    "ß",
    "ﬀ",
    "\u0131i",  # dotless i
]


def _long(text: str, count: int) -> str:
    return text * count


LONG_STRINGS = st.builds(
    _long, st.sampled_from(["a", "é", "😀", "\x00", "ab/", " "]), st.integers(129, 20_000)
)

#: Hostile text: generated unicode, the classics above, and long strings (up to ~80 KB).
TEXT = st.one_of(st.text(ANY_CHAR, max_size=40), st.sampled_from(HOSTILE_STRINGS), LONG_STRINGS)

FINITE_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    FINITE_FLOATS,
    TEXT,
)
KEY_TEXT = st.one_of(st.text(ANY_CHAR, max_size=20), st.sampled_from(HOSTILE_STRINGS))
#: Any JSON value: wrong types, huge numbers, floats for ints, nested objects and lists.
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(KEY_TEXT, inner, max_size=4)
    ),
    max_leaves=10,
)

#: Keys no endpoint reads, including ones that name what only the server may set.
UNKNOWN_KEYS = st.one_of(
    st.sampled_from(
        ["id", "partnerId", "partner_id", "environment", "status", "data", "__proto__", "$where"]
    ),
    st.text(ANY_CHAR, max_size=12).map(lambda name: f"x-{name}"),
)

VALID_ID = st.from_regex(
    r"[A-Za-z0-9_.:@+-]{0,12}[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,12}", fullmatch=True
)
ID_PATTERN_CHARS = frozenset(string.ascii_letters + string.digits + "_.:@+-")


def is_valid_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= 128
        and set(value) <= ID_PATTERN_CHARS
        and any(char.isalnum() for char in value)
    )


def fields(good: Mapping[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the real field names, each absent, well-formed or hostile, plus unknown
    keys."""
    known = st.fixed_dictionaries(
        {}, optional={name: st.one_of(value, JSON_VALUES) for name, value in good.items()}
    )
    unknown = st.dictionaries(UNKNOWN_KEYS, JSON_VALUES, max_size=2)
    return st.builds(lambda k, u: {**u, **k}, known, unknown)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


NOW = datetime.now(UTC)
#: `occurredAt` texts: well-formed past instants, edge cases of the calendar, and garbage.
TIMESTAMPS = st.one_of(
    st.integers(min_value=0, max_value=400 * 86_400).map(
        lambda seconds: _stamp(NOW - timedelta(seconds=seconds))
    ),
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-14:00",
            "2016-12-31T23:59:60Z",
            "2025-02-29T00:00:00Z",
            "2025-01-15T10:30:00.123456789Z",
            "2025-01-15t10:30:00z",
            "2025-01-15T10:30:00+24:00",
            "2025-01-15T10:30:00",
            "2025-01-15",
            "1e9",
            "-1",
        ]
    ),
    TEXT,
)
GOOD_USER_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "externalId": VALID_ID,
    "displayName": st.text(ANY_CHAR, max_size=30),
    "email": st.sampled_from(["jane@example.com", "", "a@b.co"]),
    "phone": st.text("+0123456789 ", max_size=20),
    "country": st.sampled_from(["NG", "gb", "US", ""]),
    "device": st.sampled_from(["mobile", "desktop", "tablet", ""]),
    "source": st.sampled_from(["organic", "referral", "facebook_ads", ""]),
    "tags": st.dictionaries(
        st.text(ANY_CHAR, min_size=1, max_size=10), st.text(ANY_CHAR, max_size=20), max_size=4
    ),
    "metadata": st.dictionaries(st.text(ANY_CHAR, max_size=10), JSON_VALUES, max_size=4),
}
GOOD_EVENT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "externalId": VALID_ID,
    "category": st.sampled_from(["GAME_PLAY", "CAMPAIGN", "POINTS", "CUSTOM"]),
    "eventType": st.from_regex(r"[a-z0-9_]{1,20}", fullmatch=True),
    "points": st.integers(min_value=-1_000_000, max_value=1_000_000),
    "occurredAt": TIMESTAMPS,
    "messageId": st.sampled_from(["m-1", "m-2", "m-3"]),
    "metadata": st.dictionaries(st.text(ANY_CHAR, max_size=10), JSON_VALUES, max_size=4),
}

USER_BODIES = fields(GOOD_USER_FIELDS)
EVENT_BODIES = fields(GOOD_EVENT_FIELDS)

#: Bodies that are not what json.dumps makes. (Not the malformed JSON Envoy's parser accepts:
#: single quotes, trailing commas, bare keys, unknown escapes; see test_gateway_facts.)
RAW_BODIES = [
    b"",
    b"{",
    b"}",
    b"null",
    b"[]",
    b'"text"',
    b"\xff\xfe{}",
    b"\xef\xbb\xbf{}",
    b'{"externalId":"u"',
    b'{"externalId":"u","externalId":5}',
    b'{"externalId":NaN}',
    b'{"externalId":"u","metadata":{"n":1e999}}',
    b'{"externalId":"u","metadata":{"n":Infinity}}',
    b'{"externalId":"\\ud800"}',
    b'{"externalId":"u\\u0000"}',
    b'{"events":' + b"[" * 200 + b"]" * 200 + b"}",
    b'{"metadata":' + b'{"a":' * 200 + b"1" + b"}" * 201,
]


def encode(value: Any, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")


def bodies(values: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, bytes]]:
    """(what was meant, the bytes sent): JSON texts, plus raw non-JSON bodies (meant: None)."""
    return st.one_of(
        st.builds(lambda v, a: (v, encode(v, a)), values, st.booleans()),
        st.builds(lambda v, a: (v, encode(v, a)), JSON_VALUES, st.booleans()),
        st.sampled_from(RAW_BODIES).map(lambda raw: (None, raw)),
        st.binary(max_size=40).map(lambda raw: (None, raw)),
    )


# --- hostile path segments and query strings -----------------------------------------------

#: Segments already in their on-the-wire form.
RAW_SEGMENTS = [
    "",
    ".",
    "..",
    "%2E",
    "%2e%2E",
    "%2F",
    "a%2Fb",
    "a%2fb",
    "..%2F..%2Fetc%2Fpasswd",
    "%252F",
    "%00",
    "a%00b",
    "%",
    "%zz",
    "%FF",
    "%C0%AF",
    "%ED%A0%80",
    "%F4%90%80%80",
    "%C3%A9",
    "%F0%9F%98%80",
    "a;b",
    "a,b",
    "~",
    "*",
    "a" * 10_240,
    "%41" * 3_000,
]


def _quote_all(text: str) -> str:
    return quote(text, safe="")


def _quote_some(text: str) -> str:
    return quote(text, safe=".:@+-_~!$&'()*,;=")


def _percent_every_byte(text: str) -> str:
    return "".join(f"%{byte:02X}" for byte in text.encode())


def segments(known: Collection[str] = ()) -> st.SearchStrategy[str]:
    """Path segments for `{externalId}`/`{offerId}` as sent: encoded text (unicode, `/`, NUL,
    dots), raw hostile forms, 10 KB ids, and the ids in `known` (plain and fully encoded)."""
    options: list[st.SearchStrategy[str]] = [
        TEXT.map(_quote_all),
        TEXT.map(_quote_some),
        st.sampled_from(RAW_SEGMENTS),
    ]
    if known:
        options.append(st.sampled_from(sorted(known)))
        options.append(st.sampled_from(sorted(known)).map(_percent_every_byte))
    return st.one_of(*options)


def decoded(segment: str) -> str | None:
    """The id the transcoder hands the service for `segment` (None if it is not UTF-8)."""
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return None


QUERY_NAMES = st.one_of(
    st.sampled_from(
        [
            "page",
            "limit",
            "_",
            "externalId",
            "external_id",
            "offerId",
            "offer_id",
            "displayName",
            "tags.plan",
            "metadata.x",
            "events.externalId",
            "event.externalId",
            "event.messageId",
            "page.x",
            "lifecycleStage",
            "engagementTier",
            "minChurnRisk",
            "cursor",
            "suppress",
            "",
            "%FF",
            "a%00",
        ]
    ),
    st.text(ANY_CHAR, max_size=10).map(_quote_all),
)
QUERY_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1",
            "2",
            "20",
            "100",
            "101",
            "2147483647",
            "2147483648",
            "99999999999999999999",
            "1.5",
            "1e3",
            "abc",
            "%FF",
            "%00",
            "NaN",
            "+1",
            "%20%31",
            "0x10",
            "true",
            "false",
            "at_risk",
            "power_user",
            "whale",
            "YWZ0ZXI6dQ",
            '"domain":"journeys","message":"pwned"',
            "x" * 5_000,
        ]
    ).map(lambda v: quote(v, safe="%:,\"'")),
    st.text(ANY_CHAR, max_size=20).map(_quote_all),
)
QUERY_PAIRS = st.lists(st.tuples(QUERY_NAMES, QUERY_VALUES), max_size=4)


def query_string(pairs: list[tuple[str, str]]) -> str:
    return "?" + "&".join(f"{name}={value}" for name, value in pairs) if pairs else ""


def as_float_tree(value: Any) -> Any:
    """JSON as google.protobuf.Struct keeps it: every number a double."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        number = float(value)
        return 0.0 if number == 0 else number
    if isinstance(value, list):
        return [as_float_tree(item) for item in value]
    return {key: as_float_tree(item) for key, item in value.items()}


def fresh_id() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"
