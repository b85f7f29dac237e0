"""Queries of campaigns and petitions. Filtering and counting happen in SQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, delete, exists, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.core.campaigns.models import (
    Campaign,
    CampaignPartner,
    CampaignStatus,
    Petition,
    PetitionConsentVersion,
)
from services.core.campaigns.schemas import CampaignFilters, PetitionFilters
from services.core.db.unique import escape_like, is_uuid
from services.core.network.models import Organisation
from services.core.network.schemas import is_slug

PUBLIC_STATUSES = (CampaignStatus.published, CampaignStatus.closed)


def _by_ref(model: type[Campaign] | type[Petition], ref: str) -> ColumnElement[bool] | None:
    if is_uuid(ref):
        return model.id == uuid.UUID(ref)
    if is_slug(ref):
        return model.slug == ref
    return None


def campaign_visibility(all_statuses: bool) -> ColumnElement[bool]:
    return true() if all_statuses else Campaign.status.in_(PUBLIC_STATUSES)


def _text_matches(column: ColumnElement[Any] | InstrumentedAttribute[Any], q: str) -> ColumnElement[bool]:
    """``q`` anywhere in a JSONB column's text (titles, summaries and bodies in every language)."""
    return cast(column, String).ilike(f"%{escape_like(q)}%", escape="\\")


# --- campaigns --------------------------------------------------------------------------------------


async def get_campaign(session: AsyncSession, ref: str, *, for_update: bool = False) -> Campaign | None:
    condition = _by_ref(Campaign, ref)
    if condition is None:
        return None
    query = select(Campaign).where(condition)
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


def _partner_condition(ref: str) -> ColumnElement[bool]:
    partner = select(CampaignPartner.campaign_id).where(CampaignPartner.campaign_id == Campaign.id)
    if is_uuid(ref):
        partner = partner.where(CampaignPartner.organisation_id == uuid.UUID(ref))
    elif is_slug(ref):
        partner = partner.join(Organisation, Organisation.id == CampaignPartner.organisation_id).where(
            Organisation.slug == ref
        )
    else:
        return false()
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
                _text_matches(Campaign.target_companies, filters.q),
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


# --- petitions --------------------------------------------------------------------------------------


async def get_petition(
    session: AsyncSession, ref: str, *, for_update: bool = False
) -> tuple[Petition, Campaign] | None:
    condition = _by_ref(Petition, ref)
    if condition is None:
        return None
    query = select(Petition, Campaign).join(Campaign, Campaign.id == Petition.campaign_id).where(condition)
    if for_update:
        query = query.with_for_update(of=Petition)
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


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
        campaign = _by_ref(Campaign, filters.campaign)
        conditions.append(false() if campaign is None else campaign)
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
