"""Partner keys: format, generation and the one-way digest we store."""

from __future__ import annotations

import hashlib
import re
import secrets

from journeys.domain import Environment, KeyKind

_KEY = re.compile(r"(pk|sk)_(live|test)_[0-9a-f]{32}")
_PREFIX_BY_KIND = {KeyKind.PUBLIC: "pk", KeyKind.SECRET: "sk"}
_KIND_BY_PREFIX = {prefix: kind for kind, prefix in _PREFIX_BY_KIND.items()}
_ENVIRONMENT_BY_NAME = {"live": Environment.LIVE, "test": Environment.TEST}
#: What `journeys keys list` shows: enough to tell keys apart, useless to an attacker.
DISPLAY_PREFIX_LENGTH = len("pk_test_") + 8


def generate(environment: Environment, kind: KeyKind = KeyKind.PUBLIC) -> str:
    return f"{_PREFIX_BY_KIND[kind]}_{environment.value.lower()}_{secrets.token_hex(16)}"


def parse(key: str) -> tuple[KeyKind, Environment] | None:
    """The kind and environment a well-formed key selects, or None for anything else."""
    match = _KEY.fullmatch(key)
    if match is None:
        return None
    return _KIND_BY_PREFIX[match.group(1)], _ENVIRONMENT_BY_NAME[match.group(2)]


def environment_of(key: str) -> Environment | None:
    parsed = parse(key)
    return None if parsed is None else parsed[1]


def digest(key: str) -> str:
    """SHA-256 of the key. Only this is stored; lookups are by digest, so no comparison ever
    runs on secret bytes an attacker can steer."""
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]
