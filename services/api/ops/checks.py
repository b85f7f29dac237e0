"""What the ops endpoints read: readiness checks and the gauges computed at scrape time.

Every read is bounded by a short timeout, so ``/readyz`` and ``/metrics`` answer promptly even when
PostgreSQL or Redis hang. Reads go through ``app.state.sessionmaker`` and ``app.state.queue``, the same
ones the rest of the API uses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.db.migrate import is_at_head
from services.core.jobs import JobQueue
from services.core.outbox.models import OutboxJob

log = logging.getLogger(__name__)

T = TypeVar("T")

# Each check or gauge read gives up after this long (seconds); readyz runs its checks concurrently.
CHECK_TIMEOUT = 2.0


class CheckResult(StrEnum):
    ok = "ok"
    failed = "failed"
    timeout = "timeout"
    behind = "behind"  # migrations: the database is not at the code's head revision
    skipped = "skipped"  # migrations: not checked because the database is unreachable


@dataclass(frozen=True)
class Readiness:
    database: CheckResult
    migrations: CheckResult
    redis: CheckResult

    @property
    def ready(self) -> bool:
        return all(result is CheckResult.ok for result in self.as_dict().values())

    def as_dict(self) -> dict[str, CheckResult]:
        return {"database": self.database, "migrations": self.migrations, "redis": self.redis}


async def bounded(what: str, awaitable: Awaitable[T]) -> T:
    """``await awaitable`` within the check timeout; failures are logged (by kind, without data)."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            return await awaitable
    except TimeoutError:
        log.warning("ops check timed out", extra={"check": what})
        raise
    except Exception as exc:
        log.warning("ops check failed", extra={"check": what, "error": type(exc).__name__})
        raise


async def _database(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> tuple[CheckResult, CheckResult]:
    async with sessionmaker() as session:
        await session.execute(text("SELECT 1"))
        at_head = await is_at_head(await session.connection())
    return CheckResult.ok, CheckResult.ok if at_head else CheckResult.behind


async def check_database(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[CheckResult, CheckResult]:
    """(database reachable, migrations at head)."""
    try:
        return await bounded("database", _database(sessionmaker))
    except TimeoutError:
        return CheckResult.timeout, CheckResult.skipped
    except Exception:
        return CheckResult.failed, CheckResult.skipped


async def check_redis(queue: JobQueue | None) -> CheckResult:
    if queue is None:
        return CheckResult.failed
    try:
        return CheckResult.ok if await bounded("redis", queue.ping()) else CheckResult.failed
    except TimeoutError:
        return CheckResult.timeout
    except Exception:
        return CheckResult.failed


async def readiness(state: Any) -> Readiness:
    """Check the database, the migrations and Redis concurrently, each within ``CHECK_TIMEOUT``."""
    sessionmaker = getattr(state, "sessionmaker", None)
    if sessionmaker is None:
        db_task: Awaitable[tuple[CheckResult, CheckResult]] = _unavailable()
    else:
        db_task = check_database(sessionmaker)
    (database, migrations), redis = await asyncio.gather(db_task, check_redis(getattr(state, "queue", None)))
    return Readiness(database=database, migrations=migrations, redis=redis)


async def _unavailable() -> tuple[CheckResult, CheckResult]:
    return CheckResult.failed, CheckResult.skipped


async def outbox_backlog(session: AsyncSession) -> tuple[int, float]:
    """Jobs not yet published to the queue (nor completed), and the age in seconds of the oldest."""
    row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(
                    func.extract("epoch", func.clock_timestamp() - func.min(OutboxJob.created_at)), 0
                ),
            ).where(OutboxJob.published_at.is_(None), OutboxJob.completed_at.is_(None))
        )
    ).one()
    return int(row[0]), float(row[1])
