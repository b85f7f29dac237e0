"""Recount requests: how a transaction that changes a petition's count asks the worker to count it again.

:func:`mark_for_recount` inserts one row per request in the changing transaction; the pipeline deletes the
requests it sees (:func:`take_requests`) and only then counts, so none is lost whatever the interleaving.
Why: docs/signatures.md, "Recounts".
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
