"""What any HTTP client or proxy meets at the gateway (api.md Part B, "HTTP at the gateway"):
protocols, methods, request ids, compression, duplicate JSON keys and the headers limit,
through the real Envoy and server."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2_grpc as pb_grpc

from scripts.stack import Stack
from tests.api.rest import error, headers, success

BASE = "/v1/user-journeys"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class CurlReply:
    version: str
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def curl(stack: Stack, protocol: str, method: str, path: str, *args: str) -> CurlReply:
    """One request with the real curl (`--http1.0`, `--http1.1`, `--http2-prior-knowledge`)."""
    # -I prints the headers itself.
    command = [
        "curl",
        "-s",
        "-S",
        protocol,
        *(["-I"] if method == "HEAD" else ["-D", "-", "-X", method]),
    ]
    completed = subprocess.run(
        [*command, *args, f"{stack.base_url}{path}"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    head, _, body = completed.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0].split(" ")[:2]
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return CurlReply(version, int(status), fields, body)


# --- protocols ---------------------------------------------------------------------------------

PROTOCOLS = {"--http1.0": "HTTP/1.0", "--http1.1": "HTTP/1.1", "--http2-prior-knowledge": "HTTP/2"}


def test_http_1_0_1_1_and_h2c_get_the_same_answers(stack: Stack, key: str) -> None:
    """nginx's proxy_pass speaks HTTP/1.0 by default: it used to get 426."""
    auth = ("-H", f"X-API-Key: {key}")
    json_body = ("-H", "Content-Type: application/json")
    for protocol, version in PROTOCOLS.items():
        body = f'{{"externalId":"p","displayName":"{version}"}}'
        created = curl(stack, protocol, "POST", f"{BASE}/users", *auth, *json_body, "-d", body)

        assert (created.version, created.status) == (version, 200)
        assert created.json()["data"]["displayName"] == version
    answers = []
    for protocol, version in PROTOCOLS.items():
        read = curl(stack, protocol, "GET", f"{BASE}/users/p", *auth)
        unknown = curl(stack, protocol, "GET", f"{BASE}/users/nobody", *auth)
        invalid = curl(stack, protocol, "POST", f"{BASE}/users", *auth, *json_body, "-d", "{}")

        assert {read.version, unknown.version, invalid.version} == {version}
        answers.append(
            (read.status, read.body, unknown.status, unknown.body, invalid.status, invalid.body)
        )
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 200
    assert answers[0][2:] == (
        404,
        b'{"message":"User not found","code":404,"status":"error"}',
        400,
        b'{"message":"Invalid request body: externalId is required","code":400,"status":"error"}',
    )


# --- methods -----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["--http1.1", "--http2-prior-knowledge"])
def test_head_answers_as_get_would_without_the_body(stack: Stack, key: str, protocol: str) -> None:
    """Uptime monitors send HEAD: it used to be 404 everywhere."""
    auth = ("-H", f"X-API-Key: {key}")
    curl(stack, protocol, "POST", f"{BASE}/users", *auth, "-d", '{"externalId":"headed"}')
    for path, auth_args in [
        (f"{BASE}/users/headed", auth),
        (f"{BASE}/users/headed/timeline?limit=5", auth),
        (f"{BASE}/users/headed/offers", auth),
        (f"{BASE}/users/nobody", auth),
        (f"{BASE}/openapi.json", ()),
    ]:
        got = curl(stack, protocol, "GET", path, *auth_args)
        head = curl(stack, protocol, "HEAD", path, *auth_args)

        assert head.status == got.status, path
        assert head.body == b"", path
        assert head.headers["content-type"] == got.headers["content-type"] == "application/json"
        assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.body))


