"""Running one outbox job: exactly-once *effects* on top of the queue's at-least-once delivery.

One ``UPDATE … SET completed_at = now() … WHERE completed_at IS NULL … RETURNING`` claims the job and
locks its row; no row back (the enqueuing transaction rolled back, the row was purged, the job is
completed or failed) means there is nothing to do. The registered task then runs in the same transaction,
which commits: the task's database effects and the completion mark land together (or not at all), and a
second delivery, waiting on the row lock, finds the job completed. One statement instead of
``SELECT … FOR UPDATE`` + ``UPDATE`` saves a round trip per job.

A failure rolls that transaction back and is recorded (``attempts``, ``last_error``) in a separate one.
Transient failures (connection errors, timeouts, deadlocks, serialization failures, :class:`Retry`) are
tried again after a jittered exponential backoff, up to ``max_tries``; anything else fails the job for good
(``failed_at``). The queue adapter turns the returned :class:`Outcome` into its own retry mechanism.
"""

from __future__ import annotations

import asyncio
import logging
import random
import smtplib
import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import redis.exceptions
import sqlalchemy.exc
from sqlalchemy import Integer, String, Uuid, bindparam, func, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.outbox import publish_after_commit
from services.core.outbox.models import OutboxJob
from services.core.outbox.registry import REGISTRY, JobContext, Retry, Task

if TYPE_CHECKING:
    from services.core.config import Settings
    from services.core.jobs import JobQueue

log = logging.getLogger(__name__)

# PostgreSQL SQLSTATE classes / codes worth retrying: connection exceptions, transaction rollbacks
# (serialization failures, deadlocks), insufficient resources, operator intervention (shutdown),
# lock not available.
_TRANSIENT_SQLSTATE_CLASSES = {"08", "40", "53", "57"}
_TRANSIENT_SQLSTATES = {"55P03"}
_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    Retry,
    ConnectionError,
    TimeoutError,
    socket.gaierror,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,  # connection pool exhausted
    smtplib.SMTPConnectError,
    smtplib.SMTPServerDisconnected,
)


# Claims a job: marks it completed and locks its row. Plain SQL, built once: the ORM equivalent spends
# more time building and caching the statement than the database spends running it.
_CLAIM = (
    text(
        "UPDATE outbox_jobs SET completed_at = now(), published_at = coalesce(published_at, now()), "
        "attempts = greatest(attempts + 1, :delivery) "
        "WHERE id = :job_id AND completed_at IS NULL AND failed_at IS NULL "
        "RETURNING task, payload, attempts"
    )
    .bindparams(bindparam("job_id", type_=Uuid()), bindparam("delivery", type_=Integer()))
    .columns(task=String(), payload=JSONB(), attempts=Integer())
)


class UnknownTask(Exception):
    """The worker has no task of that name (yet): probably an API deployed ahead of its workers."""


@dataclass(frozen=True)
class Outcome:
    status: Literal["completed", "skipped", "retry", "failed"]
    retry_in: float | None = None  # seconds, for "retry"


COMPLETED = Outcome("completed")
SKIPPED = Outcome("skipped")
FAILED = Outcome("failed")


def is_transient(exc: BaseException) -> bool:
    """Whether trying again later may succeed (looks through ``raise … from`` chains)."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if isinstance(current, (*_TRANSIENT_TYPES, UnknownTask)):
            return True
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, smtplib.SMTPResponseException) and 400 <= current.smtp_code < 500:
            return True
        orig = current.orig if isinstance(current, sqlalchemy.exc.DBAPIError) else None
        sqlstate = _sqlstate(orig) if orig is not None else _sqlstate(current)
        if sqlstate and (sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES or sqlstate in _TRANSIENT_SQLSTATES):
            return True
        current = current.__cause__
        seen += 1
    return False


def backoff(attempt: int, *, base: float, cap: float) -> float:
    """Seconds to wait after failed ``attempt`` (1-based): ``base * 2**(attempt-1)`` capped at ``cap``,
    jittered to 50-100 % so jobs that failed together don't all come back together."""
    delay = min(cap, base * float(2 ** min(max(0, attempt - 1), 62)))  # no float overflow, however many
    return delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography


def describe_error(exc: BaseException) -> str:
    """A short description for ``last_error`` and logs. Database errors are reduced to their class and
    SQLSTATE, because their messages quote row values (which may be personal data)."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        orig = exc.orig
        name = type(orig).__name__ if orig is not None else type(exc).__name__
        sqlstate = _sqlstate(orig) if orig is not None else None
        return f"{type(exc).__name__}({name}) [{sqlstate or '?'}]"
    if isinstance(exc, TimeoutError) and not str(exc):
        return "TimeoutError: the task took too long"
    return f"{type(exc).__name__}: {exc}"[:500]


def _sqlstate(exc: BaseException) -> str | None:
    value = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return value if isinstance(value, str) else None


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
    registered: Task | None = None
    try:
        async with sessionmaker() as session:
            # Claim: mark the job completed and lock its row in one statement. The task runs in this
            # transaction, so if it fails the mark rolls back with its effects; a concurrent delivery
            # waits on the lock, then finds the job completed (or, after a rollback, runs it itself).
            claimed = (await session.execute(_CLAIM, {"job_id": job_id, "delivery": delivery})).one_or_none()
            if claimed is None:  # rolled back (never existed), purged, completed or failed
                await session.rollback()
                return SKIPPED
            attempt = claimed.attempts
            task_name = claimed.task
            registered = REGISTRY.get(task_name)
            if registered is None:
                raise UnknownTask(f"no task named {claimed.task!r} in this worker")
            arguments = registered.arguments(claimed.payload)
            ctx = JobContext(session, settings, queue, job_id, attempt)
            timeout = registered.timeout or settings.worker_job_timeout
            async with asyncio.timeout(timeout):
                await registered.fn(ctx, **arguments)
            await session.commit()
            # follow-up jobs the task enqueued
            await publish_after_commit(session, queue)
        return COMPLETED
    except Exception as exc:
        return await _failed(sessionmaker, job_id, exc, attempt, task_name, registered, settings)


async def _failed(
    sessionmaker: async_sessionmaker[AsyncSession],
    job_id: uuid.UUID,
    exc: Exception,
    attempt: int,
    task_name: str | None,
    registered: Task | None,
    settings: Settings,
) -> Outcome:
    transient = is_transient(exc)
    max_tries = (registered.max_tries if registered else None) or settings.worker_max_tries
    give_up = not transient or attempt >= max_tries
    error = describe_error(exc)
    extra = {"job_id": str(job_id), "task": task_name, "attempt": attempt, "error": error}
    try:
        async with sessionmaker() as session:
            await session.execute(
                update(OutboxJob)
                .where(OutboxJob.id == job_id, OutboxJob.completed_at.is_(None))
                .values(
                    attempts=func.greatest(OutboxJob.attempts + 1, attempt),
                    last_error=error,
                    failed_at=func.now() if give_up else None,
                    published_at=func.coalesce(OutboxJob.published_at, func.now()),
                )
                .execution_options(synchronize_session=False)
            )
            await session.commit()
    except Exception as record_exc:
        # The database is probably down: let the queue try again; the attempt is counted by its delivery
        # counter next time.
        log.warning(
            "could not record a job failure; retrying",
            extra={**extra, "record_error": describe_error(record_exc)},
        )
        return Outcome("retry", backoff(attempt, base=settings.worker_retry_base_seconds, cap=60.0))
    if give_up:
        if transient:
            log.error("job failed %d times; giving up", attempt, extra=extra)
        else:
            log.error("job failed permanently", extra=extra, exc_info=exc)
        return FAILED
    if isinstance(exc, Retry) and exc.defer is not None:
        delay = exc.defer
    else:
        delay = backoff(
            attempt, base=settings.worker_retry_base_seconds, cap=settings.worker_retry_max_seconds
        )
    log.warning("job failed; retrying in %.1fs", delay, extra=extra)
    return Outcome("retry", delay)
