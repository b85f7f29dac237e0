"""The worker's periodic loops: work the queue would carry badly — many small items better taken in
batches (new signatures, due webhook deliveries, due email).

``@periodic("name", every=…)`` registers ``fn(ctx: LoopContext)``; every worker process runs each one over
and over (:func:`run_periodic`). A loop owns its transactions: it opens sessions from
``ctx.sessionmaker``, calls the core's per-transaction steps and commits.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.jobs import JobQueue
from services.core.outbox.dispatch import describe_error

log = logging.getLogger(__name__)

# A loop that keeps failing (PostgreSQL unreachable, a database never migrated) waits longer each time, up
# to this, and logs the outage once, then at most once a minute until it recovers.
MIN_FAILURE_DELAY_SECONDS = 0.25
MAX_FAILURE_DELAY_SECONDS = 30.0
REPEAT_LOG_SECONDS = 60.0


@dataclass(frozen=True)
class LoopContext:
    """What a periodic loop gets: a session factory (it manages its own transactions), the settings and
    the queue (whose Redis connection it may also use)."""

    sessionmaker: async_sessionmaker[AsyncSession]
    settings: Settings
    queue: JobQueue


LoopFn = Callable[[LoopContext], Awaitable[Any]]


@dataclass(frozen=True)
class Periodic:
    name: str
    fn: LoopFn
    every: Callable[[Settings], float]  # seconds between the end of one run and the start of the next


PERIODIC: dict[str, Periodic] = {}


def periodic(name: str, *, every: Callable[[Settings], float]) -> Callable[[LoopFn], LoopFn]:
    """Register ``fn(ctx: LoopContext)`` to run in every worker, over and over, ``every(settings)`` seconds
    apart. ``fn`` must be safe to run in several workers at once (take a lock, or ``SKIP LOCKED``)."""

    def register(fn: LoopFn) -> LoopFn:
        existing = PERIODIC.get(name)
        if existing is not None and existing.fn is not fn:
            raise ValueError(f"periodic task {name!r} registered twice")
        PERIODIC[name] = Periodic(name, fn, every)
        return fn

    return register


class Outage:
    """The failures in a row of one loop: how long to wait before the next run, and what to log.

    The delay doubles from the loop's interval up to :data:`MAX_FAILURE_DELAY_SECONDS` (jittered to
    50 to 100 %) and is the interval again after a success. The first failure is an ERROR, repeats are a
    WARNING at most every :data:`REPEAT_LOG_SECONDS`, and the first success after failures is an INFO,
    so an unreachable database costs a few lines a minute, not several a second."""

    def __init__(self, name: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.failures = 0
        self._clock = clock
        self._logged_at = 0.0
        self._unlogged = 0

    def failed(self, exc: BaseException, interval: float) -> float:
        """Log ``exc`` (without its message if it is a database error) as needed; the delay to wait."""
        self.failures += 1
        now = self._clock()
        error = describe_error(exc)
        if self.failures == 1:
            log.error("loop %s failed: %s", self.name, error)
            self._logged_at, self._unlogged = now, 0
        elif now - self._logged_at >= REPEAT_LOG_SECONDS:
            log.warning(
                "loop %s still failing (%d failures in a row, %d not logged): %s",
                self.name,
                self.failures,
                self._unlogged,
                error,
            )
            self._logged_at, self._unlogged = now, 0
        else:
            self._unlogged += 1
        first = max(interval, MIN_FAILURE_DELAY_SECONDS)
        delay: float = min(MAX_FAILURE_DELAY_SECONDS, first * 2.0 ** min(self.failures - 1, 30))
        return delay * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not a secret)

    def succeeded(self) -> None:
        if self.failures:
            log.info("loop %s recovered after %d failures in a row", self.name, self.failures)
            self.failures = 0


async def run_periodic(job: Periodic, ctx: LoopContext) -> None:
    """Run a periodic task forever, ``job.every`` seconds apart; while it fails, it backs off and says so
    without flooding the log (:class:`Outage`)."""
    outage = Outage(job.name)
    while True:
        interval = job.every(ctx.settings)
        try:
            await job.fn(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await asyncio.sleep(outage.failed(exc, interval))
            continue
        outage.succeeded()
        await asyncio.sleep(interval)
