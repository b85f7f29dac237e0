"""Sending rate limits shared by every worker: messages per second overall, and per minute to each recipient
domain, counted in Redis in fixed windows.

A Lua script grants up to a batch in one atomic round trip, so workers never grant more than the limit
between them; over a limit mail waits. With Redis down the limits are not applied (fail open). Keys hold
a hash of the domain. docs/email.md, "Rate limits".
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY_PREFIX = "loom:mail:rate"

# KEYS[1]: the window's counter; ARGV: wanted, limit, seconds to keep the key. Returns the grant.
_TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[1]), math.max(0, tonumber(ARGV[2]) - used))
if grant > 0 then
  redis.call('INCRBY', KEYS[1], grant)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
end
return grant
"""


@dataclass(frozen=True)
class Grant:
    count: int
    window_ends: float  # epoch seconds when the window's count starts again from zero


class SendLimits:
    """``per_second`` messages overall and ``per_domain_minute`` per recipient domain (0: no limit)."""

    def __init__(
        self,
        redis: Redis | None,
        *,
        per_second: int,
        per_domain_minute: int,
        namespace: str = "",
        unavailable_for: float = 5.0,
    ) -> None:
        self._redis = redis
        self.per_second = per_second
        self.per_domain_minute = per_domain_minute
        self._prefix = f"{KEY_PREFIX}:{namespace}" if namespace else KEY_PREFIX
        self._unavailable_for = unavailable_for
        self._down_until = 0.0

    def _usable(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._down_until

    def _down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self._unavailable_for
        log.warning("mail rate limits not applied: Redis unavailable (%s)", type(exc).__name__)

    async def take_global(self, wanted: int) -> Grant:
        """Up to ``wanted`` sends allowed in the current second."""
        now = time.time()
        window = math.floor(now)
        if not self.per_second or wanted <= 0 or not self._usable():
            return Grant(wanted, window + 1.0)
        assert self._redis is not None
        try:
            granted = await self._redis.eval(  # type: ignore[misc]
                _TAKE, 1, f"{self._prefix}:s:{window}", str(wanted), str(self.per_second), "5"
            )
        except (RedisError, OSError) as exc:
            self._down(exc)
            return Grant(wanted, window + 1.0)
        return Grant(int(granted), window + 1.0)

    async def take_domains(self, wanted: Mapping[str, int]) -> dict[str, Grant]:
        """Per recipient domain, up to ``wanted[domain]`` sends allowed in the current minute (one round
        trip for all domains)."""
        now = time.time()
        window = math.floor(now / 60)
        ends = (window + 1) * 60.0
        if not self.per_domain_minute or not wanted or not self._usable():
            return {domain: Grant(count, ends) for domain, count in wanted.items()}
        assert self._redis is not None
        domains = list(wanted)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for domain in domains:
                    digest = hashlib.sha256(domain.encode()).hexdigest()[:24]
                    pipe.eval(
                        _TAKE,
                        1,
                        f"{self._prefix}:d:{digest}:{window}",
                        str(wanted[domain]),
                        str(self.per_domain_minute),
                        "120",
                    )
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._down(exc)
            return {domain: Grant(count, ends) for domain, count in wanted.items()}
        return {domain: Grant(int(granted), ends) for domain, granted in zip(domains, results, strict=True)}
