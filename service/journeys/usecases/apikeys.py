"""Partner public keys: format, generation and the one-way digest we store."""

from __future__ import annotations

import hashlib
import re
import secrets

from journeys.domain import Environment

_KEY = re.compile(r"pk_(live|test)_[0-9a-f]{32}")
_PREFIX_BY_ENVIRONMENT = {Environment.LIVE: "pk_live_", Environment.TEST: "pk_test_"}
#: What `journeys keys list` shows: enough to tell keys apart, useless to an attacker.
DISPLAY_PREFIX_LENGTH = len("pk_test_") + 8


def generate(environment: Environment) -> str:
    return _PREFIX_BY_ENVIRONMENT[environment] + secrets.token_hex(16)


def environment_of(key: str) -> Environment | None:
    """The environment a well-formed key selects, or None for anything else."""
    match = _KEY.fullmatch(key)
    if match is None:
        return None
    return Environment.LIVE if match.group(1) == "live" else Environment.TEST


def digest(key: str) -> str:
    """SHA-256 of the key. Only this is stored; lookups are by digest, so no comparison ever
    runs on secret bytes an attacker can steer."""
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]
