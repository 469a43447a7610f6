"""What a key's kind allows, decided beside authentication: any valid key opens the documented
endpoints, only a secret key the partner operations. Run against a real database."""

from __future__ import annotations

import asyncio

import pytest
from journeys.domain import Environment, KeyKind, Tenant, utc_now
from journeys.errors import InvalidApiKey, RevokedApiKey, SecretKeyRequired
from journeys.storage.database import Database
from journeys.usecases import apikeys, keys
from journeys.usecases.auth import Caller, authenticate

from scripts.stack import migrate, new_key


def _authenticate(database_url: str, key: str, needs: KeyKind) -> tuple[Tenant, Caller]:
    async def run() -> tuple[Tenant, Caller]:
        caller = Caller(key)
        async with Database(database_url) as database, database.transaction(write=False) as tx:
            return await authenticate(tx.keys, caller, needs=needs), caller

    return asyncio.run(run())


@pytest.mark.parametrize("environment", list(Environment))
def test_a_secret_key_opens_both_kinds_of_operation(
    database_url: str, environment: Environment
) -> None:
    migrate(database_url)
    secret = new_key(database_url, "kinds", environment, KeyKind.SECRET)

    assert apikeys.parse(secret) == (KeyKind.SECRET, environment)
    for needs in KeyKind:
        tenant, caller = _authenticate(database_url, secret, needs)
        assert tenant.environment is environment
        assert caller.partner_id == tenant.partner_id


def test_a_public_key_is_refused_where_a_secret_one_is_needed(database_url: str) -> None:
    migrate(database_url)
    public = new_key(database_url, "kinds")

    tenant, _ = _authenticate(database_url, public, KeyKind.PUBLIC)
    with pytest.raises(SecretKeyRequired) as refused:
        _authenticate(database_url, public, KeyKind.SECRET)

    assert tenant.environment is Environment.TEST
    assert refused.value.message == "This endpoint requires a secret key"


def test_missing_invalid_and_revoked_secret_keys_answer_as_public_ones(database_url: str) -> None:
    migrate(database_url)
    secret = new_key(database_url, "kinds", Environment.LIVE, KeyKind.SECRET)
    # The same secret part under the other kind's prefix is another key, never issued.
    with pytest.raises(InvalidApiKey):
        _authenticate(database_url, "pk" + secret[2:], KeyKind.PUBLIC)

    async def revoke() -> int:
        async with Database(database_url) as database:
            return await keys.revoke(database, secret[: apikeys.DISPLAY_PREFIX_LENGTH], utc_now())

    assert asyncio.run(revoke()) == 1
    for needs in KeyKind:
        with pytest.raises(RevokedApiKey):
            _authenticate(database_url, secret, needs)
