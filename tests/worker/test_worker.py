"""The worker end to end: a real arq worker in this event loop, on the real Redis, running jobs from
the committed database. Effects are rows in ``job_effects`` written by the test tasks
(tests/worker/tasks.py) in the job's transaction."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core import jobs, outbox
from services.core.config import Settings
from services.core.embedded import EmbeddedRedis
from services.core.outbox.models import OutboxJob
from services.core.outbox.registry import REGISTRY
from services.worker import runtime
from services.worker.outbox.dispatch import run_job
from services.worker.outbox.publish import publish_after_commit
from services.worker.outbox.relay import relay_once
from tests.worker.fixtures import effects, job_row, key
from tests.worker.tasks import CALLS

Factory = async_sessionmaker[AsyncSession]


async def _commit_job(factory: Factory, queue: jobs.JobQueue | None, task: str, **ids: Any) -> uuid.UUID:
    """Enqueue in a transaction, commit, then publish as the API's route does."""
    async with factory() as session:
        job_id = outbox.enqueue(session, task, **ids)
        await session.commit()
        await publish_after_commit(session, queue)
    return job_id


async def _row(factory: Factory, job_id: uuid.UUID) -> OutboxJob:
    row = await job_row(factory, job_id)
    assert row is not None
    return row


async def test_a_committed_job_runs_once_and_is_marked_completed(
    factory: Factory, queue: jobs.JobQueue, worker: dict[str, Any]
) -> None:
    k = key()
    job_id = await _commit_job(factory, queue, "test.record", key=k)
    stats = await runtime.drain(worker)
    assert stats.completed == 1
    assert await effects(factory, k) == 1
    row = await _row(factory, job_id)
    assert row.completed_at is not None
    assert row.failed_at is None
    assert row.attempts == 1
    assert await queue.depth() == 0


async def test_a_job_published_without_marking_is_marked_by_the_worker(
    factory: Factory, queue: jobs.JobQueue, worker: dict[str, Any]
) -> None:
    k = key()
    async with factory() as session:
        job_id = outbox.enqueue(session, "test.record", key=k)
        await session.commit()
    await queue.publish(job_id, "test.record", {"key": k})  # published, not marked: as a relay might
    assert (await _row(factory, job_id)).published_at is None
    assert await queue.depth() == 1
    await runtime.drain(worker)
    row = await _row(factory, job_id)
    assert row.published_at is not None
    assert row.completed_at is not None


async def test_a_job_enqueued_in_a_rolled_back_transaction_never_runs(
    factory: Factory, queue: jobs.JobQueue, worker: dict[str, Any]
) -> None:
    k = key()
    async with factory() as session:
        job_id = outbox.enqueue(session, "test.record", key=k)
        await session.flush()
        await session.rollback()
        await publish_after_commit(session, queue)
    assert await queue.depth() == 0
    # even if the job reached the queue some other way, it has no row, so it does nothing
    assert await queue.publish(job_id, "test.record", {"key": k})
    await runtime.drain(worker)
    assert CALLS[k] == []
    assert await effects(factory, k) == 0
    assert await job_row(factory, job_id) is None


async def test_a_job_delivered_twice_has_one_effect(
    factory: Factory, queue: jobs.JobQueue, worker: dict[str, Any]
) -> None:
    k = key()
    job_id = await _commit_job(factory, queue, "test.record", key=k)
    await runtime.drain(worker)
    # a second delivery after it ran: the queue accepts the id again (no result kept) ...
    assert await queue.publish(job_id, "test.record", {"key": k}) is True
    await runtime.drain(worker)
    # ... and the dispatcher sees completed_at and does nothing
    assert len(CALLS[k]) == 1
    assert await effects(factory, k) == 1


async def test_concurrent_deliveries_of_one_job_have_one_effect(
    factory: Factory, queue: jobs.JobQueue, job_settings: Settings
) -> None:
    k = key()
    job_id = await _commit_job(factory, None, "test.slow_record", key=k, seconds=0.3)
    outcomes = await asyncio.gather(
        *(run_job(factory, job_id, settings=job_settings, queue=queue) for _ in range(3))
    )
    assert sorted(o.status for o in outcomes) == ["completed", "skipped", "skipped"]
    assert len(CALLS[k]) == 1  # the others waited on the row lock, then saw completed_at
    assert await effects(factory, k) == 1


