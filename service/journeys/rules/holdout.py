"""The holdout: a stable share of a tenant's users who get no offers, so what offers do can be
measured against them.

A user is held out when the first 8 bytes of SHA-256("partner id/environment/externalId"), read
as an unsigned integer and divided by 2^64, fall below the tenant's share. The assignment
depends on nothing else: it is the same in every run and every process, and a larger share
holds out a superset of a smaller one.
"""

from __future__ import annotations

import hashlib

DEFAULT_HOLDOUT_SHARE = 0.05


def holdout_point(partner_id: str, environment: str, external_id: str) -> float:
    """The user's fixed point in [0, 1)."""
    digest = hashlib.sha256(f"{partner_id}/{environment}/{external_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def held_out(partner_id: str, environment: str, external_id: str, share: float) -> bool:
    return share > 0 and holdout_point(partner_id, environment, external_id) < share
