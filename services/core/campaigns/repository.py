"""Queries of campaigns and petitions. Filtering and counting happen in SQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, delete, exists, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.core.campaigns.models import (
    Campaign,
    CampaignPartner,
    CampaignTarget,
    Petition,
    PetitionConsentVersion,
)
from services.core.campaigns.policy import PUBLIC_STATUSES
from services.core.campaigns.schemas import CampaignFilters, PetitionFilters
from services.core.db.unique import escape_like
from services.core.network.models import Organisation
from services.core.refs import Ref
from services.core.registry.identifiers import fold
from services.core.registry.models import Company


def campaign_visibility(all_statuses: bool) -> ColumnElement[bool]:
    return true() if all_statuses else Campaign.status.in_(PUBLIC_STATUSES)


def _text_matches(column: ColumnElement[Any] | InstrumentedAttribute[Any], q: str) -> ColumnElement[bool]:
    """``q`` anywhere in a JSONB column's text (titles, summaries and bodies in every language)."""
    return cast(column, String).ilike(f"%{escape_like(q)}%", escape="\\")


# --- campaigns --------------------------------------------------------------------------------------


def _target_matches(q: str) -> ColumnElement[bool]:
    """A company the campaign targets has ``q`` in its name or aliases (ignoring case and accents)."""
    return exists(
        select(CampaignTarget.campaign_id)
        .join(Company, Company.id == CampaignTarget.company_id)
        .where(
            CampaignTarget.campaign_id == Campaign.id,
            Company.search_text.ilike(f"%{escape_like(fold(q))}%", escape="\\"),
        )
    )


async def get_campaign(session: AsyncSession, ref: Ref, *, for_update: bool = False) -> Campaign | None:
    if ref.names_nothing:
        return None
    query = select(Campaign).where(ref.where(Campaign))
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


def _partner_condition(ref: Ref) -> ColumnElement[bool]:
    partner = select(CampaignPartner.campaign_id).where(CampaignPartner.campaign_id == Campaign.id)
    if ref.id is not None:
        partner = partner.where(CampaignPartner.organisation_id == ref.id)
    else:
        partner = partner.join(Organisation, Organisation.id == CampaignPartner.organisation_id).where(
            ref.where(Organisation)
        )
    return exists(partner)