def test_options_on_a_known_path_is_204_with_allow(http: httpx.Client) -> None:
    for path, allow in [
        (f"{BASE}/users", "GET, HEAD, POST, OPTIONS"),
        (f"{BASE}/track", "POST, OPTIONS"),
        (f"{BASE}/users/u", "GET, HEAD, DELETE, OPTIONS"),
        (f"{BASE}/users/u/offers", "GET, HEAD, OPTIONS"),
        (f"{BASE}/users/u/offers/o/claim", "POST, OPTIONS"),
        (f"{BASE}/users/u/export", "GET, HEAD, OPTIONS"),
        (f"{BASE}/segments", "GET, HEAD, OPTIONS"),
        (f"{BASE}/suppressions/u", "DELETE, OPTIONS"),
        (f"{BASE}/openapi.json", "GET, HEAD, OPTIONS"),
    ]:
        response = http.options(path)

        assert response.status_code == 204, path
        assert response.headers["allow"] == allow
        assert response.content == b""


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", f"{BASE}/users", "GET, HEAD, POST, OPTIONS"),
        ("PUT", f"{BASE}/events", "POST, OPTIONS"),
        ("PUT", f"{BASE}/users/u", "GET, HEAD, DELETE, OPTIONS"),
        ("POST", f"{BASE}/segments", "GET, HEAD, OPTIONS"),
        ("GET", f"{BASE}/suppressions/u", "DELETE, OPTIONS"),
        ("DELETE", f"{BASE}/users/u/export", "GET, HEAD, OPTIONS"),
        ("POST", f"{BASE}/users/u/timeline", "GET, HEAD, OPTIONS"),
        ("PATCH", f"{BASE}/users/u/offers", "GET, HEAD, OPTIONS"),
        ("GET", f"{BASE}/users/u/offers/o/claim", "POST, OPTIONS"),
        ("POST", f"{BASE}/openapi.json", "GET, HEAD, OPTIONS"),
        ("FOO", f"{BASE}/users/u", "GET, HEAD, DELETE, OPTIONS"),
    ],
)
def test_a_method_the_path_lacks_is_405_with_allow(
    http: httpx.Client, key: str, method: str, path: str, allow: str
) -> None:
    response = http.request(method, path, headers=headers(key), content=b'{"externalId":"u"}')

    error(response, 405, "Method not allowed")
    assert response.headers["allow"] == allow


@pytest.mark.parametrize("protocol", ["--http1.1", "--http2-prior-knowledge"])
def test_an_unknown_method_is_405_or_501_never_invalid_request_body(
    stack: Stack, protocol: str
) -> None:
    typed = ("-H", "Content-Type: application/json", "-d", "{}")
    for method, path, args, status in [
        ("QUERY", f"{BASE}/users/u", typed, 405),
        ("FOO", f"{BASE}/users/u", (), 405),
        # Without Content-Type Envoy refuses a QUERY before routing it (RFC 10008).
        ("QUERY", f"{BASE}/users/u", (), 405),
        ("QUERY", f"{BASE}/users/u/offers?x=1", (), 405),
        ("QUERY", f"{BASE}/nothing", (), 501),
        ("QUERY", f"{BASE}/nothing", typed, 501),
        ("FOO", f"{BASE}/nothing", (), 501),
        ("FOO", "/", (), 501),
    ]:
        reply = curl(stack, protocol, method, path, *args)

        message = "Method not allowed" if status == 405 else "Not implemented"
        assert (reply.status, reply.json()) == (
            status,
            {"message": message, "code": status, "status": "error"},
        ), (method, path, args)
        assert reply.headers["content-type"] == "application/json"
        assert UUID.fullmatch(reply.headers["x-request-id"])
        if status == 405:
            allow = "GET, HEAD, OPTIONS" if "/offers" in path else "GET, HEAD, DELETE, OPTIONS"
            assert reply.headers["allow"] == allow, (method, path, args)


# --- request ids -------------------------------------------------------------------------------


