"""A tiny in-house job API over arq, so the queue library stays replaceable. Only this module imports
arq.

- ``@task("name")`` registers an idempotent coroutine ``fn(ctx: JobContext, **ids)`` (see
  ``services.core.outbox.registry``; re-exported here with ``JobContext`` and ``Retry``).
- ``JobQueue.publish(job_id, task, payload)`` puts an outbox job on the queue (job id = outbox id).
- ``worker_options(...)`` builds the arq worker: one generic function, ``run_outbox_job(job_id)``, looks
  the job up in the outbox and runs the registered task (``services.core.outbox.dispatch``); a background
  loop relays unpublished jobs (``services.core.outbox.relay``).

Why arq results are not kept (``keep_result=0``): arq refuses to enqueue a job id while a job *or its
result* exists. With no result kept, a job id is free again as soon as the job finishes, so the relay can
re-publish a job the queue lost or dropped; while the job is still queued or retrying, publishing it again
is a no-op. Duplicate runs are harmless because the dispatcher checks ``completed_at`` under a row lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis, RedisSettings
from arq.constants import health_check_key_suffix, job_key_prefix, retry_key_prefix
from arq.worker import Retry as ArqRetry
from arq.worker import Worker, func
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.db.engine import create_engine, create_sessionmaker
from services.core.outbox import dispatch
from services.core.outbox.registry import (
    PERIODIC,
    REGISTRY,
    JobContext,
    LoopContext,
    Periodic,
    Retry,
    Task,
    periodic,
    task,
)
from services.core.outbox.relay import relay_forever

__all__ = [
    "ARQ_DEFAULTS",
    "QUEUE_NAME",
    "REGISTRY",
    "JobContext",
    "JobQueue",
    "LoopContext",
    "QueueUnavailable",
    "Retry",
    "Task",
    "Tuning",
    "WorkerStats",
    "check_health",
    "drain",
    "periodic",
    "run_worker",
    "running_worker",
    "task",
    "worker_options",
]

log = logging.getLogger(__name__)

QUEUE_NAME = "loom:queue"
DISPATCHER = "run_outbox_job"
# On SIGTERM the worker stops taking jobs and waits this long for running ones (docker stop waits 10 s).
GRACEFUL_STOP_SECONDS = 8
_RUNTIME = "loom"


class QueueUnavailable(Exception):
    """The queue (Redis) could not be reached; the outbox relay will publish the job later."""


def redis_settings(redis_url: str, *, retries: int = 0) -> RedisSettings:
    settings = RedisSettings.from_dsn(redis_url)
    settings.conn_timeout = 2
    settings.conn_retries = retries
    return settings


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
    async def connect(cls, redis_url: str, queue_name: str = QUEUE_NAME) -> JobQueue:
        from arq import create_pool

        pool = await create_pool(redis_settings(redis_url), default_queue_name=queue_name)
        return cls(pool, queue_name)

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


# --- the worker ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tuning:
    """The arq knobs that decide throughput. ``max_jobs``: jobs run concurrently; ``poll_delay``: seconds
    between reads of the queue; ``queue_read_limit``: job ids read per poll (arq: max(5 * max_jobs, 100))."""

    max_jobs: int
    poll_delay: float
    queue_read_limit: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Tuning:
        return cls(settings.worker_max_jobs, settings.worker_poll_delay)


# arq's own defaults, for comparison (benchmarks/worker.py)
ARQ_DEFAULTS = Tuning(max_jobs=10, poll_delay=0.5)


@dataclass
class _Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    queue: JobQueue
    background: list[asyncio.Task[None]]


async def run_outbox_job(ctx: dict[str, Any], job_id: str, task: str | None = None) -> str:
    """The only arq function: run outbox job ``job_id`` (``task`` is informational)."""
    runtime: _Runtime = ctx[_RUNTIME]
    outcome = await dispatch.run_job(
        runtime.sessionmaker,
        uuid.UUID(job_id),
        settings=runtime.settings,
        queue=runtime.queue,
        delivery=int(ctx.get("job_try", 1)),
    )
    if outcome.status == "retry":
        raise ArqRetry(defer=outcome.retry_in)
    return outcome.status


async def _run_periodic(job: Periodic, ctx: LoopContext) -> None:
    """Run a periodic task forever; a failed run is logged (without its message, which may quote
    personal data) and the next one comes as usual."""
    while True:
        try:
            await job.fn(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("periodic task %s failed: %s", job.name, dispatch.describe_error(exc))
        await asyncio.sleep(job.every(ctx.settings))


def _worker_engine(settings: Settings, database_url: str) -> AsyncEngine:
    """The worker's engine. Unlike the API's it does not ping connections on checkout: that is a round
    trip per job, and a job that meets a dead connection fails with a transient error and is retried
    (the pool is invalidated on the first such error)."""
    return create_engine(settings, database_url, pre_ping=False, application_name="loom-worker")


def worker_options(
    settings: Settings,
    *,
    database_url: str,
    redis_url: str,
    queue_name: str = QUEUE_NAME,
    tuning: Tuning | None = None,
    relay: bool = True,
    loops: bool = True,
) -> dict[str, Any]:
    """Keyword arguments for an arq ``Worker`` (also the attributes of ``WorkerSettings``).

    Import the task modules before calling this: the registry sets the longest timeout and the most
    tries arq must allow.
    """
    tuning = tuning or Tuning.from_settings(settings)
    timeouts = [t.timeout for t in REGISTRY.values() if t.timeout] + [settings.worker_job_timeout]
    tries = [t.max_tries for t in REGISTRY.values() if t.max_tries] + [settings.worker_max_tries]

    async def on_startup(ctx: dict[str, Any]) -> None:
        engine = _worker_engine(settings, database_url)
        sessionmaker = create_sessionmaker(engine)
        queue = JobQueue(ctx["redis"], queue_name, owns_pool=False)
        background = []
        if relay:
            background.append(
                asyncio.create_task(relay_forever(sessionmaker, queue, settings), name="outbox-relay")
            )
        if loops:
            loop_ctx = LoopContext(sessionmaker, settings, queue)
            background += [
                asyncio.create_task(_run_periodic(job, loop_ctx), name=job.name) for job in PERIODIC.values()
            ]
        ctx[_RUNTIME] = _Runtime(settings, engine, sessionmaker, queue, background)

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        runtime: _Runtime | None = ctx.pop(_RUNTIME, None)
        if runtime is None:
            return
        for background_task in runtime.background:
            background_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*runtime.background, return_exceptions=True)
        await runtime.engine.dispose()

    return {
        "functions": [
            func(
                run_outbox_job,
                name=DISPATCHER,
                # the dispatcher enforces each task's timeout and tries itself; arq's are a backstop
                timeout=max(timeouts) + 30,
                max_tries=max(tries) + 3,
            )
        ],
        "queue_name": queue_name,
        # No retries inside arq: its messages name localhost:6379 whatever the URL says (a Unix socket,
        # say); run_worker starts arq again with a growing delay and names the address itself.
        "redis_settings": redis_settings(redis_url),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "max_jobs": tuning.max_jobs,
        "poll_delay": tuning.poll_delay,
        "queue_read_limit": tuning.queue_read_limit,
        "job_timeout": settings.worker_job_timeout,
        "keep_result": 0,
        "max_tries": max(tries) + 3,
        "health_check_interval": settings.worker_health_check_seconds,
        "log_results": False,
        "job_completion_wait": GRACEFUL_STOP_SECONDS,
    }


# Losing Redis (arq's connection, or a timeout talking to it) stops arq's worker; the worker is then
# started again after this many seconds, doubling up to the maximum while Redis stays away.
REDIS_RESTART_SECONDS = 1.0
REDIS_RESTART_MAX_SECONDS = 30.0
_REDIS_LOST: tuple[type[BaseException], ...] = (RedisError, ConnectionError, TimeoutError, OSError)


def run_worker(options: dict[str, Any], *, redis_address: str = "Redis") -> None:
    """Run a worker in the foreground until SIGINT/SIGTERM (blocking; makes its own event loop).

    arq's worker stops with an exception when it loses Redis (or cannot reach it at start). Jobs are
    idempotent and their state is in PostgreSQL (the outbox), so the worker is simply started again, on a
    fresh event loop, with a growing delay, until Redis answers; the outbox relay then publishes what was
    written in the meantime. ``redis_address`` (where the URL points) is named in the log. SIGINT or
    SIGTERM during the delay ends this function, so the process exits normally.
    """
    delay = REDIS_RESTART_SECONDS
    while True:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        worker = Worker(**options)
        started = time.monotonic()
        try:
            worker.run()
            return  # stopped by a signal
        except _REDIS_LOST as exc:
            log.warning(
                "worker lost Redis at %s (%s); starting again in %.0f s",
                redis_address,
                type(exc).__name__,
                delay,
            )
        finally:
            _abandon(loop, worker, options)
        if time.monotonic() - started > REDIS_RESTART_MAX_SECONDS:
            delay = REDIS_RESTART_SECONDS  # it had been running fine: a new outage
        # Closing arq's loop put SIGTERM back to its default (death, skipping exit handlers): while
        # waiting, it interrupts like SIGINT.
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            time.sleep(delay)
        except KeyboardInterrupt:
            return
        finally:
            signal.signal(signal.SIGTERM, previous)
        delay = min(delay * 2, REDIS_RESTART_MAX_SECONDS)


def _abandon(loop: asyncio.AbstractEventLoop, worker: Worker, options: dict[str, Any]) -> None:
    """After a worker stopped, however it stopped: run ``on_shutdown`` if arq could not (it talks to Redis
    first), cancel what is left on the loop and close it."""
    try:
        on_shutdown = options.get("on_shutdown")
        if on_shutdown is not None:
            with contextlib.suppress(Exception):
                loop.run_until_complete(on_shutdown(worker.ctx))
        leftover = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


@dataclass(frozen=True)
class WorkerStats:
    completed: int  # arq's count: includes jobs the dispatcher skipped or gave up on
    failed: int
    retried: int


async def _close(worker: Worker) -> None:
    with warnings.catch_warnings():  # arq 0.26+ closes its pool with redis-py's deprecated close()
        warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
        await worker.close()


def _stats(worker: Worker) -> WorkerStats:
    return WorkerStats(worker.jobs_complete, worker.jobs_failed, worker.jobs_retried)


async def drain(options: dict[str, Any]) -> WorkerStats:
    """Run a worker in this event loop until its queue is empty (deferred retries included)."""
    worker = Worker(**{**options, "burst": True, "handle_signals": False})
    try:
        await worker.async_run()
    finally:
        await _close(worker)
    return _stats(worker)


@contextlib.asynccontextmanager
async def running_worker(options: dict[str, Any], *, stop_timeout: float = 10.0) -> AsyncIterator[Any]:
    """Run a worker in the background of this event loop; on exit it stops taking jobs, lets running
    ones finish (up to ``stop_timeout`` seconds) and closes."""
    worker = Worker(**{**options, "burst": False, "handle_signals": False})
    main = asyncio.create_task(worker.async_run())
    try:
        yield worker
    finally:
        worker.allow_pick_jobs = False
        running = [t for t in worker.tasks.values() if not t.done()]
        if running:
            await asyncio.wait(running, timeout=stop_timeout)
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await main
        for job in worker.tasks.values():
            job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        worker.tasks.clear()
        await _close(worker)


def health_check_key(queue_name: str = QUEUE_NAME) -> str:
    return queue_name + health_check_key_suffix


async def check_health(redis_url: str, queue_name: str = QUEUE_NAME) -> bool:
    """True if a worker on ``queue_name`` recorded its health key recently (it expires one second after
    ``worker_health_check_seconds``), like ``arq --check``."""
    pool = ArqRedis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        return bool(await pool.exists(health_check_key(queue_name)))
    except (RedisError, OSError):
        return False
    finally:
        await pool.aclose()
