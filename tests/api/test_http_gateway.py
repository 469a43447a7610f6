"""What any HTTP client or proxy meets at the gateway (api.md Part B, "HTTP at the gateway"),
through the real Envoy and server."""

from __future__ import annotations

import httpx
import pytest

from tests.api.rest import error, headers, success

BASE = "/v1/user-journeys"


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
