"""What the relay claims and deletes: the statements of the worker's relay (``services.worker.outbox.relay``),
run in its transactions — jobs never published, jobs published long ago and not done, and completed jobs
past retention, claimed with ``FOR UPDATE SKIP LOCKED``. docs/architecture.md, "The outbox".
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.outbox.models import OutboxJob

PURGE_BATCH = 5000

ClaimedJob = tuple[uuid.UUID, str, dict[str, Any]]  # id, task, payload


async def _claim(session: AsyncSession, claim: Select[Any]) -> list[ClaimedJob]:
    return [(row.id, row.task, row.payload) for row in await session.execute(claim)]


async def claim_unpublished(session: AsyncSession, settings: Settings) -> list[ClaimedJob]:
    """Lock up to ``outbox_relay_batch`` jobs never published, oldest first, past the publish grace."""
    grace = timedelta(seconds=settings.outbox_publish_grace_seconds)
    return await _claim(
        session,
        select(OutboxJob.id, OutboxJob.task, OutboxJob.payload)
        .where(
            OutboxJob.published_at.is_(None),
            OutboxJob.completed_at.is_(None),
            OutboxJob.failed_at.is_(None),
            OutboxJob.created_at < func.now() - grace,
        )
        .order_by(OutboxJob.created_at)
        .limit(settings.outbox_relay_batch)
        .with_for_update(skip_locked=True),
    )


async def claim_stale(session: AsyncSession, settings: Settings) -> list[ClaimedJob]:
    """Lock up to ``outbox_relay_batch`` jobs published long ago and still open, oldest first."""
    stale = timedelta(seconds=settings.outbox_republish_after_seconds)
    return await _claim(
        session,
        select(OutboxJob.id, OutboxJob.task, OutboxJob.payload)
        .where(
            OutboxJob.completed_at.is_(None),
            OutboxJob.failed_at.is_(None),
            OutboxJob.published_at < func.now() - stale,
        )
        .order_by(OutboxJob.published_at)
        .limit(settings.outbox_relay_batch)
        .with_for_update(skip_locked=True),
    )


async def mark_relayed(session: AsyncSession, job_ids: list[uuid.UUID]) -> None:
    """Mark claimed jobs published now (again, for stale ones: the next re-publish is a full period away)."""
    if job_ids:
        await session.execute(
            update(OutboxJob)
            .where(OutboxJob.id.in_(job_ids))
            .values(published_at=func.now())
            .execution_options(synchronize_session=False)
        )


async def purge_completed(session: AsyncSession, older_than: timedelta, limit: int = PURGE_BATCH) -> int:
    """Delete up to ``limit`` jobs completed more than ``older_than`` ago; returns how many."""
    old = (
        select(OutboxJob.id)
        .where(OutboxJob.completed_at < func.now() - older_than)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(OutboxJob).where(OutboxJob.id.in_(old)).execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
