"""The Redis-backed rate limiter (real Redis)."""

from __future__ import annotations

import uuid

import pytest

from services.core.errors import RateLimited
from services.core.users.ratelimit import RateLimiter, parse_rate


async def test_limits_per_identifiers_and_says_when_to_retry(redis_url: str) -> None:
    limiter = RateLimiter.from_url(redis_url, "2/minute", namespace=f"test-{uuid.uuid4().hex}")
    try:
        await limiter.hit("a@example.org", "10.0.0.1")
        await limiter.hit("a@example.org", "10.0.0.1")
        with pytest.raises(RateLimited) as raised:
            await limiter.hit("a@example.org", "10.0.0.1")
        assert 1 <= raised.value.extra["retry_after"] <= 60
        # Another address, or another email, has its own allowance.
        await limiter.hit("a@example.org", "10.0.0.2")
        await limiter.hit("b@example.org", "10.0.0.1")
    finally:
        await limiter.close()


async def test_several_windows_apply_together(redis_url: str) -> None:
    limiter = RateLimiter.from_url(redis_url, "5/minute; 1/second", namespace=f"test-{uuid.uuid4().hex}")
    try:
        await limiter.hit("x")
        with pytest.raises(RateLimited):
            await limiter.hit("x")
    finally:
        await limiter.close()


async def test_without_redis_the_limit_is_not_applied(caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens on port 1: every call fails fast, and logins must keep working.
    limiter = RateLimiter.from_url("redis://127.0.0.1:1/0", "1/minute", namespace="test")
    try:
        for _ in range(3):
            await limiter.hit("someone@example.org", "10.0.0.1")
    finally:
        await limiter.close()
    assert "rate limit not applied" in caplog.text
    assert "someone@example.org" not in caplog.text


def test_rates_are_validated() -> None:
    assert parse_rate("10/minute")[0].amount == 10
    with pytest.raises(ValueError, match="couldn't parse"):
        parse_rate("ten a minute")
