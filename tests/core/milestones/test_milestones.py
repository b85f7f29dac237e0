"""Milestones, detected where the pipeline refreshes counts: each configured percentage of a petition's
goal is recorded once, ever, and mailed to the campaign's coordinators (coordinators and the lead
organisation's partner users); the tick returns the new ones (for the outbound webhook)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.campaigns.models import CampaignPartner, CampaignStatus, CountPolicy, PartnerRole, Petition
from services.core.config import Settings
from services.core.mail.models import EmailMessage, MessageCategory
from services.core.milestones import service as milestones
from services.core.milestones.models import PetitionMilestone
from services.core.signatures import counts
from services.core.signatures.recount import mark_for_recount
from services.core.users.models import Role
from services.core.webhooks.models import WebhookEvent
from services.worker.signatures import pipeline
from tests.factories import make_organisation, make_petition, make_signature, make_user

Tick = Callable[..., Awaitable[pipeline.TickResult]]


@pytest.fixture
def tick(app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> Tick:
    """One pipeline tick in the test's transaction (``tick(milestone_percents=[…])`` to change settings)."""

    async def run(**changes: object) -> pipeline.TickResult:
        return await pipeline.run_once(sessionmaker, app.state.queue, settings.model_copy(update=changes))

    return run


async def _petition(db: AsyncSession, status: CampaignStatus = CampaignStatus.published) -> Petition:
    return await make_petition(db, campaign_status=status, count_policy=CountPolicy.all_unique, goal=4)


async def _sign(db: AsyncSession, petition: Petition, n: int) -> None:
    for _ in range(n):
        await make_signature(db, petition)
    await db.commit()


async def _mail(db: AsyncSession, petition: Petition) -> list[EmailMessage]:
    return list(
        (
            await db.scalars(
                select(EmailMessage)
                .where(EmailMessage.kind == "milestone", EmailMessage.reference_id == petition.id)
                .order_by(EmailMessage.dedup_key)
            )
        ).all()
    )


async def test_each_milestone_once_to_the_campaigns_coordinators(
    db: AsyncSession, settings: Settings, tick: Tick
) -> None:
    petition = await _petition(db)
    lead = await make_organisation(db)
    partner = await make_organisation(db)
    db.add(CampaignPartner(campaign_id=petition.campaign_id, organisation_id=lead.id, role=PartnerRole.lead))
    db.add(
        CampaignPartner(
            campaign_id=petition.campaign_id, organisation_id=partner.id, role=PartnerRole.partner
        )
    )
    coordinator = await make_user(db, Role.coordinator)
    lead_user = await make_user(db, Role.partner, organisation=lead)
    partner_user = await make_user(db, Role.partner, organisation=partner)  # not the lead: not told
    campaigner = await make_user(db, Role.campaigner)  # not a coordinator
    retired = await make_user(db, Role.coordinator)
    retired.is_active = False
    await db.commit()

    await _sign(db, petition, 1)
    assert (await tick()).milestones == []
    await _sign(db, petition, 1)
    reached = (await tick()).milestones
    assert [(m.petition_id, m.percent, m.count, m.goal) for m in reached] == [(petition.id, 50, 2, 4)]
    assert reached[0].campaign_id == petition.campaign_id

    mail = await _mail(db, petition)
    told = {m.to_address for m in mail}
    assert {coordinator.email, lead_user.email} <= told
    assert not {partner_user.email, campaigner.email, retired.email} & told
    mine = next(m for m in mail if m.to_address == coordinator.email)
    assert mine.category == MessageCategory.staff
    assert mine.dedup_key == f"milestone:{petition.id}:50:{coordinator.id}"
    assert "reached 50 % of its goal" in mine.subject
    assert "2 signatures of 4" in mine.text_body

    await _sign(db, petition, 3)  # past 100 %
    assert [m.percent for m in (await tick()).milestones] == [100]
    # recounting never repeats one, nor does detecting the same counts again
    await mark_for_recount(db, {petition.id})
    await db.commit()
    assert (await tick()).milestones == []
    fresh = await counts.compute(db, [petition.id])
    assert await milestones.detect(db, settings, fresh) == []
    rows = (
        await db.scalars(select(PetitionMilestone).where(PetitionMilestone.petition_id == petition.id))
    ).all()
    assert sorted(r.percent for r in rows) == [50, 100]
    assert len([m for m in await _mail(db, petition) if m.to_address == coordinator.email]) == 2
    # and one `petition.milestone_reached` webhook event each, without personal data
    events = (
        await db.scalars(
            select(WebhookEvent)
            .where(WebhookEvent.type == "petition.milestone_reached")
            .where(WebhookEvent.data["petition_id"].astext == str(petition.id))
            .order_by(WebhookEvent.key)
        )
    ).all()
    assert [(e.key, e.data["milestone"], e.data["count"]) for e in events] == [
        (f"petition.milestone_reached:{petition.id}:100", 100, 5),
        (f"petition.milestone_reached:{petition.id}:50", 50, 2),
    ]
    assert events[0].data == {
        "petition_id": str(petition.id),
        "petition_slug": petition.slug,
        "campaign_id": str(petition.campaign_id),
        "milestone": 100,
        "goal": 4,
        "count": 5,
    }


async def test_a_falling_and_rising_count_does_not_repeat_a_milestone(db: AsyncSession, tick: Tick) -> None:
    petition = await _petition(db)
    await _sign(db, petition, 2)
    assert [m.percent for m in (await tick()).milestones] == [50]
    await db.execute(
        text(
            "UPDATE signatures SET state = 'duplicate' WHERE petition_id = :p AND id = "
            "(SELECT id FROM signatures WHERE petition_id = :p ORDER BY created_at DESC LIMIT 1)"
        ),
        {"p": petition.id},
    )
    await mark_for_recount(db, {petition.id})
    await db.commit()
    assert (await tick()).milestones == []
    await _sign(db, petition, 1)
    assert (await tick()).milestones == []


async def test_configured_percentages_drafts_and_petitions_without_a_goal(
    db: AsyncSession, tick: Tick
) -> None:
    petition = await _petition(db)
    draft = await _petition(db, CampaignStatus.draft)
    no_goal = await make_petition(db, count_policy=CountPolicy.all_unique, goal=None)
    for each in (petition, draft, no_goal):
        await _sign(db, each, 1)
    reached = (await tick(milestone_percents=[25, 50, 100])).milestones
    assert [(m.petition_id, m.percent) for m in reached] == [(petition.id, 25)]


def test_crossed() -> None:
    assert milestones.crossed(499, 1000, [50, 100]) == []
    assert milestones.crossed(500, 1000, [50, 100]) == [50]
    assert milestones.crossed(2500, 1000, [50, 100, 200]) == [50, 100, 200]
    assert milestones.crossed(10, None, [50]) == []
    assert milestones.crossed(10, 0, [50]) == []


def test_milestone_percentages_are_validated() -> None:
    assert Settings(milestone_percents=[100, 50, 50]).milestone_percents == [50, 100]
    with pytest.raises(ValueError, match="between 1 and 1000"):
        Settings(milestone_percents=[0])
