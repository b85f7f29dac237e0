"""Running one outbox job in the worker: the transactions around the core's steps
(``services.core.outbox.dispatch``).

The claim and the task share one transaction, committed here: the task's effects and the completion mark
land together. A failure rolls it back and is recorded in a transaction of its own. The returned
:class:`Outcome` is what the queue adapter (``services.worker.runtime``) turns into arq's retry.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.jobs import JobQueue
from services.core.outbox import dispatch
from services.worker.outbox.publish import publish_after_commit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: Literal["completed", "skipped", "retry", "failed"]
    retry_in: float | None = None  # seconds, for "retry"


COMPLETED = Outcome("completed")
SKIPPED = Outcome("skipped")
FAILED = Outcome("failed")


async def run_job(
    sessionmaker: async_sessionmaker[AsyncSession],
    job_id: uuid.UUID,
    *,
    settings: Settings,
    queue: JobQueue,
    delivery: int = 1,
) -> Outcome:
    """Run outbox job ``job_id`` once. ``delivery`` is the queue's try counter for this job, used to
    count attempts that died without recording anything (a worker killed mid-job)."""
    attempt = delivery
    task_name: str | None = None
    try:
        async with sessionmaker() as session:
            # The claim locks the row: a concurrent delivery waits, then finds the job completed (or,
            # after a rollback, runs it itself).
            claimed = await dispatch.claim(session, job_id, delivery)
            if claimed is None:  # rolled back (never existed), purged, completed or failed
                await session.rollback()
                return SKIPPED
            attempt, task_name = claimed.attempt, claimed.task
            await dispatch.run(session, settings, job_id, claimed)
            await session.commit()
            await publish_after_commit(session, queue)  # follow-up jobs the task enqueued
        return COMPLETED
    except Exception as exc:
        return await _failed(sessionmaker, job_id, exc, attempt, task_name, settings)


async def _failed(
    sessionmaker: async_sessionmaker[AsyncSession],
    job_id: uuid.UUID,
    exc: Exception,
    attempt: int,
    task_name: str | None,
    settings: Settings,
) -> Outcome:
    failure = dispatch.judge(exc, attempt=attempt, task=task_name, settings=settings)
    extra = {"job_id": str(job_id), "task": task_name, "attempt": attempt, "error": failure.error}
    try:
        async with sessionmaker.begin() as session:
            await dispatch.record_failure(session, job_id, failure, attempt)
    except Exception as record_exc:
        # The database is probably down: let the queue try again; the attempt is counted by its delivery
        # counter next time.
        log.warning(
            "could not record a job failure; retrying",
            extra={**extra, "record_error": dispatch.describe_error(record_exc)},
        )
        return Outcome("retry", dispatch.backoff(attempt, base=settings.worker_retry_base_seconds, cap=60.0))
    if failure.give_up:
        if failure.transient:
            log.error("job failed %d times; giving up", attempt, extra=extra)
        else:
            log.error("job failed permanently", extra=extra, exc_info=exc)
        return FAILED
    log.warning("job failed; retrying in %.1fs", failure.retry_in, extra=extra)
    return Outcome("retry", failure.retry_in)
