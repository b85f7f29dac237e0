"""The worker's runtime over arq: the one arq function, the worker's lifecycle, and running it — in the
foreground (``loom worker``), in the background of an event loop (tests, benchmarks) or until the queue is
empty. With ``services.core.jobs`` (the publisher), the only module that imports arq.
docs/architecture.md, "The worker".
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
from arq.constants import health_check_key_suffix
from arq.worker import Retry as ArqRetry
from arq.worker import Worker, func
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.db.engine import create_engine, create_sessionmaker
from services.core.jobs import DISPATCHER, QUEUE_NAME, JobQueue
from services.core.outbox.registry import REGISTRY
from services.worker.outbox.dispatch import run_job
from services.worker.outbox.relay import relay_forever
from services.worker.periodic import PERIODIC, LoopContext, run_periodic

log = logging.getLogger(__name__)

# On SIGTERM the worker stops taking jobs and waits this long for running ones (docker stop waits 10 s).
GRACEFUL_STOP_SECONDS = 8
_RUNTIME = "loom"


def redis_settings(redis_url: str) -> RedisSettings:
    """arq's connection settings: a short timeout and no retries (``run_worker`` retries, naming where)."""
    settings = RedisSettings.from_dsn(redis_url)
    settings.conn_timeout = 2
    settings.conn_retries = 0
    return settings


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
    outcome = await run_job(
        runtime.sessionmaker,
        uuid.UUID(job_id),
        settings=runtime.settings,
        queue=runtime.queue,
        delivery=int(ctx.get("job_try", 1)),
    )
    if outcome.status == "retry":
        raise ArqRetry(defer=outcome.retry_in)
    return outcome.status


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
                asyncio.create_task(run_periodic(job, loop_ctx), name=job.name) for job in PERIODIC.values()
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
