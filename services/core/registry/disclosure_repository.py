"""Queries of disclosures, their rows, remembered decisions and sourcing links."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.registry.models import (
    Company,
    Disclosure,
    DisclosureRow,
    Facility,
    MatchDecision,
    RowOutcome,
    SourcingLink,
)

# Matching a company's rows takes this lock (with the company's id): two lists of one company never
# create the same facility twice.
_COMPANY_LOCK = 0x4C4F4F4D0021


async def lock_company_matching(session: AsyncSession, company_id: uuid.UUID) -> None:
    key = (_COMPANY_LOCK ^ (company_id.int & 0x7FFFFFFFFFFF)) & 0x7FFFFFFFFFFFFFFF
    await session.execute(select(func.pg_advisory_xact_lock(literal(key))))


async def by_sha(session: AsyncSession, company_id: uuid.UUID, sha256: str) -> Disclosure | None:
    return await session.scalar(
        select(Disclosure).where(Disclosure.company_id == company_id, Disclosure.sha256 == sha256)
    )


async def get(
    session: AsyncSession,
    disclosure_id: uuid.UUID,
    *,
    company_id: uuid.UUID | None = None,
    for_update: bool = False,
) -> Disclosure | None:
    query = select(Disclosure).where(Disclosure.id == disclosure_id)
    if company_id is not None:
        query = query.where(Disclosure.company_id == company_id)
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def content(session: AsyncSession, disclosure_id: uuid.UUID) -> bytes:
    """The file as uploaded (deferred on the model: reads of progress never load it)."""
    return await session.scalar(select(Disclosure.content).where(Disclosure.id == disclosure_id)) or b""


async def page(
    session: AsyncSession, company_id: uuid.UUID, *, limit: int, offset: int
) -> tuple[Sequence[Disclosure], int]:
    condition = Disclosure.company_id == company_id
    total = await session.scalar(select(func.count()).select_from(Disclosure).where(condition))
    items = await session.scalars(
        select(Disclosure)
        .where(condition)
        .order_by(Disclosure.created_at.desc(), Disclosure.id)
        .limit(limit)
        .offset(offset)
    )
    return items.all(), total or 0


async def outcome_counts(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
    rows = await session.execute(
        select(DisclosureRow.disclosure_id, DisclosureRow.outcome, func.count())
        .where(DisclosureRow.disclosure_id.in_(ids))
        .group_by(DisclosureRow.disclosure_id, DisclosureRow.outcome)
    )
    counts: dict[uuid.UUID, dict[str, int]] = {i: {} for i in ids}
    for disclosure_id, outcome, n in rows:
        counts[disclosure_id][outcome] = n
    return counts


async def problem_counts(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, dict[str, int]]]:
    problem = func.jsonb_array_elements(DisclosureRow.problems).table_valued("value").alias("p")
    field = problem.c.value.op("->>")("field")
    kind = problem.c.value.op("->>")("problem")
    rows = await session.execute(
        select(DisclosureRow.disclosure_id, field, kind, func.count())
        .select_from(DisclosureRow)
        .join(problem, literal(True))
        .where(DisclosureRow.disclosure_id.in_(ids))
        .group_by(DisclosureRow.disclosure_id, field, kind)
    )
    counts: dict[uuid.UUID, dict[str, dict[str, int]]] = {i: {} for i in ids}
    for disclosure_id, name, what, n in rows:
        counts[disclosure_id].setdefault(name, {})[what] = n
    return counts


async def add_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 2_000):  # asyncpg allows 32,767 parameters a statement
        await session.execute(insert(DisclosureRow), rows[start : start + 2_000])


async def next_rows(
    session: AsyncSession, disclosure_id: uuid.UUID, after: int, limit: int
) -> Sequence[DisclosureRow]:
    result = await session.scalars(
        select(DisclosureRow)
        .where(DisclosureRow.disclosure_id == disclosure_id, DisclosureRow.row_number > after)
        .order_by(DisclosureRow.row_number)
        .limit(limit)
    )
    return result.all()


async def decisions(
    session: AsyncSession, company_id: uuid.UUID, keys: Iterable[str]
) -> dict[str, uuid.UUID]:
    wanted = set(keys)
    if not wanted:
        return {}
    rows = await session.execute(
        select(MatchDecision.row_key, MatchDecision.facility_id).where(
            MatchDecision.company_id == company_id, MatchDecision.row_key.in_(wanted)
        )
    )
    return {row[0]: row[1] for row in rows}


async def remember(session: AsyncSession, values: list[dict[str, Any]]) -> None:
    """Decisions, the latest winning (a confirmation or rejection replaces an automatic link)."""
    if values:
        statement = insert(MatchDecision).values(values)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[MatchDecision.company_id, MatchDecision.row_key],
                set_={
                    "facility_id": statement.excluded.facility_id,
                    "outcome": statement.excluded.outcome,
                    "disclosure_id": statement.excluded.disclosure_id,
                    "decided_by": statement.excluded.decided_by,
                    "decided_at": func.now(),
                },
            )
        )


async def link(
    session: AsyncSession,
    company_id: uuid.UUID,
    facility_ids: Iterable[uuid.UUID],
    disclosure_id: uuid.UUID,
    seen: date,
) -> None:
    """The company sources from these facilities, as this disclosure (retrieved on ``seen``) says."""
    values = [
        {
            "company_id": company_id,
            "facility_id": facility_id,
            "first_disclosure_id": disclosure_id,
            "last_disclosure_id": disclosure_id,
            "first_seen": seen,
            "last_seen": seen,
        }
        for facility_id in dict.fromkeys(facility_ids)
    ]
    if not values:
        return
    statement = insert(SourcingLink).values(values)
    current = SourcingLink.__table__.c
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[SourcingLink.company_id, SourcingLink.facility_id],
            set_={
                "first_seen": func.least(current.first_seen, statement.excluded.first_seen),
                "last_seen": func.greatest(current.last_seen, statement.excluded.last_seen),
                "last_disclosure_id": statement.excluded.last_disclosure_id,
            },
        )
    )


async def facility_candidates(
    session: AsyncSession, countries: Iterable[str]
) -> Sequence[tuple[uuid.UUID, str, str, str]]:
    """Id, name, address and country of every open facility in these countries."""
    wanted = sorted(set(countries))
    if not wanted:
        return []
    rows = await session.execute(
        select(Facility.id, Facility.name, Facility.address, Facility.country).where(
            Facility.country.in_(wanted), Facility.closed.is_(False)
        )
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def review_page(
    session: AsyncSession, company_id: uuid.UUID | None, *, limit: int, offset: int
) -> tuple[Sequence[tuple[DisclosureRow, Company]], int]:
    condition = DisclosureRow.outcome == RowOutcome.review
    query = (
        select(DisclosureRow, Company)
        .join(Disclosure, Disclosure.id == DisclosureRow.disclosure_id)
        .join(Company, Company.id == Disclosure.company_id)
        .where(condition)
    )
    if company_id is not None:
        query = query.where(Disclosure.company_id == company_id)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.execute(
        query.order_by(Disclosure.created_at, DisclosureRow.disclosure_id, DisclosureRow.row_number)
        .limit(limit)
        .offset(offset)
    )
    return [(r[0], r[1]) for r in rows], total or 0


async def review_row(
    session: AsyncSession, disclosure_id: uuid.UUID, row_number: int
) -> tuple[DisclosureRow, Disclosure] | None:
    row = (
        await session.execute(
            select(DisclosureRow, Disclosure)
            .join(Disclosure, Disclosure.id == DisclosureRow.disclosure_id)
            .where(
                DisclosureRow.disclosure_id == disclosure_id,
                DisclosureRow.row_number == row_number,
                DisclosureRow.outcome == RowOutcome.review,
            )
            .with_for_update(of=DisclosureRow)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def settle_same_rows(
    session: AsyncSession,
    company_id: uuid.UUID,
    row_key: str,
    outcome: RowOutcome,
    facility_id: uuid.UUID,
    user_id: uuid.UUID | None,
) -> None:
    """Other rows of the company with the same identity that wait for review take the same decision."""
    disclosures = select(Disclosure.id).where(Disclosure.company_id == company_id)
    await session.execute(
        update(DisclosureRow)
        .where(
            DisclosureRow.disclosure_id.in_(disclosures),
            DisclosureRow.row_key == row_key,
            DisclosureRow.outcome == RowOutcome.review,
        )
        .values(outcome=outcome, facility_id=facility_id, decided_by=user_id, decided_at=func.now())
    )


async def sourcing(
    session: AsyncSession, facility_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[SourcingLink, Company]]]:
    """Which companies source from each facility: one query."""
    found: dict[uuid.UUID, list[tuple[SourcingLink, Company]]] = {i: [] for i in facility_ids}
    if not facility_ids:
        return found
    rows = await session.execute(
        select(SourcingLink, Company)
        .join(Company, Company.id == SourcingLink.company_id)
        .where(SourcingLink.facility_id.in_(facility_ids))
        .order_by(Company.name, Company.id)
    )
    for link_row, company in rows:
        found[link_row.facility_id].append((link_row, company))
    return found
