"""The outbox: ``enqueue`` writes a job in the caller's transaction; after commit it is published.

- ``enqueue(session, "domain.task", some_id=…)`` adds an ``outbox_jobs`` row to the session. If the
  transaction rolls back, the job never existed.
- ``publish_after_commit(session, queue)`` (called by the API's route class after the request's commit,
  and by the worker after a task's commit) puts those jobs on the queue with job id = outbox id and marks
  them published. If the queue is unreachable it gives up quietly: the relay
  (``services.core.outbox.relay``) publishes whatever is left unpublished.
- ``backlog(session)`` counts jobs by state, for metrics.

The queue itself (arq) is known only to ``services.core.jobs``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic_core import to_jsonable_python
from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from services.core.outbox.models import OutboxJob
from services.core.outbox.registry import REGISTRY

if TYPE_CHECKING:
    from services.core.jobs import JobQueue

log = logging.getLogger(__name__)

_PENDING_KEY = "loom.outbox.pending"


def enqueue(session: AsyncSession, task: str, **ids: Any) -> uuid.UUID:
    """Record a job to run ``task(**ids)`` once the caller's transaction commits; returns its id.

    Pass ids (UUIDs, ints, strings, lists of them), never objects: the task loads what it needs, so a
    retry sees current data. When the task is registered in this process the ids are checked against
    its signature now.
    """
    payload = to_jsonable_python(ids)
    registered = REGISTRY.get(task)
    if registered is not None:
        registered.params.model_validate(payload)  # raises ValueError (ValidationError) on bad ids
    job = OutboxJob(id=uuid.uuid4(), task=task, payload=payload)
    session.add(job)
    session.info.setdefault(_PENDING_KEY, []).append((job.id, task, payload))
    return job.id


def pending(session: AsyncSession) -> list[uuid.UUID]:
    """Ids of the jobs enqueued in this session and not yet handed to ``publish_after_commit``."""
    return [job_id for job_id, _, _ in session.info.get(_PENDING_KEY, [])]


def discard_pending(session: AsyncSession) -> None:
    session.info.pop(_PENDING_KEY, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back_jobs(session: Session, previous_transaction: SessionTransaction) -> None:
    """A rolled-back unit of work takes its jobs with it (a savepoint rollback does not)."""
    if previous_transaction.parent is None and not previous_transaction.nested:
        session.info.pop(_PENDING_KEY, None)


async def publish_after_commit(
    session: AsyncSession, queue: JobQueue | None, *, mark_published: bool = True
) -> None:
    """Publish the jobs this (now committed) session enqueued, then mark them published.

    Never raises: a job that could not be published or marked is left to the relay, and publishing
    twice is harmless. Marking skips rows a worker has already locked (it marks them itself), so a
    request never waits for a running task.

    Marking costs a second, small transaction. A hot path may skip it (``mark_published=False``): the
    worker marks a job published when it claims it, and the relay re-publishes (a no-op on the queue)
    and marks the few still waiting after ``outbox_publish_grace_seconds``.
    """
    jobs: list[tuple[uuid.UUID, str, dict[str, Any]]] = session.info.pop(_PENDING_KEY, [])
    if not jobs or queue is None:
        return
    published: list[uuid.UUID] = []
    for job_id, task, payload in jobs:
        try:
            await queue.publish(job_id, task, payload)
        except Exception as exc:  # Redis down: the relay publishes it (and the rest) later
            log.warning(
                "outbox publish failed; the relay will publish it",
                extra={"job_id": str(job_id), "error": type(exc).__name__},
            )
            break
        published.append(job_id)
    if not published or not mark_published:
        return
    try:
        lockable = (
            select(OutboxJob.id)
            .where(OutboxJob.id.in_(published), OutboxJob.published_at.is_(None))
            .with_for_update(skip_locked=True)
        )
        await session.execute(
            update(OutboxJob)
            .where(OutboxJob.id.in_(lockable))
            .values(published_at=func.now())
            .execution_options(synchronize_session=False)
        )
        await session.commit()
    except Exception as exc:
        await session.rollback()
        log.warning(
            "could not mark outbox jobs published; the relay will re-publish them",
            extra={"error": type(exc).__name__, "jobs": len(published)},
        )


@dataclass(frozen=True)
class Backlog:
    """Outbox jobs by state, for metrics and alerts."""

    unpublished: int  # written, not yet on the queue
    open: int  # on the queue (or retrying), not yet completed
    failed: int  # gave up; kept for inspection
    oldest_unpublished_seconds: float  # 0 when none

    @property
    def uncompleted(self) -> int:
        return self.unpublished + self.open


async def backlog(session: AsyncSession) -> Backlog:
    """Count outbox jobs that are not completed. Uses the partial indexes, so it stays cheap while
    completed jobs pile up."""
    unpublished = (
        select(
            func.count(),
            func.coalesce(func.extract("epoch", func.now() - func.min(OutboxJob.created_at)), 0),
        )
        .where(OutboxJob.published_at.is_(None), OutboxJob.completed_at.is_(None))
        .where(OutboxJob.failed_at.is_(None))
    )
    open_ = select(func.count()).where(
        OutboxJob.published_at.is_not(None),
        OutboxJob.completed_at.is_(None),
        OutboxJob.failed_at.is_(None),
    )
    failed = select(func.count()).where(OutboxJob.failed_at.is_not(None))
    (count_unpublished, oldest) = (await session.execute(unpublished)).one()
    count_open = await session.scalar(open_) or 0
    count_failed = await session.scalar(failed) or 0
    return Backlog(int(count_unpublished), int(count_open), int(count_failed), float(oldest))
