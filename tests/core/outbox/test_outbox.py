"""The outbox without a worker: enqueue in the caller's transaction, publish after commit, the relay's
purge, and the pieces of the dispatcher's retry policy. Real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import smtplib
import time
import uuid
from datetime import timedelta

import pytest
import sqlalchemy.exc
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core import jobs, outbox
from services.core.outbox.dispatch import backoff, describe_error, is_transient
from services.core.outbox.models import OutboxJob
from services.core.outbox.registry import REGISTRY, JobContext, Retry, task
from services.core.outbox.relay import purge_completed
from tests.worker.fixtures import job_row

Factory = async_sessionmaker[AsyncSession]


async def test_enqueue_writes_the_job_in_the_callers_transaction(factory: Factory) -> None:
    async with factory() as session:
        job_id = outbox.enqueue(session, "test.record", key="k")
        await session.flush()
        assert await job_row(factory, job_id) is None  # not visible before commit
        await session.commit()
    row = await job_row(factory, job_id)
    assert row is not None
    assert (row.task, row.payload, row.published_at, row.completed_at) == (
        "test.record",
        {"key": "k"},
        None,
        None,
    )


async def test_a_rolled_back_job_is_neither_stored_nor_published(
    factory: Factory, queue: jobs.JobQueue
) -> None:
    async with factory() as session:
        job_id = outbox.enqueue(session, "test.record", key="k")
        await session.flush()
        await session.rollback()
        assert await outbox.publish_pending(session, queue) == []
    assert await job_row(factory, job_id) is None
    assert await queue.depth() == 0


async def test_a_savepoint_rollback_keeps_the_jobs_enqueued_before_it(
    factory: Factory, queue: jobs.JobQueue
) -> None:
    async with factory() as session:
        kept = outbox.enqueue(session, "test.record", key="kept")
        savepoint = await session.begin_nested()
        outbox.enqueue(session, "test.record", key="dropped")
        await savepoint.rollback()
        await session.commit()
        assert kept in await outbox.publish_pending(session, queue)


async def test_publish_after_commit_publishes_and_marks_published(
    factory: Factory, queue: jobs.JobQueue
) -> None:
    async with factory() as session:
        first = outbox.enqueue(session, "test.record", key="a")
        second = outbox.enqueue(session, "test.record", key="b")
        await session.commit()
        assert await outbox.publish_pending(session, queue) == [first, second]
        assert await outbox.publish_pending(session, queue) == []  # handed over once
        await outbox.mark_published(session, [first, second])
        await session.commit()
    for job_id in (first, second):
        row = await job_row(factory, job_id)
        assert row is not None
        assert row.published_at is not None
    assert await queue.depth() == 2
    # publishing a job that is still queued is a no-op on the queue
    assert await queue.publish(first, "test.record", {"key": "a"}) is False
    assert await queue.depth() == 2
    assert await queue.purge() == 2
    assert await queue.depth() == 0
    # the job ids are free again
    assert await queue.publish(first, "test.record", {"key": "a"}) is True


async def test_marking_published_does_not_wait_for_a_worker_holding_the_row(
    factory: Factory, queue: jobs.JobQueue
) -> None:
    async with factory() as session:
        job_id = outbox.enqueue(session, "test.record", key="k")
        await session.commit()
        async with factory() as worker_session:  # a worker running the job holds the row lock
            await worker_session.execute(select(OutboxJob).where(OutboxJob.id == job_id).with_for_update())
            started = time.monotonic()
            published = await outbox.publish_pending(session, queue)
            await asyncio.wait_for(outbox.mark_published(session, published), timeout=5)
            await session.commit()
            assert time.monotonic() - started < 1
            await worker_session.rollback()
    assert await queue.depth() == 1


async def test_purge_deletes_only_old_completed_jobs(factory: Factory) -> None:
    async with factory() as session:
        old, recent, failed = (outbox.enqueue(session, "test.record", key=k) for k in "abc")
        await session.flush()
        await session.execute(
            update(OutboxJob)
            .where(OutboxJob.id.in_([old, failed]))
            .values(created_at=OutboxJob.created_at - timedelta(days=30))
        )
        await session.execute(
            update(OutboxJob).where(OutboxJob.id.in_([old, recent])).values(completed_at=OutboxJob.created_at)
        )
        await session.execute(
            update(OutboxJob).where(OutboxJob.id == failed).values(failed_at=OutboxJob.created_at)
        )
        await session.commit()
        assert await purge_completed(session, timedelta(days=7)) == 1
        await session.commit()
    assert await job_row(factory, old) is None
    assert await job_row(factory, recent) is not None
    assert await job_row(factory, failed) is not None


async def test_enqueue_checks_ids_against_a_registered_tasks_signature(factory: Factory) -> None:
    organisation_id = uuid.uuid4()
    async with factory() as session:
        job_id = outbox.enqueue(session, "test.typed", organisation_id=organisation_id, signature_ids=[1, 2])
        await session.commit()
        with pytest.raises(ValueError, match="organisation_id"):
            outbox.enqueue(session, "test.typed", organisation_id="nope", signature_ids=[1])
        with pytest.raises(ValueError, match="extra"):
            outbox.enqueue(session, "test.typed", organisation_id=organisation_id, signature_ids=[], x=1)
    row = await job_row(factory, job_id)
    assert row is not None
    assert row.payload == {
        "organisation_id": str(organisation_id),
        "signature_ids": [1, 2],
    }
    assert REGISTRY["test.typed"].arguments(row.payload) == {
        "organisation_id": organisation_id,
        "signature_ids": [1, 2],
    }


def test_tasks_take_a_context_and_named_ids() -> None:
    async def fine(ctx: JobContext, thing_id: int) -> None: ...

    task("test.registration")(fine)
    task("test.registration")(fine)  # registering the same function again is harmless

    async def other(ctx: JobContext, thing_id: int) -> None: ...

    with pytest.raises(ValueError, match="twice"):
        task("test.registration")(other)

    def not_async(ctx: JobContext) -> None: ...

    with pytest.raises(TypeError, match="async"):
        task("test.sync")(not_async)  # type: ignore[arg-type]

    async def loose(ctx: JobContext, **ids: int) -> None: ...

    with pytest.raises(TypeError, match="name every argument"):
        task("test.loose")(loose)
    del REGISTRY["test.registration"]


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    for attempt, low, high in [(1, 0.5, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0), (10, 15.0, 30.0)]:
        delays = [backoff(attempt, base=1.0, cap=30.0) for _ in range(200)]
        assert all(low <= d <= high for d in delays)
        assert len(set(delays)) > 100  # jittered


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("duplicate key value violates unique constraint: Key (email)=(a@b.example)")
        self.sqlstate = sqlstate


def _db_error(sqlstate: str) -> sqlalchemy.exc.DBAPIError:
    return sqlalchemy.exc.DBAPIError("INSERT …", {}, _PgError(sqlstate))


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (Retry(), True),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (_db_error("40001"), True),  # serialization failure
        (_db_error("40P01"), True),  # deadlock
        (_db_error("08006"), True),  # connection failure
        (_db_error("57P01"), True),  # admin shutdown
        (_db_error("23505"), False),  # unique violation
        (smtplib.SMTPResponseException(451, b"try later"), True),
        (smtplib.SMTPResponseException(550, b"no such user"), False),
        (ValueError("bad"), False),
        (KeyError("x"), False),
    ],
)
def test_transient_errors_are_told_from_permanent_ones(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


async def test_real_database_errors_are_classified(factory: Factory) -> None:
    async with factory() as session:
        job_id = outbox.enqueue(session, "test.record", key="k")
        await session.commit()
    async with factory() as holder, factory() as waiter:
        await holder.execute(select(OutboxJob).where(OutboxJob.id == job_id).with_for_update())
        await waiter.execute(text("SET LOCAL lock_timeout = '20ms'"))
        with pytest.raises(sqlalchemy.exc.DBAPIError) as lock_not_available:
            await waiter.execute(select(OutboxJob).where(OutboxJob.id == job_id).with_for_update())
        await holder.rollback()
    assert is_transient(lock_not_available.value)
    assert "55P03" in describe_error(lock_not_available.value)
    async with factory() as session:
        with pytest.raises(sqlalchemy.exc.DBAPIError) as duplicate:
            await session.execute(
                text("INSERT INTO outbox_jobs (id, task, payload) VALUES (:id, 't', '{}')"), {"id": job_id}
            )
    assert not is_transient(duplicate.value)
    assert describe_error(duplicate.value).endswith("[23505]")
    assert str(job_id) not in describe_error(duplicate.value)


def test_a_wrapped_transient_error_is_transient() -> None:
    outer = RuntimeError("sending failed")
    outer.__cause__ = ConnectionResetError()
    assert is_transient(outer)


def test_database_errors_are_described_without_their_values() -> None:
    described = describe_error(_db_error("23505"))
    assert "23505" in described
    assert "@" not in described