async def test_a_transient_failure_is_retried_with_backoff_then_succeeds(
    factory: Factory, queue: jobs.JobQueue, worker: dict[str, Any]
) -> None:
    k = key()
    job_id = await _commit_job(factory, queue, "test.flaky", key=k, failures=2)
    stats = await runtime.drain(worker)
    assert stats.retried == 2
    assert [attempt for attempt, _ in CALLS[k]] == [1, 2, 3]
    times = [at for _, at in CALLS[k]]
    # base 0.1 s: ~0.05-0.1 s after the first failure, ~0.1-0.2 s after the second
    assert times[1] - times[0] >= 0.05
    assert times[2] - times[1] >= 0.1
    assert await effects(factory, k) == 1  # the failed attempts' effects were rolled back
    row = await _row(factory, job_id)
    assert row.completed_at is not None
    assert row.attempts == 3
    assert row.last_error == "ConnectionError: simulated outage"


async def test_a_task_can_ask_to_be_retried_later(
    factory: Factory, queue: jobs.JobQueue, worker: dict[str, Any]
) -> None:
    k = key()
    await _commit_job(factory, queue, "test.asks_retry", key=k)
    await runtime.drain(worker)
    (_, first), (_, second) = CALLS[k]
    assert second - first >= 0.2
    assert await effects(factory, k) == 1


async def test_transient_failures_give_up_after_max_tries(
    factory: Factory, queue: jobs.JobQueue, worker: dict[str, Any]
) -> None:
    k = key()
    job_id = await _commit_job(factory, queue, "test.flaky", key=k, failures=99)  # max_tries=4
    await runtime.drain(worker)
    assert len(CALLS[k]) == 4
    row = await _row(factory, job_id)
    assert row.failed_at is not None
    assert row.completed_at is None
    assert row.attempts == 4
    assert await effects(factory, k) == 0


