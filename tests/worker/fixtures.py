"""Fixtures shared by tests/worker and tests/core/outbox: a committed database (the worker uses its own
connections), an effects table, a queue of each test's own and a worker configured for quick tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import tests.worker.tasks  # noqa: F401 - registers the test tasks
from services.core import jobs
from services.core.config import Settings
from services.core.db.engine import create_sessionmaker
from services.core.outbox.models import OutboxJob
from services.worker import runtime


@pytest.fixture(scope="session")
async def effects_table(engine: AsyncEngine) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS job_effects (id bigserial PRIMARY KEY, key text NOT NULL, "
                "job_id uuid NOT NULL, attempt int NOT NULL, at timestamptz DEFAULT clock_timestamp())"
            )
        )
    yield
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS job_effects"))


@pytest.fixture
async def factory(
    engine: AsyncEngine, effects_table: None
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions that really commit. The outbox is emptied before and after each test, so a test's relay
    never publishes another test's jobs."""
    sessions = create_sessionmaker(engine)
    async with sessions.begin() as session:
        await session.execute(delete(OutboxJob))
    yield sessions
    async with sessions.begin() as session:
        await session.execute(delete(OutboxJob))


@pytest.fixture
def job_settings(settings: Settings) -> Settings:
    """Quick retries, no publish grace, frequent health checks."""
    return settings.model_copy(
        update={
            "worker_retry_base_seconds": 0.1,
            "worker_retry_max_seconds": 1.0,
            "worker_poll_delay": 0.01,
            "worker_health_check_seconds": 1,
            "outbox_publish_grace_seconds": 0.0,
            "outbox_republish_after_seconds": 3600.0,
        }
    )


@pytest.fixture
def job_queue_name(queue_name: str) -> str:
    return f"{queue_name}:{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def queue(redis_url: str, job_queue_name: str) -> AsyncIterator[jobs.JobQueue]:
    job_queue = jobs.JobQueue.lazy(redis_url, job_queue_name)
    yield job_queue
    await job_queue.purge()  # tests that publish without draining leave nothing behind in Redis
    await job_queue.close()


@pytest.fixture
def worker(job_settings: Settings, database_url: str, redis_url: str, job_queue_name: str) -> dict[str, Any]:
    """Options for a worker on the test's queue, without the background relay (tests call it) and
    periodic loops."""
    return runtime.worker_options(
        job_settings,
        database_url=database_url,
        redis_url=redis_url,
        queue_name=job_queue_name,
        relay=False,
        loops=False,
    )


async def effects(factory: async_sessionmaker[AsyncSession], key: str) -> int:
    async with factory() as session:
        count = await session.scalar(text("SELECT count(*) FROM job_effects WHERE key = :key"), {"key": key})
        return int(count or 0)


async def job_row(factory: async_sessionmaker[AsyncSession], job_id: uuid.UUID) -> OutboxJob | None:
    async with factory() as session:
        return await session.get(OutboxJob, job_id)


async def outbox_count(factory: async_sessionmaker[AsyncSession]) -> int:
    async with factory() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxJob)) or 0)


def key() -> str:
    return uuid.uuid4().hex