def _log_line_with(stack: Stack, request_id: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in stack.log_text().splitlines():
            if f"request_id={request_id} " in line:
                return line
        time.sleep(0.1)
    raise AssertionError(f"no log line with request id {request_id}")


def test_every_response_carries_the_request_id_the_server_logged(
    stack: Stack, http: httpx.Client, key: str
) -> None:
    own = f"client.{uuid.uuid4().hex}-A_1"
    mine = http.get(f"{BASE}/users/nobody", headers={"X-API-Key": key, "X-Request-Id": own})
    made = http.get(f"{BASE}/users/nobody", headers={"X-API-Key": key})

    assert mine.headers["x-request-id"] == own
    assert "GetUser NOT_FOUND" in _log_line_with(stack, own)
    assert UUID.fullmatch(made.headers["x-request-id"])
    assert "GetUser NOT_FOUND" in _log_line_with(stack, made.headers["x-request-id"])


def test_a_grpc_client_through_the_gateway_keeps_its_request_id(stack: Stack, key: str) -> None:
    own = f"grpc.{uuid.uuid4().hex}"
    with grpc.insecure_channel(stack.gateway_target) as channel:
        stub = pb_grpc.UserJourneysServiceStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            stub.GetUser(
                pb.GetUserRequest(external_id="nobody"),
                metadata=(("x-api-key", key), ("x-request-id", own)),
            )

    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    assert "GetUser NOT_FOUND" in _log_line_with(stack, own)


@pytest.mark.parametrize("invalid", ["has space", "semi;colon", "x" * 129, 'quote"d', "%41", "é"])
def test_an_invalid_client_request_id_is_replaced(
    stack: Stack, http: httpx.Client, key: str, invalid: str
) -> None:
    response = http.get(
        f"{BASE}/users/nobody",
        headers={b"X-API-Key": key.encode(), b"X-Request-Id": invalid.encode()},
    )

    replaced = response.headers["x-request-id"]
    assert UUID.fullmatch(replaced)
    assert "GetUser NOT_FOUND" in _log_line_with(stack, replaced)


def test_gateway_errors_carry_a_request_id_too(http: httpx.Client, key: str) -> None:
    own = "err-id-1"
    for response in [
        http.get("/nothing", headers={"X-Request-Id": own}),
        http.post(f"{BASE}/users", headers={**headers(key), "X-Request-Id": own}, content=b"{"),
        http.delete(f"{BASE}/users/u", headers={"X-Request-Id": own}),
        http.get(f"{BASE}/openapi.json", headers={"X-Request-Id": own}),
        http.options(f"{BASE}/users", headers={"X-Request-Id": own}),
    ]:
        assert response.headers["x-request-id"] == own, response.request


# --- compression -------------------------------------------------------------------------------


def test_responses_over_one_kib_are_gzipped_when_asked(http: httpx.Client, key: str) -> None:
    big = {"externalId": "zipped", "metadata": {"notes": "n" * 4000}}
    success(http.post(f"{BASE}/users", headers=headers(key), json=big))

    zipped = http.get(f"{BASE}/users/zipped", headers={"X-API-Key": key, "Accept-Encoding": "gzip"})
    plain = http.get(f"{BASE}/users/zipped", headers={"X-API-Key": key, "Accept-Encoding": ""})
    small = http.get(f"{BASE}/users/nobody", headers={"X-API-Key": key, "Accept-Encoding": "gzip"})
    document = http.get(f"{BASE}/openapi.json", headers={"Accept-Encoding": "gzip"})

    assert zipped.headers["content-encoding"] == "gzip"
    assert success(zipped)["metadata"] == big["metadata"]  # httpx decompressed it
    assert "content-encoding" not in plain.headers
    assert zipped.json() == plain.json()
    assert "content-encoding" not in small.headers
    error(small, 404, "User not found")
    assert document.headers["content-encoding"] == "gzip"
    assert document.json()["openapi"].startswith("3.1")


def test_gzip_request_bodies_are_accepted(http: httpx.Client, key: str) -> None:
    events = [
        {"externalId": "gz", "category": "CUSTOM", "eventType": "x", "messageId": f"gz-{n}"}
        for n in range(300)
    ]
    body = gzip.compress(json.dumps({"events": events}).encode())

    response = http.post(
        f"{BASE}/track", headers={**headers(key), "Content-Encoding": "gzip"}, content=body
    )

    assert success(response)["accepted"] == 300


def test_the_one_mebibyte_limit_applies_to_the_decompressed_body(
    http: httpx.Client, key: str
) -> None:
    inflated = json.dumps({"externalId": "bomb", "metadata": {"x": "a" * 1_100_000}}).encode()
    body = gzip.compress(inflated)
    assert len(body) < 10_000

    response = http.post(
        f"{BASE}/users", headers={**headers(key), "Content-Encoding": "gzip"}, content=body
    )

    error(response, 413, "Request body too large")
    error(http.get(f"{BASE}/users/bomb", headers={"X-API-Key": key}), 404, "User not found")


def test_duplicate_keys_are_found_inside_a_gzip_body(http: httpx.Client, key: str) -> None:
    body = gzip.compress(b'{"externalId":"a","externalId":"b"}')

    response = http.post(
        f"{BASE}/users", headers={**headers(key), "Content-Encoding": "gzip"}, content=body
    )

    error(response, 400, 'Invalid request body: duplicate key "externalId"')


@pytest.mark.parametrize("encoding", ["br", "deflate", "compress", "zstd", "gzip, br"])
def test_another_content_encoding_is_415(http: httpx.Client, key: str, encoding: str) -> None:
    response = http.post(
        f"{BASE}/users",
        headers={**headers(key), "Content-Encoding": encoding},
        content=b'{"externalId":"enc"}',
    )

    error(response, 415, "Unsupported content encoding")
    error(http.get(f"{BASE}/users/enc", headers={"X-API-Key": key}), 404, "User not found")


# --- duplicate JSON keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "name"),
    [
        (b'{"externalId":"a","externalId":"b"}', "externalId"),
        (b'{"externalId":"a","tags":{"plan":"x","plan":"y"}}', "plan"),
        (b'{"externalId":"a","metadata":{"deep":[{"k":1,"k":2}]}}', "k"),
        (b'{"externalId":"a","metadata":{"k":1,"\\u006b":2}}', "k"),
        (b'{"externalId":"a","metadata":{"q\\"uote":1,"q\\"uote":2}}', 'q"uote'),
        (b'{"externalId":"a","metadata":{"back\\\\slash":1,"back\\\\slash":2}}', "back\\slash"),
        (b'{"externalId":"a","metadata":{"\\u0000\\n":1,"\\u0000\\n":2}}', "\x00\n"),
        ('{"externalId":"a","metadata":{"é":1,"\\u00e9":2}}'.encode(), "é"),
        ('{"externalId":"a","metadata":{"😀":1,"\\ud83d\\ude00":2}}'.encode(), "😀"),
    ],
)
def test_a_duplicate_key_anywhere_is_400_naming_it(
    http: httpx.Client, key: str, body: bytes, name: str
) -> None:
    response = http.post(f"{BASE}/users", headers=headers(key), content=body)

    error(response, 400, f'Invalid request body: duplicate key "{name}"')
    error(http.get(f"{BASE}/users/a", headers={"X-API-Key": key}), 404, "User not found")


