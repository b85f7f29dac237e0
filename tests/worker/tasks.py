"""Tasks registered for the job tests. Each writes an *effect* row in ``job_effects`` through the job's
session, so an effect exists only if the job's transaction committed, and counting a key's effects tells
how many times a job really took effect. ``CALLS`` records every call (in-process worker), including the
ones whose transaction rolled back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict

from sqlalchemy import text

from services.core import outbox
from services.core.outbox.registry import JobContext, Retry, task

# key -> [(attempt, monotonic time)] for every call, committed or not
CALLS: defaultdict[str, list[tuple[int, float]]] = defaultdict(list)


async def _effect(ctx: JobContext, key: str) -> None:
    await ctx.session.execute(
        text("INSERT INTO job_effects (key, job_id, attempt) VALUES (:key, :job_id, :attempt)"),
        {"key": key, "job_id": ctx.job_id, "attempt": ctx.attempt},
    )


def _called(ctx: JobContext, key: str) -> None:
    CALLS[key].append((ctx.attempt, time.monotonic()))


@task("test.record")
async def record(ctx: JobContext, key: str) -> None:
    _called(ctx, key)
    await _effect(ctx, key)


@task("test.slow_record")
async def slow_record(ctx: JobContext, key: str, seconds: float = 0.3) -> None:
    _called(ctx, key)
    await _effect(ctx, key)
    await asyncio.sleep(seconds)


@task("test.flaky", max_tries=4)
async def flaky(ctx: JobContext, key: str, failures: int) -> None:
    """Fails like a dropped connection ``failures`` times, then succeeds."""
    _called(ctx, key)
    await _effect(ctx, key)  # rolled back with each failure
    if ctx.attempt <= failures:
        raise ConnectionError("simulated outage")


@task("test.asks_retry")
async def asks_retry(ctx: JobContext, key: str) -> None:
    _called(ctx, key)
    if ctx.attempt == 1:
        raise Retry("not yet", defer=0.2)
    await _effect(ctx, key)


@task("test.broken")
async def broken(ctx: JobContext, key: str) -> None:
    _called(ctx, key)
    await _effect(ctx, key)
    raise ValueError("the data makes no sense")


@task("test.hangs_once", timeout=0.3)
async def hangs_once(ctx: JobContext, key: str) -> None:
    _called(ctx, key)
    if ctx.attempt == 1:
        await asyncio.sleep(5)
    await _effect(ctx, key)


@task("test.chain")
async def chain(ctx: JobContext, key: str) -> None:
    """Enqueues a follow-up job in its own transaction."""
    _called(ctx, key)
    await _effect(ctx, key)
    outbox.enqueue(ctx.session, "test.record", key=f"{key}:next")


@task("test.typed")
async def typed(ctx: JobContext, organisation_id: uuid.UUID, signature_ids: list[int]) -> None:
    assert isinstance(organisation_id, uuid.UUID)
    key = f"{organisation_id}:{sum(signature_ids)}"
    _called(ctx, key)
    await _effect(ctx, key)
