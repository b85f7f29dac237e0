"""The login rate limit, counted in Redis with the ``limits`` library (moving window).

Attempts are counted per email *and* client address, so one attacker cannot lock a user out from
everywhere, and keys hold a hash rather than the email or the address. When Redis cannot be reached the
limit is not applied (logins keep working; argon2 still makes each guess slow) and a warning is logged.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool

from services.core.errors import RateLimited

log = logging.getLogger(__name__)

KEY_PREFIX = "loom:ratelimit"


def parse_rate(rate: str) -> list[RateLimitItem]:
    """``"10/minute"``, ``"5 per second; 100/hour"``... (``ValueError`` if it is not a rate)."""
    return parse_many(rate)


class RateLimiter:
    """Applies one rate (possibly several windows) to any number of callers, named by identifiers."""

    def __init__(self, pool: ConnectionPool, rate: str, *, namespace: str) -> None:
        self._pool = pool
        self._items = parse_rate(rate)
        self._namespace = namespace
        options: dict[str, Any] = {"connection_pool": pool}
        storage = RedisStorage(
            "async+redis://", wrap_exceptions=True, implementation="redispy", key_prefix=KEY_PREFIX, **options
        )
        self._limiter = MovingWindowRateLimiter(storage)

    @classmethod
    def from_url(cls, redis_url: str, rate: str, *, namespace: str) -> RateLimiter:
        pool = ConnectionPool.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
        return cls(pool, rate, namespace=namespace)

    def _key(self, identifiers: tuple[str, ...]) -> str:
        digest = hashlib.sha256("\x00".join(identifiers).encode()).hexdigest()[:40]
        return f"{self._namespace}:{digest}"

    async def hit(self, *identifiers: str) -> None:
        """Counts one attempt; raises ``RateLimited`` (with ``retry_after`` seconds) over the limit."""
        key = self._key(identifiers)
        try:
            for item in self._items:
                if not await self._limiter.hit(item, key):
                    stats = await self._limiter.get_window_stats(item, key)
                    retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                    raise RateLimited(
                        f"Too many attempts; try again in {retry_after} seconds.", retry_after=retry_after
                    )
        except StorageError as exc:
            log.warning("rate limit not applied: Redis unavailable (%s)", type(exc.storage_error).__name__)

    async def reset(self, *identifiers: str) -> None:
        key = self._key(identifiers)
        for item in self._items:
            await self._limiter.clear(item, key)

    async def close(self) -> None:
        await self._pool.disconnect()
