"""The outbox: ``enqueue`` writes a job in the caller's transaction; after commit it is published.

``enqueue(session, "domain.task", some_id=…)`` adds an ``outbox_jobs`` row (gone if the transaction rolls
back); whoever committed calls ``publish_pending`` (job id = outbox id) then ``mark_published``. Jobs the
queue could not take wait for the worker's relay. docs/architecture.md, "The outbox".
"""

from __future__ import annotations

import logging
import uuid
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


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back_jobs(session: Session, previous_transaction: SessionTransaction) -> None:
    """A rolled-back unit of work takes its jobs with it (a savepoint rollback does not)."""
    if previous_transaction.parent is None and not previous_transaction.nested:
        session.info.pop(_PENDING_KEY, None)


async def publish_pending(session: AsyncSession, queue: JobQueue | None) -> list[uuid.UUID]:
    """Publish the jobs this session enqueued, once its transaction has committed; returns the ids
    published, for :func:`mark_published`.

    Never raises: a job that could not be published is left to the relay (with the ones after it), and
    publishing twice is harmless.
    """
    jobs: list[tuple[uuid.UUID, str, dict[str, Any]]] = session.info.pop(_PENDING_KEY, [])
    if not jobs or queue is None:
        return []
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
    return published


async def mark_published(session: AsyncSession, job_ids: list[uuid.UUID]) -> None:
    """Mark these jobs published, in the caller's transaction (a second, small one after the commit that
    wrote them), so the relay leaves them alone. Skips rows a worker has already locked (it marks them
    itself when it claims them), so a request never waits for a running task."""
    if not job_ids:
        return
    lockable = (
        select(OutboxJob.id)
        .where(OutboxJob.id.in_(job_ids), OutboxJob.published_at.is_(None))
        .with_for_update(skip_locked=True)
    )
    await session.execute(
        update(OutboxJob)
        .where(OutboxJob.id.in_(lockable))
        .values(published_at=func.now())
        .execution_options(synchronize_session=False)
    )