async def test_a_permanent_failure_is_recorded_and_not_retried(
    factory: Factory, queue: jobs.JobQueue, worker: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    k = key()
    job_id = await _commit_job(factory, queue, "test.broken", key=k)
    stats = await runtime.drain(worker)
    assert stats.retried == 0
    assert len(CALLS[k]) == 1
    assert await effects(factory, k) == 0  # its effect rolled back with it
    row = await _row(factory, job_id)
    assert row.failed_at is not None
    assert row.completed_at is None
    assert row.attempts == 1
    assert row.last_error == "ValueError: the data makes no sense"
    assert "job failed permanently" in caplog.text
    # the relay does not bring a failed job back
    async with factory() as session:
        failed = select(func.count()).select_from(OutboxJob).where(OutboxJob.failed_at.is_not(None))
        assert await session.scalar(failed) == 1


async def test_a_task_that_overruns_its_timeout_is_retried(
    factory: Factory, queue: jobs.JobQueue, worker: dict[str, Any]
) -> None:
    k = key()
    job_id = await _commit_job(factory, queue, "test.hangs_once", key=k)  # timeout=0.3
    started = time.monotonic()
    await runtime.drain(worker)
    assert time.monotonic() - started < 4
    assert [attempt for attempt, _ in CALLS[k]] == [1, 2]
    assert await effects(factory, k) == 1
    row = await _row(factory, job_id)
    assert row.last_error is not None
    assert row.last_error.startswith("TimeoutError")


async def test_an_unknown_task_is_retried_then_failed(
    factory: Factory,
    queue: jobs.JobQueue,
    job_settings: Settings,
    database_url: str,
    redis_url: str,
    job_queue_name: str,
) -> None:
    options = runtime.worker_options(
        job_settings.model_copy(update={"worker_max_tries": 2}),
        database_url=database_url,
        redis_url=redis_url,
        queue_name=job_queue_name,
        relay=False,
    )
    job_id = await _commit_job(factory, queue, "test.not_deployed_yet", thing_id=1)
    stats = await runtime.drain(options)
    assert stats.retried == 1
    row = await _row(factory, job_id)
    assert row.failed_at is not None
    assert row.last_error is not None
    assert "UnknownTask" in row.last_error


async def test_jobs_a_task_enqueues_run_after_its_commit(
    factory: Factory, queue: jobs.JobQueue, worker: dict[str, Any]
) -> None:
    k = key()
    await _commit_job(factory, queue, "test.chain", key=k)
    await runtime.drain(worker)
    assert await effects(factory, k) == 1
    assert await effects(factory, f"{k}:next") == 1


async def test_ids_arrive_with_their_types(
    factory: Factory, queue: jobs.JobQueue, worker: dict[str, Any]
) -> None:
    organisation_id = uuid.uuid4()
    await _commit_job(factory, queue, "test.typed", organisation_id=organisation_id, signature_ids=[1, 2])
    await runtime.drain(worker)
    assert await effects(factory, f"{organisation_id}:3") == 1


async def test_a_job_enqueued_while_redis_is_down_runs_once_redis_is_back(
    factory: Factory, job_settings: Settings, database_url: str, job_queue_name: str, tmp_path: Path
) -> None:
    redis = EmbeddedRedis(tmp_path / "redis")
    redis_url = redis.start()
    queue = jobs.JobQueue.lazy(redis_url, job_queue_name)
    queue.unavailable_for = 0.2
    try:
        assert await queue.ping()
        redis.stop()
        assert await queue.ping() is False

        k = key()
        started = time.monotonic()
        job_id = await _commit_job(factory, queue, "test.record", key=k)  # signing still works
        assert time.monotonic() - started < 3
        assert (await _row(factory, job_id)).published_at is None
        assert (await relay_once(factory, queue, job_settings)).queue_down

        redis.start()
        await asyncio.sleep(queue.unavailable_for)
        result = await relay_once(factory, queue, job_settings)
        assert (result.published, result.queue_down) == (1, False)
        options = runtime.worker_options(
            job_settings,
            database_url=database_url,
            redis_url=redis_url,
            queue_name=job_queue_name,
            relay=False,
        )
        await runtime.drain(options)
        assert await effects(factory, k) == 1
        assert (await _row(factory, job_id)).completed_at is not None
    finally:
        await queue.close()
        redis.stop()


async def test_a_running_worker_relays_reports_health_and_stops_cleanly(
    factory: Factory,
    queue: jobs.JobQueue,
    job_settings: Settings,
    database_url: str,
    redis_url: str,
    job_queue_name: str,
) -> None:
    options = runtime.worker_options(
        job_settings.model_copy(update={"outbox_relay_seconds": 1}),
        database_url=database_url,
        redis_url=redis_url,
        queue_name=job_queue_name,
    )
    assert not await runtime.check_health(redis_url, job_queue_name)
    k = key()
    job_id = await _commit_job(factory, None, "test.record", key=k)  # left to the relay
    async with runtime.running_worker(options):
        for _ in range(100):
            if await effects(factory, k) and await runtime.check_health(redis_url, job_queue_name):
                break
            await asyncio.sleep(0.05)
        assert await runtime.check_health(redis_url, job_queue_name)
        assert await effects(factory, k) == 1
        slow = key()
        await _commit_job(factory, queue, "test.slow_record", key=slow, seconds=0.5)
        for _ in range(100):
            if CALLS[slow]:
                break
            await asyncio.sleep(0.02)
    # a job running at shutdown was allowed to finish
    assert await effects(factory, slow) == 1
    assert (await _row(factory, job_id)).completed_at is not None
    assert not await runtime.check_health(redis_url, job_queue_name)


def test_worker_settings_for_the_arq_cli(
    monkeypatch: pytest.MonkeyPatch, database_url: str, redis_url: str
) -> None:
    from services.core.config import get_settings
    from services.worker import settings as worker_settings

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LOOM_WORKER_MAX_JOBS", "123")
    get_settings.cache_clear()
    worker_settings._worker_settings_class.cache_clear()
    try:
        cls = worker_settings.WorkerSettings
        assert cls.max_jobs == 123
        assert cls.queue_name == jobs.QUEUE_NAME
        assert cls.keep_result == 0
        assert [f.name for f in cls.functions] == ["run_outbox_job"]
        assert cls.redis_settings.host == "127.0.0.1" or cls.redis_settings.unix_socket_path
    finally:
        get_settings.cache_clear()
        worker_settings._worker_settings_class.cache_clear()
    with pytest.raises(AttributeError):
        _ = worker_settings.NoSuchThing


def test_the_worker_imports_every_domains_task_module() -> None:
    from services.worker.settings import load_tasks

    assert load_tasks("tests.worker.discovery") == ["tests.worker.discovery.sample.tasks"]
    assert "test.discovered" in REGISTRY
