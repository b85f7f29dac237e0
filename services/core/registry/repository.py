"""Queries of companies, facilities and field sources. Filtering and counting happen in SQL; names are
searched in the folded ``search_text`` (a trigram index serves the ILIKE where pg_trgm is installed)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select, text, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.db.unique import escape_like
from services.core.refs import Ref
from services.core.registry.identifiers import fold, is_os_id, normalise_os_id
from services.core.registry.models import Company, Facility, FieldSource, RecordType
from services.core.registry.schemas import CompanyFilters, FacilityFilters

# One lock for every change of a company's parent: two concurrent changes could otherwise each pass the
# cycle check and together make a cycle.
_PARENT_LOCK = 0x4C4F4F4D0011


def _matches(column: Any, q: str) -> ColumnElement[bool]:
    return column.ilike(f"%{escape_like(fold(q))}%", escape="\\")  # type: ignore[no-any-return]


async def _page(
    session: AsyncSession,
    query: Select[Any],
    condition: ColumnElement[bool],
    order: Sequence[Any],
    *,
    limit: int,
    offset: int,
) -> tuple[Sequence[Any], int]:
    total = await session.scalar(select(func.count()).select_from(query.where(condition).subquery()))
    items = (await session.scalars(query.where(condition).order_by(*order).limit(limit).offset(offset))).all()
    return items, total or 0


# --- companies --------------------------------------------------------------------------------------


async def get_company(session: AsyncSession, ref: Ref, *, for_update: bool = False) -> Company | None:
    if ref.names_nothing:
        return None
    query = select(Company).where(ref.where(Company))
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def companies_by_id(session: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Company]:
    wanted = set(ids)
    if not wanted:
        return {}
    return {c.id: c for c in await session.scalars(select(Company).where(Company.id.in_(wanted)))}


async def companies_by_key(session: AsyncSession, keys: Iterable[str]) -> dict[str, Company]:
    wanted = set(keys)
    if not wanted:
        return {}
    return {c.name_key: c for c in await session.scalars(select(Company).where(Company.name_key.in_(wanted)))}


async def insert_company_if_absent(session: AsyncSession, **values: Any) -> None:
    """A new company, unless one with its name key or slug exists (a concurrent request made it)."""
    await session.execute(insert(Company).values(**values).on_conflict_do_nothing())


async def list_companies(
    session: AsyncSession, filters: CompanyFilters, *, limit: int, offset: int
) -> tuple[Sequence[Company], int]:
    """A page of companies by name (then id), and how many match in all."""
    conditions: list[ColumnElement[bool]] = [true()]
    if filters.q:
        conditions.append(or_(_matches(Company.search_text, filters.q), Company.slug == filters.q.strip()))
    if filters.country:
        conditions.append(Company.hq_country == filters.country)
    if filters.kinds:
        conditions.append(Company.kind.in_(filters.kinds))
    if filters.parent is not None:
        parent = select(Company.id).where(filters.parent.where(Company)).scalar_subquery()
        conditions.append(Company.parent_id == parent)
    return await _page(
        session, select(Company), and_(*conditions), (Company.name, Company.id), limit=limit, offset=offset
    )


async def lock_parent_changes(session: AsyncSession) -> None:
    await session.execute(select(func.pg_advisory_xact_lock(literal(_PARENT_LOCK))))


async def ancestors(session: AsyncSession, company_id: uuid.UUID) -> list[uuid.UUID]:
    """The company's parent, its parent's parent, …, nearest first (a cycle, which the service never
    lets happen, would stop at the first repeat)."""
    rows = await session.execute(
        text(
            "WITH RECURSIVE up(id, depth) AS ("
            " SELECT parent_id, 1 FROM companies WHERE id = :id AND parent_id IS NOT NULL"
            " UNION SELECT c.parent_id, up.depth + 1 FROM companies c JOIN up ON c.id = up.id"
            " WHERE c.parent_id IS NOT NULL AND up.depth < 1000"
            ") SELECT id FROM up ORDER BY depth"
        ),
        {"id": company_id},
    )
    seen: list[uuid.UUID] = []
    for (ancestor,) in rows:
        if ancestor in seen:
            break
        seen.append(ancestor)
    return seen


# --- facilities -------------------------------------------------------------------------------------


async def get_facility(
    session: AsyncSession, *, id: uuid.UUID | None = None, os_id: str | None = None, for_update: bool = False
) -> tuple[Facility, Company | None] | None:
    """The facility and its parent company, in one query."""
    query = select(Facility, Company).outerjoin(Company, Company.id == Facility.parent_company_id)
    if id is not None:
        query = query.where(Facility.id == id)
    elif os_id is not None:
        query = query.where(Facility.os_id == os_id)
    else:
        return None
    if for_update:
        query = query.with_for_update(of=Facility)
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


async def list_facilities(
    session: AsyncSession, filters: FacilityFilters, *, limit: int, offset: int
) -> tuple[Sequence[Facility], int]:
    """A page of facilities by country and name (then id), and how many match in all."""
    conditions: list[ColumnElement[bool]] = [true()]
    if filters.q:
        match = _matches(Facility.search_text, filters.q)
        if is_os_id(filters.q):
            match = or_(match, Facility.os_id == normalise_os_id(filters.q))
        conditions.append(match)
    if filters.countries:
        conditions.append(Facility.country.in_(filters.countries))
    if filters.os_id is not None:
        conditions.append(Facility.os_id == filters.os_id)
    if filters.company is not None:
        company = select(Company.id).where(filters.company.where(Company)).scalar_subquery()
        conditions.append(Facility.parent_company_id == company)
    if filters.closed is not None:
        conditions.append(Facility.closed.is_(filters.closed))
    return await _page(
        session,
        select(Facility),
        and_(*conditions),
        (Facility.country, Facility.name, Facility.id),
        limit=limit,
        offset=offset,
    )


# --- field sources ----------------------------------------------------------------------------------


async def add_sources(session: AsyncSession, sources: Sequence[FieldSource]) -> None:
    if sources:
        session.add_all(sources)
        await session.flush()


async def list_sources(
    session: AsyncSession,
    record_type: RecordType,
    record_id: uuid.UUID,
    *,
    field: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[FieldSource], int]:
    condition = and_(FieldSource.record_type == record_type, FieldSource.record_id == record_id)
    if field is not None:
        condition = and_(condition, FieldSource.field == field)
    return await _page(
        session, select(FieldSource), condition, (FieldSource.id.desc(),), limit=limit, offset=offset
    )
