"""The job queue the API and the worker publish to: a tiny in-house API over arq, so the queue library stays
replaceable. With ``services.worker.runtime``, the only module that imports arq.

``JobQueue.publish(job_id, task, payload)`` puts an outbox job on the queue (job id = outbox id); the
worker runs it through :data:`DISPATCHER`. Why arq keeps no results (``keep_result=0``):
docs/architecture.md, "The queue behind a tiny API".
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from arq.connections import ArqRedis
from arq.constants import job_key_prefix, retry_key_prefix
from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ["DISPATCHER", "QUEUE_NAME", "JobQueue", "QueueUnavailable"]

QUEUE_NAME = "loom:queue"
# The one arq function a worker registers: it runs outbox job <job id> (services.worker.runtime).
DISPATCHER = "run_outbox_job"


class QueueUnavailable(Exception):
    """The queue (Redis) could not be reached; the outbox relay will publish the job later."""


class JobQueue:
    """Publishes outbox jobs to the queue.

    After a failure to reach Redis, publishing fails fast (``QueueUnavailable``) for
    ``unavailable_for`` seconds, so requests don't each wait for a connection timeout while Redis is
    down; their jobs wait in the outbox for the relay.
    """

    def __init__(
        self,
        pool: ArqRedis,
        queue_name: str = QUEUE_NAME,
        *,
        owns_pool: bool = True,
        unavailable_for: float = 5.0,
    ) -> None:
        self._pool = pool
        self.queue_name = queue_name
        self._owns_pool = owns_pool
        self.unavailable_for = unavailable_for
        self._down_until = 0.0

    @classmethod
    def lazy(cls, redis_url: str, queue_name: str = QUEUE_NAME) -> JobQueue:
        """A queue that connects on first use, so the API starts (and signing works) with Redis down."""
        pool = ArqRedis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
        return cls(pool, queue_name)

    @property
    def redis(self) -> Redis:
        """The Redis client underneath, for other uses of the same server (caches)."""
        return self._pool

    @property
    def available(self) -> bool:
        """False while publishing fails fast after an error reaching Redis."""
        return time.monotonic() >= self._down_until

    async def publish(self, job_id: uuid.UUID, task_name: str, payload: dict[str, Any]) -> bool:
        """Put the job on the queue. Returns False if it was already there (queued, running or retrying),
        which is fine too. Raises ``QueueUnavailable`` when Redis can't be reached. The payload stays in
        the outbox; the task name goes along only so the worker's log lines say what ran."""
        if not self.available:
            raise QueueUnavailable("the queue was unreachable moments ago")
        try:
            job = await self._pool.enqueue_job(
                DISPATCHER,
                str(job_id),
                task=task_name,
                _job_id=str(job_id),
                _queue_name=self.queue_name,
            )
        except (RedisError, OSError) as exc:
            self._down_until = time.monotonic() + self.unavailable_for
            raise QueueUnavailable(str(exc)) from exc
        self._down_until = 0.0
        return job is not None

    async def ping(self) -> bool:
        try:
            return bool(await self._pool.ping())
        except (RedisError, OSError):
            return False

    async def depth(self) -> int:
        """Jobs waiting on the queue (including ones deferred for a retry)."""
        return int(await self._pool.zcard(self.queue_name))

    async def purge(self) -> int:
        """Drop every job waiting on this queue (tests, or an operator clearing a test queue); returns how
        many. Their outbox rows are untouched, so the relay can publish them again."""
        job_ids = [job_id.decode() for job_id in await self._pool.zrange(self.queue_name, 0, -1)]
        keys = [prefix + job_id for job_id in job_ids for prefix in (job_key_prefix, retry_key_prefix)]
        async with self._pool.pipeline(transaction=True) as pipe:
            if keys:
                pipe.delete(*keys)
            pipe.delete(self.queue_name)
            await pipe.execute()
        return len(job_ids)

    async def close(self) -> None:
        if self._owns_pool:
            await self._pool.aclose()
