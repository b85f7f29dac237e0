"""Queries of petition milestones: recording those reached (once, ever), the petitions' texts for the
mail, and who hears of them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

_RECORD = text(
    "INSERT INTO petition_milestones (petition_id, percent, count, goal) "
    "SELECT * FROM unnest(CAST(:petitions AS uuid[]), CAST(:percents AS int[]), CAST(:counts AS int[]), "
    "CAST(:goals AS int[])) ON CONFLICT DO NOTHING "
    "RETURNING petition_id, percent, count AS reached_count, goal"
)

_PETITIONS = text(
    "SELECT p.id, p.slug, p.campaign_id, p.translations AS petition_translations, "
    "p.default_language AS petition_language, c.translations AS campaign_translations, "
    "c.default_language AS campaign_language FROM petitions p JOIN campaigns c ON c.id = p.campaign_id "
    "WHERE p.id = ANY(:ids)"
)

# The campaign's coordinators (see services.core.milestones.service).
_COORDINATORS = text(
    "SELECT u.id, u.email FROM users u WHERE u.is_active AND (u.role = 'coordinator' OR "
    "(u.role = 'partner' AND u.organisation_id IN (SELECT cp.organisation_id FROM campaign_partners cp "
    "WHERE cp.campaign_id = :campaign AND cp.role = 'lead'))) ORDER BY u.id"
)


async def record(
    session: AsyncSession,
    petitions: Sequence[uuid.UUID],
    percents: Sequence[int],
    counts: Sequence[int],
    goals: Sequence[int],
) -> Sequence[Row[Any]]:
    """Insert the milestones (row by row: petition, percent, count, goal) not recorded before; the ones
    inserted (``petition_id``, ``percent``, ``reached_count``, ``goal``)."""
    params = {
        "petitions": list(petitions),
        "percents": list(percents),
        "counts": list(counts),
        "goals": list(goals),
    }
    return (await session.execute(_RECORD, params)).all()


async def petitions(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Row[Any]]:
    """The petitions' slugs, campaigns, texts and languages, by id."""
    return {row.id: row for row in await session.execute(_PETITIONS, {"ids": list(ids)})}


async def coordinators(session: AsyncSession, campaign_id: uuid.UUID) -> Sequence[Row[Any]]:
    """Active coordinators and the active partner users of the campaign's lead organisation (``id``,
    ``email``)."""
    return (await session.execute(_COORDINATORS, {"campaign": campaign_id})).all()
