"""The relay: publishes what the request path left behind, and what the queue lost.

Every ``outbox_relay_seconds`` each worker runs :func:`relay_once`, each kind of job in a transaction of its
own (statements in ``services.core.outbox.relay``); re-publishing is always harmless. Once an hour it also
deletes old completed jobs. docs/architecture.md, "The outbox".
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.jobs import JobQueue
from services.core.outbox import relay
from services.core.outbox.relay import ClaimedJob
from services.worker.periodic import Outage

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 3600


@dataclass(frozen=True)
class RelayResult:
    published: int  # never published before
    republished: int  # published long ago, still open
    lost: int  # of the republished, how many the queue no longer had
    queue_down: bool  # stopped early because the queue was unreachable


async def relay_once(
    sessionmaker: async_sessionmaker[AsyncSession], queue: JobQueue, settings: Settings
) -> RelayResult:
    """One relay pass: at most ``outbox_relay_batch`` jobs of each kind."""
    published, _, down = await _publish_claimed(sessionmaker, queue, settings, relay.claim_unpublished)
    if down:
        return RelayResult(len(published), 0, 0, True)
    republished, lost, down = await _publish_claimed(sessionmaker, queue, settings, relay.claim_stale)
    if lost:
        log.warning("re-published outbox jobs the queue had lost", extra={"jobs": lost})
    if published:
        log.info("relay published outbox jobs", extra={"jobs": len(published)})
    return RelayResult(len(published), len(republished), lost, down)


async def _publish_claimed(
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: JobQueue,
    settings: Settings,
    claim: Callable[[AsyncSession, Settings], Awaitable[list[ClaimedJob]]],
) -> tuple[list[uuid.UUID], int, bool]:
    """Lock the rows ``claim`` selects, publish them, mark them published, commit. Returns the ids
    published, how many were new to the queue, and whether the queue was unreachable."""
    done: list[uuid.UUID] = []
    new = 0
    down = False
    async with sessionmaker.begin() as session:
        for job_id, task, payload in await claim(session, settings):
            try:
                if await queue.publish(job_id, task, payload):
                    new += 1
            except Exception as exc:
                log.warning("relay could not reach the queue", extra={"error": type(exc).__name__})
                down = True
                break
            done.append(job_id)
        await relay.mark_relayed(session, done)
    return done, new, down


async def relay_forever(
    sessionmaker: async_sessionmaker[AsyncSession], queue: JobQueue, settings: Settings
) -> None:
    """The worker's background loop. A full batch means more may be waiting, so it goes again at once;
    while it fails (the database unreachable) it backs off and says so once (:class:`Outage`)."""
    outage = Outage("outbox.relay")
    last_purge = 0.0
    while True:
        try:
            result = await relay_once(sessionmaker, queue, settings)
            full = not result.queue_down and max(result.published, result.republished) >= (
                settings.outbox_relay_batch
            )
            if time.monotonic() - last_purge > PURGE_EVERY_SECONDS:
                async with sessionmaker.begin() as session:
                    purged = await relay.purge_completed(
                        session, timedelta(days=settings.outbox_retention_days)
                    )
                last_purge = time.monotonic()
                if purged:
                    log.info("purged completed outbox jobs", extra={"jobs": purged})
        except Exception as exc:
            await asyncio.sleep(outage.failed(exc, settings.outbox_relay_seconds))
            continue
        outage.succeeded()
        await asyncio.sleep(0 if full else settings.outbox_relay_seconds)
