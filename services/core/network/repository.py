"""Queries of the network directory. Filtering, counting and aggregation happen in SQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

from sqlalchemy import ColumnElement, and_, delete, distinct, exists, func, or_, select, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.db.unique import escape_like
from services.core.network.models import (
    Coalition,
    CoalitionMembership,
    MembershipStatus,
    Organisation,
)
from services.core.network.schemas import OrganisationFilters
from services.core.refs import Ref

# --- organisations ----------------------------------------------------------------------------------


async def get_organisation(
    session: AsyncSession, ref: Ref, *, for_update: bool = False
) -> Organisation | None:
    if ref.names_nothing:
        return None
    query = select(Organisation).where(ref.where(Organisation))
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


def visibility(all_statuses: bool, own_organisation: uuid.UUID | None) -> ColumnElement[bool]:
    """Which organisations a caller may see: all, or the active ones plus its own."""
    if all_statuses:
        return true()
    active = Organisation.status == MembershipStatus.active
    if own_organisation is not None:
        return or_(active, Organisation.id == own_organisation)
    return active


def _coalition_condition(ref: Ref) -> ColumnElement[bool]:
    membership = select(CoalitionMembership.organisation_id).where(
        CoalitionMembership.organisation_id == Organisation.id
    )
    if ref.id is not None:
        membership = membership.where(CoalitionMembership.coalition_id == ref.id)
    else:
        membership = membership.join(Coalition, Coalition.id == CoalitionMembership.coalition_id).where(
            ref.where(Coalition)
        )
    return exists(membership)


def _filter_conditions(filters: OrganisationFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.countries:
        conditions.append(Organisation.country.in_(filters.countries))
    if filters.kinds:
        conditions.append(Organisation.kind.in_(filters.kinds))
    if filters.statuses:
        conditions.append(Organisation.status.in_(filters.statuses))
    if filters.coalition is not None:
        conditions.append(_coalition_condition(filters.coalition))
    if filters.q:
        pattern = f"%{escape_like(filters.q)}%"
        conditions.append(
            or_(
                Organisation.name.ilike(pattern, escape="\\"),
                Organisation.city.ilike(pattern, escape="\\"),
                Organisation.description.ilike(pattern, escape="\\"),
            )
        )
    return conditions


async def list_organisations(
    session: AsyncSession,
    filters: OrganisationFilters,
    *,
    seen_by: ColumnElement[bool],
    limit: int,
    offset: int,
) -> tuple[Sequence[Organisation], int]:
    """A page of organisations ordered by (name, id) — a total order, so pages never overlap or skip
    rows — and how many match in all."""
    condition = and_(seen_by, *_filter_conditions(filters))
    total = await session.scalar(select(func.count()).select_from(Organisation).where(condition))
    page = (
        select(Organisation)
        .where(condition)
        .order_by(Organisation.name, Organisation.id)
        .limit(limit)
        .offset(offset)
    )
    items = (await session.scalars(page)).all()
    return items, total or 0


async def coalitions_of(
    session: AsyncSession, organisation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Coalition]]:
    """The coalitions of each organisation, in one query."""
    result: dict[uuid.UUID, list[Coalition]] = {org_id: [] for org_id in organisation_ids}
    if not organisation_ids:
        return result
    rows = await session.execute(
        select(CoalitionMembership.organisation_id, Coalition)
        .join(Coalition, Coalition.id == CoalitionMembership.coalition_id)
        .where(CoalitionMembership.organisation_id.in_(organisation_ids))
        .order_by(Coalition.name, Coalition.id)
    )
    for organisation_id, coalition in rows:
        result[organisation_id].append(coalition)
    return result


# --- coalitions -------------------------------------------------------------------------------------


async def get_coalition(session: AsyncSession, ref: Ref, *, for_update: bool = False) -> Coalition | None:
    if ref.names_nothing:
        return None
    query = select(Coalition).where(ref.where(Coalition))
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def list_coalitions(
    session: AsyncSession, *, regional: bool | None, limit: int, offset: int
) -> tuple[Sequence[Coalition], int]:
    condition: ColumnElement[bool] = true() if regional is None else Coalition.is_regional.is_(regional)
    total = await session.scalar(select(func.count()).select_from(Coalition).where(condition))
    items = (
        await session.scalars(
            select(Coalition)
            .where(condition)
            .order_by(Coalition.name, Coalition.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return items, total or 0


async def upsert_membership(
    session: AsyncSession,
    coalition_id: uuid.UUID,
    organisation_id: uuid.UUID,
    *,
    joined_on_given: bool,
    joined_on: date | None,
) -> tuple[CoalitionMembership, bool]:
    """Add the membership if missing (race-free); set ``joined_on`` if given. Returns it and whether it
    was created."""
    inserted = await session.scalar(
        insert(CoalitionMembership)
        .values(coalition_id=coalition_id, organisation_id=organisation_id, joined_on=joined_on)
        .on_conflict_do_nothing(index_elements=["coalition_id", "organisation_id"])
        .returning(CoalitionMembership.organisation_id)
    )
    created = inserted is not None
    membership = await session.scalar(
        select(CoalitionMembership)
        .where(
            CoalitionMembership.coalition_id == coalition_id,
            CoalitionMembership.organisation_id == organisation_id,
        )
        .execution_options(populate_existing=True)
    )
    assert membership is not None
    if not created and joined_on_given and membership.joined_on != joined_on:
        membership.joined_on = joined_on
        await session.flush()
    return membership, created


async def delete_membership(
    session: AsyncSession, coalition_id: uuid.UUID, organisation_id: uuid.UUID
) -> bool:
    result = await session.execute(
        delete(CoalitionMembership)
        .where(
            CoalitionMembership.coalition_id == coalition_id,
            CoalitionMembership.organisation_id == organisation_id,
        )
        .returning(CoalitionMembership.organisation_id)
    )
    return result.first() is not None


# --- figures ----------------------------------------------------------------------------------------


async def network_totals(session: AsyncSession) -> tuple[int, int]:
    """Active organisations and their distinct countries."""
    row = (
        await session.execute(
            select(func.count(), func.count(distinct(Organisation.country))).where(
                Organisation.status == MembershipStatus.active
            )
        )
    ).one()
    return int(row[0]), int(row[1])


async def coalition_totals(session: AsyncSession) -> Sequence[tuple[Coalition, int, int]]:
    """Every coalition with its active member organisations and their distinct countries (zero when
    it has none), in one grouped query."""
    active_member = and_(
        Organisation.id == CoalitionMembership.organisation_id,
        Organisation.status == MembershipStatus.active,
    )
    rows = await session.execute(
        select(Coalition, func.count(Organisation.id), func.count(distinct(Organisation.country)))
        .outerjoin(CoalitionMembership, CoalitionMembership.coalition_id == Coalition.id)
        .outerjoin(Organisation, active_member)
        .group_by(Coalition.id)
        .order_by(Coalition.name, Coalition.id)
    )
    return [(coalition, int(orgs), int(countries)) for coalition, orgs, countries in rows]
