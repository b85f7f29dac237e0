"""A tiny in-house job API over arq, so the queue library stays replaceable. Only this module imports
arq.

- ``@task("name")`` registers an idempotent coroutine ``fn(ctx, **ids)``.
- ``JobQueue.publish(job_id, task, payload)`` puts a job on the queue (job id = outbox id).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

QUEUE_NAME = "loom:queue"

TaskFn = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Task:
    name: str
    fn: TaskFn


REGISTRY: dict[str, Task] = {}


def task(name: str) -> Callable[[TaskFn], TaskFn]:
    def register(fn: TaskFn) -> TaskFn:
        if name in REGISTRY and REGISTRY[name].fn is not fn:
            raise ValueError(f"task {name!r} registered twice")
        REGISTRY[name] = Task(name, fn)
        return fn

    return register


def redis_settings(redis_url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(redis_url)
    settings.conn_timeout = 2
    settings.conn_retries = 0
    return settings


class JobQueue:
    """Publishes jobs to the queue."""

    def __init__(self, pool: ArqRedis, queue_name: str = QUEUE_NAME) -> None:
        self._pool = pool
        self.queue_name = queue_name

    @classmethod
    async def connect(cls, redis_url: str, queue_name: str = QUEUE_NAME) -> JobQueue:
        pool = await create_pool(redis_settings(redis_url), default_queue_name=queue_name)
        return cls(pool, queue_name)

    @classmethod
    def lazy(cls, redis_url: str, queue_name: str = QUEUE_NAME) -> JobQueue:
        """A queue that connects on first use, so the API starts (and signing works) with Redis down."""
        pool = ArqRedis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
        return cls(pool, queue_name)

    async def publish(self, job_id: uuid.UUID, task_name: str, payload: dict[str, Any]) -> None:
        await self._pool.enqueue_job(
            "run_outbox_job", str(job_id), _job_id=str(job_id), _queue_name=self.queue_name
        )

    async def ping(self) -> bool:
        return bool(await self._pool.ping())

    async def depth(self) -> int:
        return int(await self._pool.zcard(self.queue_name))

    async def close(self) -> None:
        await self._pool.aclose()