def test_a_duplicate_key_in_a_batch_item_fails_the_batch(http: httpx.Client, key: str) -> None:
    item = '{"externalId":"d","category":"CUSTOM","eventType":"x"}'
    twice = '{"externalId":"d","category":"CUSTOM","eventType":"x","points":1,"points":2}'
    for body in (
        f'{{"events":[{item},{twice}]}}',
        f'{{"events":[{item}],"events":[{item}]}}',
    ):
        response = http.post(f"{BASE}/track", headers=headers(key), content=body.encode())

        assert response.status_code == 400
        assert response.json()["message"].startswith("Invalid request body: duplicate key")
    error(
        http.post(f"{BASE}/events", headers=headers(key), content=twice.encode()),
        400,
        'Invalid request body: duplicate key "points"',
    )


def test_equal_keys_in_different_objects_are_fine(http: httpx.Client, key: str) -> None:
    body = b'{"externalId":"same","metadata":{"a":{"k":1},"b":{"k":2},"k":[{"k":3},{"k":4}]}}'

    data = success(http.post(f"{BASE}/users", headers=headers(key), content=body))

    assert data["metadata"] == {"a": {"k": 1}, "b": {"k": 2}, "k": [{"k": 3}, {"k": 4}]}


# --- oversized headers -------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["--http1.1", "--http2-prior-knowledge"])
@pytest.mark.parametrize("shape", ["one header", "many headers"])
def test_headers_over_60_kib_are_the_json_431_on_every_protocol(
    stack: Stack, key: str, protocol: str, shape: str, tmp_path: Path
) -> None:
    """Over HTTP/2 the codec used to reset the stream at its 60 KiB default."""
    if shape == "one header":
        junk = [f"X-Junk: {'j' * 62_000}"]
    else:
        junk = [f"X-Junk-{n}: {'j' * 15_800}" for n in range(4)]
    # curl reads the headers from a file: the command line could not hold them.
    header_file = tmp_path / "headers"
    header_file.write_text("\n".join([f"X-API-Key: {key}", *junk]) + "\n")

    reply = curl(stack, protocol, "GET", f"{BASE}/users/nobody", "-H", f"@{header_file}")

    assert reply.status == 431
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"message": "Request headers too large", "code": 431, "status": "error"}
