"""Delivering webhook events: the worker's loop over due deliveries, each step (claim, attempt, record;
``services.core.webhooks.delivery``) in a transaction of its own, and no HTTP call inside one.

It polls every ``webhook_poll_seconds`` (a cheap index look-up), so an event goes out about half a second
after its transaction commits. docs/webhooks.md, "Delivery: a loop over the delivery table".
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.webhooks import delivery

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 3600.0
_last_purge = {"at": -PURGE_EVERY_SECONDS}


async def deliver_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    client: httpx.AsyncClient | None = None,
    now: datetime | None = None,
) -> int:
    """One batch: claim, attempt, record. Returns how many deliveries were attempted. ``now`` (for
    tests) decides what is due and when the next attempts are; the signatures' timestamps are always the
    real clock's."""
    async with sessionmaker.begin() as session:
        claimed = await delivery.claim(session, settings, now or datetime.now(UTC))
    if not claimed:
        return 0
    own_client = client is None
    http = client or delivery.make_client(settings)
    limit = asyncio.Semaphore(settings.webhook_concurrency)

    async def one(item: delivery.Claimed) -> delivery.AttemptResult:
        async with limit:
            return await delivery.attempt(http, item, settings)

    try:
        results = await asyncio.gather(*(one(item) for item in claimed))
    finally:
        if own_client:
            await http.aclose()
    recorded_at = now or datetime.now(UTC)
    async with sessionmaker.begin() as session:
        for item, result in zip(claimed, results, strict=True):
            await delivery.record(session, settings, item, result, recorded_at)
    return len(claimed)


async def run_once(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, budget_seconds: float = 5.0
) -> int:
    """The worker loop's tick: batches while they come full, for up to ``budget_seconds``; once an hour,
    a purge of old events (``webhook_retention_days``)."""
    started = time.monotonic()
    if started - _last_purge["at"] > PURGE_EVERY_SECONDS:
        _last_purge["at"] = started
        async with sessionmaker.begin() as session:
            before = datetime.now(UTC) - timedelta(days=settings.webhook_retention_days)
            purged = await delivery.purge_old(session, before)
        if purged:
            log.info("purged old webhook events", extra={"events": purged})
    # The first batch makes its own client only if something is due: building one (an SSL context that
    # loads the CA certificates) every poll cost an idle worker ~15 % of a core.
    total = await deliver_due(sessionmaker, settings)
    if total < settings.webhook_batch_size or time.monotonic() - started > budget_seconds:
        return total
    async with delivery.make_client(settings) as client:
        while True:
            done = await deliver_due(sessionmaker, settings, client=client)
            total += done
            if done < settings.webhook_batch_size or time.monotonic() - started > budget_seconds:
                return total
