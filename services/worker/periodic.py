"""The worker's periodic loops: work the queue would carry badly — many small items better taken in
batches (new signatures, due webhook deliveries, due email).

``@periodic("name", every=…)`` registers ``fn(ctx: LoopContext)``; every worker process runs each one over
and over (:func:`run_periodic`). A loop owns its transactions: it opens sessions from
``ctx.sessionmaker``, calls the core's per-transaction steps and commits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.jobs import JobQueue
from services.core.outbox.dispatch import describe_error

log = logging.getLogger(__name__)


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


async def run_periodic(job: Periodic, ctx: LoopContext) -> None:
    """Run a periodic task forever; a failed run is logged (without its message, which may quote
    personal data) and the next one comes as usual."""
    while True:
        try:
            await job.fn(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("periodic task %s failed: %s", job.name, describe_error(exc))
        await asyncio.sleep(job.every(ctx.settings))
