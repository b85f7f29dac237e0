"""The Redis-backed rate limiter (real Redis)."""

from __future__ import annotations

import uuid

import pytest

from services.core.errors import RateLimited
from services.core.users.ratelimit import FixedWindowLimits, RateLimiter, parse_rate


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


async def test_fixed_window_limits_count_in_one_round_trip(redis_url: str) -> None:
    """Several limits (public signing's address, domain and petition) cost one Redis command together,
    count in the same keys the single limiter uses, refuse at the first one over its limit and leave the
    ones after it uncounted."""
    run = uuid.uuid4().hex
    a, b, c = f"a-{run}", f"b-{run}", f"c-{run}"
    limits = FixedWindowLimits.from_url(redis_url, {a: "3/minute", b: "2/minute; 10/hour", c: "5/minute"})
    commands = 0
    real = limits._pool.get_connection

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal commands
        commands += 1
        return await real(*args, **kwargs)

    limits._pool.get_connection = counted
    single = RateLimiter.from_url(redis_url, "3/minute", namespace=a, moving_window=False)
    try:
        await limits.hit({a: "x", b: "y", c: "z"})
        assert commands == 1
        await single.hit("x")  # the same counter as the single limiter's: a is at 2 of 3
        await limits.hit({a: "x", b: "y", c: "z"})  # a 3 of 3, b 2 of 2, c 2 of 5
        with pytest.raises(RateLimited) as raised:
            await limits.hit({a: "x", b: "y", c: "z"})  # a refuses; b and c are not counted
        assert 1 <= raised.value.extra["retry_after"] <= 60
        with pytest.raises(RateLimited):
            await limits.hit({a: None, b: "y", c: None})  # b was left at 2 of 2
        for _ in range(3):
            await limits.hit({a: None, b: None, c: "z"})  # c was left at 2 of 5: three more
        with pytest.raises(RateLimited):
            await limits.hit({a: None, b: None, c: "z"})
        # Another identifier has its own allowance; an off limit (empty rate) counts nothing.
        off = FixedWindowLimits.from_url(redis_url, {a: "", b: "2/minute"})
        try:
            await off.hit({a: "x", b: "other"})
            await off.hit({a: "x", b: "other"})
        finally:
            await off.close()
    finally:
        await single.close()
        await limits.close()


async def test_fixed_window_limits_without_redis_are_not_applied(caplog: pytest.LogCaptureFixture) -> None:
    limits = FixedWindowLimits.from_url("redis://127.0.0.1:1/0", {"sign-ip": "1/minute"})
    try:
        for _ in range(3):
            await limits.hit({"sign-ip": "10.0.0.1"})
    finally:
        await limits.close()
    assert "rate limit not applied" in caplog.text
    assert "10.0.0.1" not in caplog.text
