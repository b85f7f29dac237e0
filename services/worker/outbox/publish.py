"""Publishing the jobs a worker transaction enqueued, once it has committed."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from services.core import outbox
from services.core.jobs import JobQueue

log = logging.getLogger(__name__)


async def publish_after_commit(session: AsyncSession, queue: JobQueue | None) -> None:
    """Publish the jobs this (now committed) session enqueued, then mark them published in a second,
    small transaction. Never raises: a job that could not be published or marked is left to the relay,
    and publishing twice is harmless."""
    published = await outbox.publish_pending(session, queue)
    if not published:
        return
    try:
        await outbox.mark_published(session, published)
        await session.commit()
    except Exception as exc:
        await session.rollback()
        log.warning(
            "could not mark outbox jobs published; the relay will re-publish them",
            extra={"error": type(exc).__name__, "jobs": len(published)},
        )
