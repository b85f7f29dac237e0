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
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError

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


# Fixed windows of several limits counted in one round trip: each counter is incremented in turn (its
# window starting at its first hit, as the limits library's fixed window does) until one is over its
# limit; that one's position (1-based) and seconds to go are returned, else 0. Counters after a refusing
# one are not counted, as when the limits are checked one after another.
_HIT_ALL = """
for i, key in ipairs(KEYS) do
    local current = redis.call('incrby', key, 1)
    if current == 1 then
        redis.call('expire', key, ARGV[2 * i - 1])
    end
    if current > tonumber(ARGV[2 * i]) then
        return {i, redis.call('ttl', key)}
    end
end
return 0
"""


class FixedWindowLimits:
    """Several fixed-window rates, each applied to its own identifier, checked and counted in ONE Redis
    round trip (one Lua script) — for a hot path that has several limits (public signing). The counters
    are the same keys the limits library would use for each rate, so switching between the two keeps
    their state. Redis down: no limit is applied, as :class:`RateLimiter` does."""

    def __init__(self, pool: ConnectionPool, rates: dict[str, str], *, unavailable_for: float = 5.0) -> None:
        self._pool = pool
        # Per namespace (in order), each window's counter key around the identifier's digest — the key
        # ``item.key_for(f"{namespace}:{digest}")`` of the limits library, worked out once — with its
        # expiry and limit. An empty rate turns that limit off.
        self._windows: dict[str, list[tuple[str, str, int, int]]] = {
            namespace: [
                (
                    f"{KEY_PREFIX}:{item.namespace}/{namespace}:",
                    f"/{item.amount}/{item.multiples}/{item.GRANULARITY.name}",
                    item.get_expiry(),
                    item.amount,
                )
                for item in (parse_rate(rate) if rate.strip() else [])
            ]
            for namespace, rate in rates.items()
        }
        self._unavailable_for = unavailable_for
        self._down_until = 0.0
        self._script = Redis(connection_pool=pool).register_script(_HIT_ALL)

    @classmethod
    def from_url(cls, redis_url: str, rates: dict[str, str]) -> FixedWindowLimits:
        pool = ConnectionPool.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
        return cls(pool, rates)

    def _counters(self, identifiers: dict[str, str | None]) -> tuple[list[str], list[int]]:
        keys: list[str] = []
        args: list[int] = []
        for namespace, windows in self._windows.items():
            identifier = identifiers.get(namespace)
            if identifier is None or not windows:
                continue
            digest = hashlib.sha256(identifier.encode()).hexdigest()[:40]
            for before, after, expiry, amount in windows:
                keys.append(before + digest + after)
                args += [expiry, amount]
        return keys, args

    async def hit(self, identifiers: dict[str, str | None]) -> None:
        """Counts one attempt against each namespace's rate for its identifier (None: that limit does not
        apply); raises ``RateLimited`` (with ``retry_after`` seconds) at the first one over its limit."""
        if time.monotonic() < self._down_until:
            return
        keys, args = self._counters(identifiers)
        if not keys:
            return
        try:
            refused = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._down_until = time.monotonic() + self._unavailable_for
            log.warning("rate limit not applied: Redis unavailable (%s)", type(exc).__name__)
            return
        if refused:
            retry_after = max(1, int(refused[1]))
            raise RateLimited(
                f"Too many attempts; try again in {retry_after} seconds.", retry_after=retry_after
            )

    async def close(self) -> None:
        await self._pool.disconnect()
