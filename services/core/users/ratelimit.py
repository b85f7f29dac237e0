"""Rate limits counted in Redis with the ``limits`` library: logins (moving window, per email *and* client
address, hashed) and public signing (fixed windows, cheaper on a hot path).

Redis down: the limit is not applied, a warning is logged, and for a few seconds the limiter does not
even try. docs/security.md, "Rate limits".
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from typing import Any

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from limits.aio.strategies import RateLimiter as Strategy
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

    def __init__(
        self,
        pool: ConnectionPool,
        rate: str,
        *,
        namespace: str,
        moving_window: bool = True,
        unavailable_for: float = 5.0,
    ) -> None:
        self._pool = pool
        # An empty rate turns the limit off.
        self._items = parse_rate(rate) if rate.strip() else []
        self._namespace = namespace
        self._unavailable_for = unavailable_for
        self._down_until = 0.0
        options: dict[str, Any] = {"connection_pool": pool}
        storage = RedisStorage(
            "async+redis://", wrap_exceptions=True, implementation="redispy", key_prefix=KEY_PREFIX, **options
        )
        self._limiter: Strategy = (
            MovingWindowRateLimiter(storage) if moving_window else FixedWindowRateLimiter(storage)
        )

    @classmethod
    def from_url(
        cls, redis_url: str, rate: str, *, namespace: str, moving_window: bool = True
    ) -> RateLimiter:
        pool = ConnectionPool.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
        return cls(pool, rate, namespace=namespace, moving_window=moving_window)

    @property
    def enabled(self) -> bool:
        return bool(self._items)

    def _key(self, identifiers: tuple[str, ...]) -> str:
        digest = hashlib.sha256("\x00".join(identifiers).encode()).hexdigest()[:40]
        return f"{self._namespace}:{digest}"

    async def hit(self, *identifiers: str) -> None:
        """Counts one attempt; raises ``RateLimited`` (with ``retry_after`` seconds) over the limit."""
        if not self._items or time.monotonic() < self._down_until:
            return
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
            self._down_until = time.monotonic() + self._unavailable_for
            log.warning("rate limit not applied: Redis unavailable (%s)", type(exc.storage_error).__name__)

    async def close(self) -> None:
        await self._pool.disconnect()