async def list_campaigns(
    session: AsyncSession,
    filters: CampaignFilters,
    *,
    seen_by: ColumnElement[bool],
    limit: int,
    offset: int,
) -> tuple[Sequence[Campaign], int]:
    """A page of campaigns, newest first (then by id, a total order), and how many match in all."""
    conditions: list[ColumnElement[bool]] = [seen_by]
    if filters.statuses:
        conditions.append(Campaign.status.in_(filters.statuses))
    if filters.organisation is not None:
        conditions.append(_partner_condition(filters.organisation))
    if filters.q:
        conditions.append(
            or_(
                Campaign.slug.ilike(f"%{escape_like(filters.q)}%", escape="\\"),
                _text_matches(Campaign.translations, filters.q),
                _target_matches(filters.q),
            )
        )
    condition = and_(*conditions)
    total = await session.scalar(select(func.count()).select_from(Campaign).where(condition))
    items = (
        await session.scalars(
            select(Campaign)
            .where(condition)
            .order_by(Campaign.created_at.desc(), Campaign.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return items, total or 0


async def partners_of(
    session: AsyncSession, campaign_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[CampaignPartner, Organisation]]]:
    """Each campaign's partners with their organisations, in order, in one query."""
    result: dict[uuid.UUID, list[tuple[CampaignPartner, Organisation]]] = {c: [] for c in campaign_ids}
    if not campaign_ids:
        return result
    rows = await session.execute(
        select(CampaignPartner, Organisation)
        .join(Organisation, Organisation.id == CampaignPartner.organisation_id)
        .where(CampaignPartner.campaign_id.in_(campaign_ids))
        .order_by(CampaignPartner.campaign_id, CampaignPartner.position)
    )
    for partner, organisation in rows:
        result[partner.campaign_id].append((partner, organisation))
    return result


async def replace_partners(
    session: AsyncSession, campaign_id: uuid.UUID, partners: Sequence[CampaignPartner]
) -> None:
    await session.execute(delete(CampaignPartner).where(CampaignPartner.campaign_id == campaign_id))
    session.add_all(partners)
    await session.flush()


async def targets_of(
    session: AsyncSession, campaign_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Company]]:
    """Each campaign's targeted companies, in order, in one query."""
    result: dict[uuid.UUID, list[Company]] = {c: [] for c in campaign_ids}
    if not campaign_ids:
        return result
    rows = await session.execute(
        select(CampaignTarget.campaign_id, Company)
        .join(Company, Company.id == CampaignTarget.company_id)
        .where(CampaignTarget.campaign_id.in_(campaign_ids))
        .order_by(CampaignTarget.campaign_id, CampaignTarget.position)
    )
    for campaign_id, company in rows:
        result[campaign_id].append(company)
    return result


async def replace_targets(
    session: AsyncSession, campaign_id: uuid.UUID, company_ids: Sequence[uuid.UUID]
) -> None:
    await session.execute(delete(CampaignTarget).where(CampaignTarget.campaign_id == campaign_id))
    session.add_all(
        CampaignTarget(campaign_id=campaign_id, company_id=company_id, position=position)
        for position, company_id in enumerate(company_ids)
    )
    await session.flush()


# --- petitions --------------------------------------------------------------------------------------


async def get_petition(
    session: AsyncSession, ref: Ref, *, for_update: bool = False
) -> tuple[Petition, Campaign] | None:
    if ref.names_nothing:
        return None
    query = (
        select(Petition, Campaign)
        .join(Campaign, Campaign.id == Petition.campaign_id)
        .where(ref.where(Petition))
    )
    if for_update:
        query = query.with_for_update(of=Petition)
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def petition_id(session: AsyncSession, ref: Ref) -> uuid.UUID | None:
    if ref.names_nothing:
        return None
    return await session.scalar(select(Petition.id).where(ref.where(Petition)))


async def list_petitions(
    session: AsyncSession,
    filters: PetitionFilters,
    *,
    seen_by: ColumnElement[bool],
    limit: int,
    offset: int,
) -> tuple[Sequence[tuple[Petition, Campaign]], int]:
    conditions: list[ColumnElement[bool]] = [seen_by]
    if filters.campaign is not None:
        conditions.append(filters.campaign.where(Campaign))
    if filters.q:
        conditions.append(
            or_(
                Petition.slug.ilike(f"%{escape_like(filters.q)}%", escape="\\"),
                _text_matches(Petition.translations, filters.q),
            )
        )
    condition = and_(*conditions)
    joined = select(Petition, Campaign).join(Campaign, Campaign.id == Petition.campaign_id)
    total = await session.scalar(
        select(func.count())
        .select_from(Petition)
        .join(Campaign, Campaign.id == Petition.campaign_id)
        .where(condition)
    )
    rows = await session.execute(
        joined.where(condition).order_by(Petition.created_at.desc(), Petition.id).limit(limit).offset(offset)
    )
    return [(p, c) for p, c in rows], total or 0


async def consent_versions(session: AsyncSession, petition_id: uuid.UUID) -> Sequence[PetitionConsentVersion]:
    return (
        await session.scalars(
            select(PetitionConsentVersion)
            .where(PetitionConsentVersion.petition_id == petition_id)
            .order_by(PetitionConsentVersion.version.desc())
        )
    ).all()


async def petition_ids(session: AsyncSession, campaign_id: uuid.UUID) -> Sequence[uuid.UUID]:
    return (await session.scalars(select(Petition.id).where(Petition.campaign_id == campaign_id))).all()
