"""Fixtures of the registry API tests: callers of each role and API keys (shared with the network's)."""

from __future__ import annotations

from tests.api.network.conftest import api_key_for, headers_for

__all__ = ["api_key_for", "headers_for"]
