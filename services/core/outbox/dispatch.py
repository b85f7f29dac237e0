"""Running one outbox job: exactly-once *effects* on top of the queue's at-least-once delivery.

:func:`claim` marks the job completed and locks its row in one statement; :func:`run` runs the task in that
transaction, which the worker (``services.worker.outbox.dispatch``) commits; :func:`judge` decides between a
jittered retry and failing for good. docs/architecture.md, "The outbox".
"""

from __future__ import annotations

import asyncio
import random
import smtplib
import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.exceptions
import sqlalchemy.exc
from sqlalchemy import Integer, String, Uuid, bindparam, func, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.outbox.models import OutboxJob
from services.core.outbox.registry import REGISTRY, JobContext, Retry

if TYPE_CHECKING:
    from services.core.config import Settings

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


@dataclass(frozen=True)
class Claimed:
    task: str
    payload: dict[str, Any]
    attempt: int  # this attempt's number (1 for the first)


async def claim(session: AsyncSession, job_id: uuid.UUID, delivery: int) -> Claimed | None:
    """Mark job ``job_id`` completed and lock its row, in the caller's transaction; None when there is
    nothing to run. ``delivery`` is the queue's try counter for this job, used to count attempts that
    died without recording anything (a worker killed mid-job)."""
    row = (await session.execute(_CLAIM, {"job_id": job_id, "delivery": delivery})).one_or_none()
    return None if row is None else Claimed(row.task, row.payload, row.attempts)


async def run(session: AsyncSession, settings: Settings, job_id: uuid.UUID, claimed: Claimed) -> None:
    """Run the claimed job's task in the caller's transaction, within the task's timeout."""
    registered = REGISTRY.get(claimed.task)
    if registered is None:
        raise UnknownTask(f"no task named {claimed.task!r} in this worker")
    arguments = registered.arguments(claimed.payload)
    ctx = JobContext(session, settings, job_id, claimed.attempt)
    async with asyncio.timeout(registered.timeout or settings.worker_job_timeout):
        await registered.fn(ctx, **arguments)


@dataclass(frozen=True)
class Failure:
    """What a failed attempt means: its description (for ``last_error`` and logs), whether it was
    transient, whether the job is given up, and when to try again if not."""

    error: str
    transient: bool
    give_up: bool
    retry_in: float | None


def judge(exc: BaseException, *, attempt: int, task: str | None, settings: Settings) -> Failure:
    """Decide what failed ``attempt`` of a job of ``task`` (None: not known yet) means."""
    transient = is_transient(exc)
    registered = REGISTRY.get(task) if task is not None else None
    max_tries = (registered.max_tries if registered else None) or settings.worker_max_tries
    give_up = not transient or attempt >= max_tries
    retry_in: float | None = None
    if not give_up:
        if isinstance(exc, Retry) and exc.defer is not None:
            retry_in = exc.defer
        else:
            retry_in = backoff(
                attempt, base=settings.worker_retry_base_seconds, cap=settings.worker_retry_max_seconds
            )
    return Failure(describe_error(exc), transient, give_up, retry_in)


async def record_failure(session: AsyncSession, job_id: uuid.UUID, failure: Failure, attempt: int) -> None:
    """Record a failed attempt (and, when given up, the failure) in the caller's transaction."""
    await session.execute(
        update(OutboxJob)
        .where(OutboxJob.id == job_id, OutboxJob.completed_at.is_(None))
        .values(
            attempts=func.greatest(OutboxJob.attempts + 1, attempt),
            last_error=failure.error,
            failed_at=func.now() if failure.give_up else None,
            published_at=func.coalesce(OutboxJob.published_at, func.now()),
        )
        .execution_options(synchronize_session=False)
    )
