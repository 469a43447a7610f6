"""Per-key rate limiting through the real gateway and server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2 as pb
from gamifyhost.userjourneys.v1 import user_journeys_service_pb2_grpc as pb_grpc

from scripts.stack import Stack, migrate, new_key, running_stack
from tests.api.rest import error


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    url = f"sqlite+aiosqlite:///{Path(tmp_path_factory.mktemp('limited')) / 'limited.db'}"
    migrate(url)
    # A refill so slow that nothing refills during the test: exactly the burst gets through.
    overrides = {"JOURNEYS_RATE_LIMIT": "0.01", "JOURNEYS_RATE_BURST": "5"}
    with running_stack(url, env_overrides=overrides) as stack:
        yield stack


def test_a_key_over_its_burst_gets_429_with_retry_after(limited: Stack) -> None:
    key = new_key(limited.database_url, "busy")
    with httpx.Client(base_url=limited.base_url) as http:
        responses = [
            http.get("/v1/user-journeys/users/u", headers={"X-API-Key": key}) for _ in range(8)
        ]

    assert [r.status_code for r in responses] == [404] * 5 + [429] * 3
    for response in responses[5:]:
        error(response, 429, "Rate limit exceeded")
        assert int(response.headers["retry-after"]) >= 1


def test_other_keys_keep_their_own_budget(limited: Stack) -> None:
    noisy, quiet = new_key(limited.database_url, "noisy"), new_key(limited.database_url, "quiet")
    with httpx.Client(base_url=limited.base_url) as http:
        for _ in range(6):
            http.get("/v1/user-journeys/users/u", headers={"X-API-Key": noisy})

        response = http.get("/v1/user-journeys/users/u", headers={"X-API-Key": quiet})

    error(response, 404, "User not found")


def test_guessing_keys_spends_the_guessed_value_budget(limited: Stack) -> None:
    guess = "pk_live_" + "1" * 32
    with httpx.Client(base_url=limited.base_url) as http:
        codes = [
            http.get("/v1/user-journeys/users/u", headers={"X-API-Key": guess}).status_code
            for _ in range(7)
        ]

    assert codes == [401] * 5 + [429] * 2


def test_grpc_clients_get_resource_exhausted(limited: Stack) -> None:
    key = new_key(limited.database_url, "grpc-busy")
    with grpc.insecure_channel(limited.direct_target) as channel:
        stub = pb_grpc.UserJourneysServiceStub(channel)
        request = pb.GetUserRequest(external_id="u")
        codes = []
        for _ in range(7):
            try:
                stub.GetUser(request, metadata=(("x-api-key", key),))
            except grpc.RpcError as failure:
                codes.append((failure.code(), failure.details()))

    assert codes[:5] == [(grpc.StatusCode.NOT_FOUND, "User not found")] * 5
    assert codes[5:] == [(grpc.StatusCode.RESOURCE_EXHAUSTED, "Rate limit exceeded")] * 2
