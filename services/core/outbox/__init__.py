"""The outbox: ``enqueue`` writes a job in the caller's transaction; after commit it is published.

The queue itself (arq) is known only to ``services.core.jobs``.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.outbox.models import OutboxJob

if TYPE_CHECKING:
    from services.core.jobs import JobQueue

log = logging.getLogger(__name__)

_PENDING_KEY = "loom.outbox.pending"


def enqueue(session: AsyncSession, task: str, **ids: Any) -> uuid.UUID:
    """Record a job to run ``task(**ids)`` once the caller's transaction commits."""
    job = OutboxJob(id=uuid.uuid4(), task=task, payload=ids)
    session.add(job)
    session.info.setdefault(_PENDING_KEY, []).append(job)
    return job.id


async def publish_after_commit(session: AsyncSession, queue: JobQueue | None) -> None:
    """Publish the jobs this (now committed) session enqueued. Failures are left to the relay."""
    pending: list[OutboxJob] = session.info.pop(_PENDING_KEY, [])
    if not pending or queue is None:
        return
    published: list[uuid.UUID] = []
    for job in pending:
        try:
            await queue.publish(job.id, job.task, job.payload)
        except Exception:  # Redis down: the relay publishes it later
            log.warning("outbox publish failed; the relay will retry", extra={"job_id": str(job.id)})
            break
        published.append(job.id)
    if published:
        try:
            await session.execute(
                update(OutboxJob).where(OutboxJob.id.in_(published)).values(published_at=_now())
            )
            await session.commit()
        except Exception:
            await session.rollback()
            log.warning("could not mark outbox jobs published; the relay will re-publish them")


def discard_pending(session: AsyncSession) -> None:
    session.info.pop(_PENDING_KEY, None)


def _now() -> Any:
    from sqlalchemy import func

    return func.now()
