from __future__ import annotations

import httpx
import pytest

from scripts.stack import Stack
from tests.hardening.fuzz import Api


@pytest.fixture
def api(stack: Stack, key: str, http: httpx.Client) -> Api:
    """A fresh tenant (partner, TEST) of this test only, kept across its hypothesis examples."""
    return Api(stack, key, http)
