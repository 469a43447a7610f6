"""Turning a presented API key into the tenant it may act for."""

from __future__ import annotations

from datetime import datetime

from journeys import observability
from journeys.domain import Environment, Tenant
from journeys.errors import InvalidApiKey, MissingApiKey, RevokedApiKey
from journeys.storage.key_store import KeyStore
from journeys.usecases import apikeys


async def authenticate(keys: KeyStore, presented: str | None) -> Tenant:
    """Looked up on every call, so a revocation binds every server process at once."""
    if not presented:
        raise MissingApiKey
    if apikeys.environment_of(presented) is None:
        raise InvalidApiKey
    key = await keys.find_by_digest(apikeys.digest(presented))
    if key is None:
        raise InvalidApiKey
    observability.note_partner(key.partner_id)  # for the call's log line
    if key.revoked_at is not None:
        raise RevokedApiKey
    return Tenant(key.partner_id, key.environment)


async def create_key(keys: KeyStore, partner: str, environment: Environment, now: datetime) -> str:
    """Creates the partner if needed and a new key for it; the key is returned only here."""
    partner_id = await keys.ensure_partner(partner, now)
    key = apikeys.generate(environment)
    await keys.add_key(
        partner_id, environment, apikeys.digest(key), apikeys.display_prefix(key), now
    )
    return key
