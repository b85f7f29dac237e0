"""The worker's signature pipeline: deduplicate new signatures in batches, then refresh public counts.

:func:`run_once` takes batches (each its own transaction, one worker at a time under an advisory lock)
until none is new or the tick's budget is spent, then recounts the touched and requested petitions under
a lock of its own, caches the counts and records new milestones. docs/signatures.md.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.jobs import JobQueue
from services.core.milestones import service as milestones
from services.core.milestones.service import Milestone
from services.core.signatures import counts, recount
from services.core.signatures.pipeline import process_batch
from services.worker.outbox.publish import publish_after_commit


@dataclass
class TickResult:
    processed: int = 0
    duplicates: int = 0
    reviews: int = 0
    batches: int = 0
    backlog: bool = False  # stopped by the time budget with new signatures still waiting
    refreshed: set[uuid.UUID] = field(default_factory=set)
    milestones: list[Milestone] = field(default_factory=list)  # reached for the first time this tick


async def run_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    queue: JobQueue,
    settings: Settings,
    *,
    budget_seconds: float | None = None,
) -> TickResult:
    """One tick: batches until nothing is new (or the budget is spent), then the counts they changed."""
    tick = TickResult()
    budget = settings.signature_pipeline_budget_seconds if budget_seconds is None else budget_seconds
    started = time.monotonic()
    touched: set[uuid.UUID] = set()
    while True:
        async with sessionmaker() as session:
            batch = await process_batch(session, limit=settings.signature_batch_size)
            await session.commit()
            await publish_after_commit(session, queue)
        if batch.locked_out:
            return tick
        tick.batches += 1 if batch.processed else 0
        tick.processed += batch.processed
        tick.duplicates += batch.duplicates
        tick.reviews += batch.reviews
        touched |= batch.petitions
        if batch.processed < settings.signature_batch_size:
            break
        if time.monotonic() - started > budget:
            tick.backlog = True  # more is waiting: the caller runs the next tick at once
            break
    async with sessionmaker.begin() as session:
        touched |= await recount.take_requests(session)
        if touched:
            fresh = await counts.compute(session, touched)
            # Milestones first crossed by these counts: recorded once, ever, with the coordinators' mail
            # and the `petition.milestone_reached` webhook event, in this transaction.
            tick.milestones = await milestones.detect(session, settings, fresh)
            await counts.store(queue.redis, fresh, settings)
    tick.refreshed = touched
    return tick
