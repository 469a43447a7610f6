"""Fixtures of the API tests beyond the stack's own (tests/conftest.py)."""

from __future__ import annotations

import uuid
from typing import NamedTuple

import pytest
from journeys.domain import KeyKind

from tests.conftest import KeyFactory


class Tenant(NamedTuple):
    partner: str
    secret: str
    public: str


@pytest.fixture
def tenant(new_key: KeyFactory) -> Tenant:
    """A partner of this test only, with a secret and a public key of its test environment."""
    partner = f"partner-{uuid.uuid4()}"
    return Tenant(partner, new_key(partner=partner, kind=KeyKind.SECRET), new_key(partner=partner))
