"""The worker's relay: it publishes what requests left unpublished (Redis down, a crash), leaves young
jobs to their request, and re-publishes jobs the queue lost. Real PostgreSQL and Redis."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core import jobs, outbox
from services.core.config import Settings
from services.core.outbox.models import OutboxJob
from services.worker.outbox.publish import publish_after_commit
from services.worker.outbox.relay import relay_once
from tests.worker.fixtures import job_row

Factory = async_sessionmaker[AsyncSession]


async def test_publish_with_redis_unreachable_leaves_the_job_to_the_relay(
    factory: Factory, queue: jobs.JobQueue, job_settings: Settings, job_queue_name: str
) -> None:
    down = jobs.JobQueue.lazy("redis://127.0.0.1:1/0", job_queue_name)  # nothing listens on port 1
    try:
        async with factory() as session:
            job_id = outbox.enqueue(session, "test.record", key="k")
            await session.commit()
            await publish_after_commit(session, down)  # does not raise
        row = await job_row(factory, job_id)
        assert row is not None
        assert row.published_at is None
        # while Redis is known to be down, publishing fails fast instead of waiting for a timeout
        assert not down.available
        started = time.monotonic()
        with pytest.raises(jobs.QueueUnavailable):
            await down.publish(job_id, "test.record", {})
        assert time.monotonic() - started < 0.1
        assert await down.ping() is False
    finally:
        await down.close()

    result = await relay_once(factory, queue, job_settings)
    assert (result.published, result.queue_down) == (1, False)
    row = await job_row(factory, job_id)
    assert row is not None
    assert row.published_at is not None
    assert await queue.depth() == 1
    # nothing left to relay
    assert (await relay_once(factory, queue, job_settings)).published == 0


async def test_the_relay_leaves_young_jobs_to_their_request(
    factory: Factory, queue: jobs.JobQueue, job_settings: Settings
) -> None:
    async with factory() as session:
        outbox.enqueue(session, "test.record", key="k")
        await session.commit()
    patient = job_settings.model_copy(update={"outbox_publish_grace_seconds": 60.0})
    assert (await relay_once(factory, queue, patient)).published == 0
    assert (await relay_once(factory, queue, job_settings)).published == 1


async def test_the_relay_republishes_jobs_the_queue_lost(
    factory: Factory, queue: jobs.JobQueue, job_settings: Settings
) -> None:
    async with factory() as session:
        lost = outbox.enqueue(session, "test.record", key="lost")
        done = outbox.enqueue(session, "test.record", key="done")
        failed = outbox.enqueue(session, "test.record", key="failed")
        await session.flush()
        long_ago = timedelta(hours=1)
        await session.execute(
            update(OutboxJob)
            .where(OutboxJob.id.in_([lost, done, failed]))
            .values(published_at=OutboxJob.created_at - long_ago)
        )
        await session.execute(
            update(OutboxJob).where(OutboxJob.id == done).values(completed_at=OutboxJob.created_at)
        )
        await session.execute(
            update(OutboxJob).where(OutboxJob.id == failed).values(failed_at=OutboxJob.created_at)
        )
        await session.commit()
    eager = job_settings.model_copy(update={"outbox_republish_after_seconds": 60.0})
    result = await relay_once(factory, queue, eager)
    assert (result.published, result.republished, result.lost) == (0, 1, 1)
    assert await queue.depth() == 1
    row = await job_row(factory, lost)
    assert row is not None
    assert row.published_at is not None
    assert row.published_at > row.created_at  # marked again, so it is not re-published every pass
    assert (await relay_once(factory, queue, eager)).republished == 0

    immediate = job_settings.model_copy(update={"outbox_republish_after_seconds": 0.0})
    again = await relay_once(factory, queue, immediate)
    assert (again.republished, again.lost) == (1, 0)  # still queued: the queue keeps one copy
    assert await queue.depth() == 1
