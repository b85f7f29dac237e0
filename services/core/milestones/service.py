"""Detecting milestones where the pipeline refreshes counts, and telling the campaign's coordinators.

:func:`detect` inserts each goal percentage a public petition's count reached (``ON CONFLICT DO
NOTHING``: once, ever); each new one is mailed to the coordinators and the lead organisation's partner
users. README, "Milestones"; docs/signatures.md, "Milestones".
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.mail.messages import title_in
from services.core.mail.models import MessageCategory
from services.core.mail.queue import NewMessage, queue_many
from services.core.mail.rendering import TEMPLATES, render
from services.core.milestones import repository
from services.core.signatures.counts import CachedCount
from services.core.signatures.identity import InvalidEmail, canonical_email
from services.core.webhooks import events
from services.core.webhooks.models import EventType

log = logging.getLogger(__name__)

KIND = "milestone"


@dataclass(frozen=True)
class Milestone:
    """A milestone just reached (returned once, by the call that recorded it)."""

    petition_id: uuid.UUID
    campaign_id: uuid.UUID
    slug: str
    percent: int
    count: int
    goal: int


def milestone_context(
    settings: Settings,
    *,
    petition_title: str,
    campaign_title: str,
    slug: str,
    percent: int,
    count: int,
    goal: int,
) -> dict[str, Any]:
    return {
        "petition_title": petition_title,
        "campaign_title": campaign_title,
        "petition_url": settings.link(settings.petition_url, slug=slug),
        "percent": percent,
        "count": count,
        "goal": goal,
    }


def crossed(count: int, goal: int | None, percents: Iterable[int]) -> list[int]:
    """The percentages of ``goal`` that ``count`` has reached."""
    if not goal or goal <= 0:
        return []
    return [percent for percent in percents if count * 100 >= percent * goal]


async def coordinators(session: AsyncSession, campaign_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    """Who hears of the campaign's milestones (ids and addresses); an address mail cannot go to is left
    out rather than allowed to stop the pipeline's tick."""
    found: list[tuple[uuid.UUID, str]] = []
    for row in await repository.coordinators(session, campaign_id):
        try:
            canonical_email(row.email)
        except InvalidEmail:
            log.warning("milestone mail: user %s has an address mail cannot go to", row.id)
            continue
        found.append((row.id, row.email))
    return found


async def _announce(session: AsyncSession, milestone: Milestone) -> None:
    """The ``petition.milestone_reached`` webhook event, in the transaction that records the milestone
    (so it is emitted once, ever, like the milestone itself)."""
    await events.emit(
        session,
        EventType.petition_milestone_reached,
        {
            "petition_id": milestone.petition_id,
            "petition_slug": milestone.slug,
            "campaign_id": milestone.campaign_id,
            "milestone": milestone.percent,
            "goal": milestone.goal,
            "count": milestone.count,
        },
        key=f"petition.milestone_reached:{milestone.petition_id}:{milestone.percent}",
    )


async def detect(session: AsyncSession, settings: Settings, counts: Iterable[CachedCount]) -> list[Milestone]:
    """Record the milestones these fresh counts reach for the first time, queue the coordinators'
    messages, and return the new milestones (in the caller's transaction)."""
    petitions: list[uuid.UUID] = []
    percents: list[int] = []
    values: list[int] = []
    goals: list[int] = []
    for cached in counts:
        if not cached.public:
            continue  # a draft's test signatures must not use up its milestones
        count = cached.count
        for percent in crossed(count.count, count.goal, settings.milestone_percents):
            petitions.append(count.petition)
            percents.append(percent)
            values.append(count.count)
            goals.append(count.goal or 0)
    if not petitions:
        return []
    recorded = await repository.record(session, petitions, percents, values, goals)
    if not recorded:
        return []
    info = await repository.petitions(session, [r.petition_id for r in recorded])
    reached: list[Milestone] = []
    mail: list[NewMessage] = []
    staff: dict[uuid.UUID, list[tuple[uuid.UUID, str]]] = {}
    for row in sorted(recorded, key=lambda r: (str(r.petition_id), r.percent)):
        petition = info[row.petition_id]
        milestone = Milestone(
            row.petition_id, petition.campaign_id, petition.slug, row.percent, row.reached_count, row.goal
        )
        reached.append(milestone)
        await _announce(session, milestone)
        if petition.campaign_id not in staff:
            staff[petition.campaign_id] = await coordinators(session, petition.campaign_id)
        language = TEMPLATES.choose_language(KIND, petition.campaign_language, None)
        rendered = render(
            KIND,
            milestone_context(
                settings,
                petition_title=title_in(petition.petition_translations, language, petition.petition_language),
                campaign_title=title_in(petition.campaign_translations, language, petition.campaign_language),
                slug=petition.slug,
                percent=row.percent,
                count=row.reached_count,
                goal=row.goal,
            ),
            language=language,
        )
        for user_id, email in staff[petition.campaign_id]:
            mail.append(
                NewMessage.of(
                    rendered,
                    dedup_key=f"milestone:{row.petition_id}:{row.percent}:{user_id}",
                    kind=KIND,
                    category=MessageCategory.staff,
                    to_address=email,
                    reference_id=row.petition_id,
                )
            )
    await queue_many(session, mail)
    return reached
