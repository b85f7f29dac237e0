"""Recount requests: how a transaction that changes a petition's count asks the worker to count it again.

:func:`mark_for_recount` is called by whatever changes a count (confirmations, invalidations, review
decisions, erasures, a campaign's publication); the worker's pipeline takes the requests
(:func:`take_requests`), counts those petitions and caches the counts
(``services.worker.signatures.pipeline``).

Why no request is lost: each request is a row of its own, inserted by the transaction that changed the
count, so it becomes visible exactly when that change commits. The recount deletes the requests its
statement can see and only *then* counts, in a later statement whose READ COMMITTED snapshot sees every
change whose request it took. A request committed after that delete stays for the next tick. (Merging
requests into one row per petition, ``ON CONFLICT DO NOTHING``, lost them: a confirmation whose insert
found the earlier row did nothing, the worker took that row and counted before the confirmation
committed, and nothing asked again.)
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# pg_advisory_xact_lock key of the recount: "loom count"
COUNT_LOCK = 0x6C6F6F6D_636F756E


async def mark_for_recount(session: AsyncSession, petition_ids: set[uuid.UUID] | list[uuid.UUID]) -> None:
    """Ask the pipeline to recount these petitions once the caller's transaction commits. Always a new
    row, never merged into a pending request, which a recount may be taking right now."""
    if petition_ids:
        await session.execute(
            text("INSERT INTO petition_count_refresh (petition_id) SELECT unnest(CAST(:ids AS uuid[]))"),
            {"ids": list(set(petition_ids))},
        )


async def take_requests(session: AsyncSession) -> set[uuid.UUID]:
    """Take the recount lock and the pending requests, in the caller's transaction; returns the petitions
    to count. The lock is held until that transaction ends, after the counts are cached, so a recount that
    starts later counts later and caches later. Count in later statements of the same transaction: their
    snapshots see the changes that made these requests."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": COUNT_LOCK})
    taken = await session.scalars(text("DELETE FROM petition_count_refresh RETURNING petition_id"))
    return set(taken.all())
