"""Fixtures of the webhook endpoint API tests: callers of each role and API keys (the network's)."""

from __future__ import annotations

from tests.api.network.conftest import api_key_for, headers_for

__all__ = ["api_key_for", "headers_for"]
