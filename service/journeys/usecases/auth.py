"""Turning a presented API key into the tenant it may act for, and deciding what the key's
kind allows: every operation takes any valid key, the partner operations (Part C) a secret
one. An operator at the command line acts for a partner by name, with no key at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from journeys.domain import Environment, KeyKind, PresentedKey, Tenant
from journeys.errors import (
    InvalidApiKey,
    MissingApiKey,
    PartnerNotFound,
    RevokedApiKey,
    SecretKeyRequired,
)
from journeys.storage.key_store import KeyStore
from journeys.usecases import apikeys


@dataclass
class Caller:
    """Who is calling: the key presented and, once it has been resolved, the partner it
    belongs to. The transport makes one per call and logs `partner_id`, also when the call
    fails after the key was known (a revoked key, an unknown user)."""

    api_key: str | None
    partner_id: str | None = None


async def authenticate(
    keys: KeyStore, caller: Caller, *, needs: KeyKind = KeyKind.PUBLIC
) -> Tenant:
    """Looked up on every call, so a revocation binds every server process at once. `needs`
    is the least kind of key the operation takes (a secret key opens everything)."""
    return admit(caller, await keys.presented(presented_digest(caller)), needs=needs)


def presented_digest(caller: Caller) -> str:
    """The digest a call's key is stored under; refuses a call without a well-formed key
    before anything is read."""
    presented = caller.api_key
    if not presented:
        raise MissingApiKey
    if apikeys.parse(presented) is None:
        raise InvalidApiKey
    return apikeys.digest(presented)


def admit(caller: Caller, key: PresentedKey | None, *, needs: KeyKind = KeyKind.PUBLIC) -> Tenant:
    """The tenant of the key found under the caller's digest, if it may do what `needs`."""
    if key is None:
        raise InvalidApiKey
    caller.partner_id = key.partner_id
    if key.revoked:
        raise RevokedApiKey
    if needs is KeyKind.SECRET and key.kind is not KeyKind.SECRET:
        raise SecretKeyRequired
    return Tenant(key.partner_id, key.environment)


@dataclass(frozen=True)
class Operator:
    """Someone running the service, acting for one partner's environment directly (the
    command line): trusted as a secret key would be."""

    partner: str
    environment: Environment


Actor = Caller | Operator


async def tenant_of(keys: KeyStore, actor: Actor, *, needs: KeyKind = KeyKind.PUBLIC) -> Tenant:
    """The tenant an API caller (by its key) or an operator (by partner name) acts for."""
    if isinstance(actor, Caller):
        return await authenticate(keys, actor, needs=needs)
    partner_id = await keys.partner_id(actor.partner)
    if partner_id is None:
        raise PartnerNotFound
    return Tenant(partner_id, actor.environment)


async def create_key(
    keys: KeyStore,
    partner: str,
    environment: Environment,
    now: datetime,
    kind: KeyKind = KeyKind.PUBLIC,
) -> str:
    """Creates the partner if needed and a new key for it; the key is returned only here."""
    partner_id = await keys.ensure_partner(partner, now)
    key = apikeys.generate(environment, kind)
    await keys.add_key(
        partner_id, environment, kind, apikeys.digest(key), apikeys.display_prefix(key), now
    )
    return key
