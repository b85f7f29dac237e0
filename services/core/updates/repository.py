"""Queries of campaign updates: the updates themselves, their messages' counts by state, and the batches
of recipients a send takes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Row, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.mail.models import EmailMessage, MessageState
from services.core.updates.models import CampaignUpdate


async def get_update(
    session: AsyncSession,
    update_id: uuid.UUID,
    *,
    campaign_id: uuid.UUID | None = None,
    for_update: bool = False,
) -> CampaignUpdate | None:
    """The update (of that campaign, when ``campaign_id`` is given)."""
    query = select(CampaignUpdate).where(CampaignUpdate.id == update_id)
    if campaign_id is not None:
        query = query.where(CampaignUpdate.campaign_id == campaign_id)
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def list_updates(session: AsyncSession, campaign_id: uuid.UUID) -> Sequence[CampaignUpdate]:
    """A campaign's updates, newest first (then by id)."""
    return (
        await session.scalars(
            select(CampaignUpdate)
            .where(CampaignUpdate.campaign_id == campaign_id)
            .order_by(CampaignUpdate.created_at.desc(), CampaignUpdate.id)
        )
    ).all()


async def message_counts(
    session: AsyncSession, update_ids: Sequence[uuid.UUID], kind: str
) -> list[tuple[uuid.UUID, MessageState, int]]:
    """How many of each update's messages (of ``kind``) are in each state."""
    rows = await session.execute(
        select(EmailMessage.reference_id, EmailMessage.state, func.count())
        .where(EmailMessage.reference_id.in_(update_ids), EmailMessage.kind == kind)
        .group_by(EmailMessage.reference_id, EmailMessage.state)
    )
    return [(reference, MessageState(state), n) for reference, state, n in rows if reference is not None]


# The next batch of recipients after the cursor, taken from each petition's signers in canonical-email
# order (the primary key's index), merged, and cut to the batch size: each batch costs an index range per
# petition, however far the send has gone.
_NEXT_PEOPLE = text(
    "SELECT k.email_canonical FROM unnest(CAST(:petitions AS uuid[])) AS pid(id) "
    "CROSS JOIN LATERAL ("
    "  SELECT ps.email_canonical FROM petition_signers ps JOIN signatures s ON s.id = ps.signature_id "
    "  WHERE ps.petition_id = pid.id AND ps.email_canonical > :cursor "
    "  AND s.confirmed_at IS NOT NULL AND s.opt_in AND s.erased_at IS NULL AND s.invalidation_id IS NULL "
    "  ORDER BY ps.email_canonical LIMIT :limit"
    ") AS k GROUP BY k.email_canonical ORDER BY k.email_canonical LIMIT :limit"
)
# Each person's address and language: from their latest signature on the campaign's petitions.
_ADDRESSES = text(
    "SELECT DISTINCT ON (s.email_canonical) s.email_canonical, s.email, s.language FROM signatures s "
    "WHERE s.email_canonical = ANY(:emails) AND s.petition_id = ANY(:petitions) AND s.email IS NOT NULL "
    "AND s.erased_at IS NULL ORDER BY s.email_canonical, s.created_at DESC"
)


async def next_recipients(
    session: AsyncSession, petitions: Sequence[uuid.UUID], cursor: str, limit: int
) -> list[str]:
    """The next ``limit`` people (canonical emails, in order, after ``cursor``) with a counted, confirmed,
    opted-in signature on one of ``petitions`` that is neither erased nor invalidated."""
    if not petitions:
        return []
    found = await session.scalars(
        _NEXT_PEOPLE, {"petitions": list(petitions), "cursor": cursor, "limit": limit}
    )
    return list(found.all())


async def addresses(
    session: AsyncSession, people: Sequence[str], petitions: Sequence[uuid.UUID]
) -> Sequence[Row[tuple[str, str, str | None]]]:
    """Each person's address and language (``email_canonical``, ``email``, ``language``)."""
    result = await session.execute(_ADDRESSES, {"emails": list(people), "petitions": list(petitions)})
    return result.all()
