"""Supplier-list disclosures: staff upload a company's published list; the worker reads it into rows and
matches them to facilities batch by batch (each batch one transaction with its progress), remembering
every decision by the row's cleaned identity, and links the company to each facility. Services take the
session first and never commit. docs/registry.md, "Disclosures".
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.core import outbox
from services.core.config import Settings
from services.core.refs import Ref
from services.core.registry import disclosure_repository as repo
from services.core.registry import matching, policy, repository, service
from services.core.registry.errors import (
    DisclosureDuplicate,
    DisclosureNotFound,
    DisclosureTooManyRows,
    DisclosureUnreadable,
    FacilityNotFound,
    ReviewFacilityNotFound,
    ReviewNotFound,
)
from services.core.registry.identifiers import name_key
from services.core.registry.models import (
    Company,
    Disclosure,
    DisclosureRow,
    DisclosureState,
    MatchMethod,
    RowOutcome,
)
from services.core.registry.schemas import (
    CompanyBrief,
    DisclosurePage,
    DisclosureRead,
    FacilityCreate,
    ReviewConfirm,
    ReviewPage,
    ReviewRead,
    RowProblems,
)
from services.core.registry.service import Source
from services.core.registry.supplier_lists import (
    ListRow,
    TooManyRows,
    UnreadableList,
    detect_format,
    read_list,
)
from services.core.users.security import Principal

PROCESS_TASK = "registry.process_disclosure"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


# --- reading ----------------------------------------------------------------------------------------


async def _reads(
    session: AsyncSession, items: Sequence[Disclosure], company: Company
) -> list[DisclosureRead]:
    ids = [d.id for d in items]
    outcomes = await repo.outcome_counts(session, ids)
    problems = await repo.problem_counts(session, ids)
    return [
        DisclosureRead(
            id=d.id,
            company=CompanyBrief.model_validate(company),
            url=d.url,
            retrieved_on=d.retrieved_on,
            filename=d.filename,
            format=d.format,
            sha256=d.sha256,
            size_bytes=d.size_bytes,
            row_count=d.row_count,
            machine_readable=d.machine_readable,
            state=d.state,
            rows_done=d.rows_done,
            outcomes={RowOutcome(k): v for k, v in outcomes[d.id].items()},
            problems={k: RowProblems(**v) for k, v in problems[d.id].items()},
            error=d.error,
            created_at=d.created_at,
            processed_at=d.processed_at,
        )
        for d in items
    ]


async def _company(session: AsyncSession, ref: Ref) -> Company:
    company = await repository.get_company(session, ref)
    if company is None:
        from services.core.registry.errors import CompanyNotFound

        raise CompanyNotFound(f"No company {ref.text!r}.")
    return company


def _disclosure_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise DisclosureNotFound(f"No disclosure {text!r}.") from None


async def get_disclosure(
    session: AsyncSession, principal: Principal | None, ref: Ref, disclosure: str
) -> DisclosureRead:
    policy.ensure_sees_provenance(principal)
    company = await _company(session, ref)
    found = await repo.get(session, _disclosure_id(disclosure), company_id=company.id)
    if found is None:
        raise DisclosureNotFound(f"No disclosure {disclosure!r} of {company.slug}.")
    return (await _reads(session, [found], company))[0]


async def list_disclosures(
    session: AsyncSession, principal: Principal | None, ref: Ref, *, limit: int, offset: int
) -> DisclosurePage:
    policy.ensure_sees_provenance(principal)
    company = await _company(session, ref)
    items, total = await repo.page(session, company.id, limit=limit, offset=offset)
    return DisclosurePage(
        items=await _reads(session, items, company), total=total, limit=limit, offset=offset
    )


# --- uploading --------------------------------------------------------------------------------------


async def upload(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    ref: Ref,
    *,
    content: bytes,
    filename: str | None,
    url: str,
    retrieved_on: date,
) -> DisclosureRead:
    """Store the snapshot and queue the worker's job. The list is read once here, to refuse what the
    worker could not read (422) and to count the rows; the same content again is a 409 naming the
    disclosure that has it."""
    company = await _company(session, ref)
    sha256 = hashlib.sha256(content).hexdigest()
    existing = await repo.by_sha(session, company.id, sha256)
    if existing is not None:
        raise DisclosureDuplicate(
            f"This list was uploaded before: disclosure {existing.id}.", disclosure_id=str(existing.id)
        )
    try:
        fmt = detect_format(content, filename)
        rows = read_list(content, fmt, max_rows=settings.disclosure_max_rows)
    except TooManyRows as exc:
        raise DisclosureTooManyRows(str(exc)) from exc
    except UnreadableList as exc:
        raise DisclosureUnreadable(str(exc)) from exc
    disclosure = Disclosure(
        id=uuid.uuid4(),
        company_id=company.id,
        url=url,
        retrieved_on=retrieved_on,
        filename=filename,
        format=fmt,
        sha256=sha256,
        size_bytes=len(content),
        content=content,
        row_count=len(rows),
        machine_readable=True,
        state=DisclosureState.queued,
        uploaded_by=principal.id if principal.kind == "user" else None,
    )
    session.add(disclosure)
    await session.flush()
    outbox.enqueue(session, PROCESS_TASK, disclosure_id=disclosure.id)
    await session.refresh(disclosure)
    return (await _reads(session, [disclosure], company))[0]


# --- the worker's part ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchResult:
    """Rows matched by this step; ``done``: the disclosure is finished, ``event`` then being the data of
    its ``disclosure.processed`` webhook event (emitted by the worker's task, in the same transaction)."""

    rows: int
    done: bool
    event: dict[str, Any] | None = None


EVENT = "disclosure.processed"


class _Candidates:
    """Facilities of the batch's countries, by exact key and per country for fuzzy matching."""

    def __init__(self, rows: Sequence[tuple[uuid.UUID, str, str, str]]) -> None:
        self.exact: dict[str, uuid.UUID] = {}
        self.by_country: dict[str, list[matching.Candidate]] = {}
        self.names: dict[str, list[str]] = {}  # the cleaned names, in the same order
        for facility_id, name, address, country in rows:
            self.add(facility_id, name, address, country)

    def add(self, facility_id: uuid.UUID, name: str, address: str | None, country: str) -> None:
        self.exact.setdefault(matching.exact_key(name, address, country), facility_id)
        candidate = matching.Candidate.of(facility_id, name, address)
        self.by_country.setdefault(country, []).append(candidate)
        self.names.setdefault(country, []).append(candidate.name)


async def process_batch(session: AsyncSession, settings: Settings, disclosure_id: uuid.UUID) -> BatchResult:
    """One step of a disclosure, in the caller's transaction: read the file into rows (first step), or
    match the next batch of rows and move the cursor; enqueue the next step, or finish (the result then
    carries the ``disclosure.processed`` event's data). A step that fails rolls back whole, so a crashed
    worker resumes at the cursor without duplicating facilities or links."""
    disclosure = await repo.get(session, disclosure_id, for_update=True)
    if disclosure is None or disclosure.state in (DisclosureState.processed, DisclosureState.failed):
        return BatchResult(0, True)
    await repo.lock_company_matching(session, disclosure.company_id)
    if disclosure.state == DisclosureState.queued:
        return await _read_rows(session, settings, disclosure)
    rows = await repo.next_rows(session, disclosure.id, disclosure.cursor, settings.disclosure_batch_size)
    await _match(session, settings, disclosure, rows)
    if rows:
        disclosure.cursor = rows[-1].row_number
        disclosure.rows_done += len(rows)
    if len(rows) < settings.disclosure_batch_size:
        return BatchResult(len(rows), True, await _finish(session, disclosure))
    outbox.enqueue(session, PROCESS_TASK, disclosure_id=disclosure.id)
    await session.flush()
    return BatchResult(len(rows), False)


async def _read_rows(session: AsyncSession, settings: Settings, disclosure: Disclosure) -> BatchResult:
    try:
        content = await repo.content(session, disclosure.id)
        rows = read_list(content, disclosure.format, max_rows=settings.disclosure_max_rows)
    except UnreadableList as exc:
        disclosure.state = DisclosureState.failed
        disclosure.machine_readable = False
        disclosure.error = str(exc)
        return BatchResult(0, True, await _finish(session, disclosure))
    await repo.add_rows(session, [_row_values(disclosure.id, row) for row in rows])
    disclosure.row_count = len(rows)
    disclosure.state = DisclosureState.processing
    outbox.enqueue(session, PROCESS_TASK, disclosure_id=disclosure.id)
    await session.flush()
    return BatchResult(0, False)


def _row_values(disclosure_id: uuid.UUID, row: ListRow) -> dict[str, Any]:
    key = matching.row_key(row.name, row.address, row.country) if row.name and row.country else None
    return {
        "disclosure_id": disclosure_id,
        "row_number": row.number,
        "row_key": key,
        "fields": row.fields(),
        "problems": row.problems,
        "outcome": RowOutcome.pending if key else RowOutcome.invalid,
    }


async def _match(
    session: AsyncSession, settings: Settings, disclosure: Disclosure, rows: Sequence[DisclosureRow]
) -> None:
    """Match the rows, create the new facilities in one go, then write the rows' outcomes (after the
    facilities they point at exist), the decisions and the sourcing links."""
    pending = [r for r in rows if r.outcome == RowOutcome.pending and r.row_key]
    if not pending:
        return
    known = await repo.decisions(session, disclosure.company_id, {r.row_key for r in pending if r.row_key})
    candidates = _Candidates(await repo.facility_candidates(session, {r.fields["country"] for r in pending}))
    results: list[tuple[DisclosureRow, dict[str, Any]]] = []
    new_facilities: list[tuple[uuid.UUID, dict[str, Any]]] = []
    for row in pending:
        assert row.row_key is not None
        name, address, country = row.fields["name"], row.fields.get("address"), row.fields["country"]
        result: dict[str, Any]
        facility_id = known.get(row.row_key)
        if facility_id is not None:
            result = {
                "outcome": RowOutcome.matched,
                "method": MatchMethod.decision,
                "facility_id": facility_id,
            }
            results.append((row, result))
            continue
        facility_id = candidates.exact.get(matching.exact_key(name, address, country))
        best = None
        if facility_id is not None:
            result = {"outcome": RowOutcome.matched, "method": MatchMethod.exact, "score": 100.0}
        else:
            best = matching.best_match(
                name,
                address,
                candidates.by_country.get(country, []),
                candidates.names.get(country, []),
                floor=settings.disclosure_match_review,
            )
            if best is not None and best.score >= settings.disclosure_match_auto:
                facility_id = best.facility_id
                result = {"outcome": RowOutcome.matched, "method": MatchMethod.fuzzy, "score": best.score}
            elif best is not None and best.score >= settings.disclosure_match_review:
                result = {"outcome": RowOutcome.review, "candidate_id": best.facility_id, "score": best.score}
                results.append((row, result))
                continue
            else:
                facility_id = uuid.uuid4()
                new_facilities.append((facility_id, row.fields))
                candidates.add(facility_id, name, address, country)
                result = {"outcome": RowOutcome.created, "score": best.score if best else None}
        result["facility_id"] = known[row.row_key] = facility_id
        result["decide"] = True
        results.append((row, result))
    await _new_facilities(session, disclosure, new_facilities)
    linked: list[uuid.UUID] = []
    decisions: list[dict[str, Any]] = []
    for row, result in results:
        decide = result.pop("decide", False)
        for attribute, value in result.items():
            setattr(row, attribute, value)
        if row.facility_id is not None:
            linked.append(row.facility_id)
        if decide:
            decisions.append(_decision(disclosure, row, None))
    await session.flush()
    await repo.remember(session, decisions)
    await repo.link(session, disclosure.company_id, linked, disclosure.id, disclosure.retrieved_on)


def _decision(disclosure: Disclosure, row: DisclosureRow, user_id: uuid.UUID | None) -> dict[str, Any]:
    return {
        "company_id": disclosure.company_id,
        "row_key": row.row_key,
        "facility_id": row.facility_id,
        "outcome": row.outcome,
        "disclosure_id": disclosure.id,
        "decided_by": user_id,
    }


async def _new_facilities(
    session: AsyncSession, disclosure: Disclosure, rows: Sequence[tuple[uuid.UUID, dict[str, Any]]]
) -> None:
    """Facilities made from rows, all at once (see ``_new_facility`` for the rules)."""
    if not rows:
        return
    keys = {name_key(f["parent_company"]) for _, f in rows if f.get("parent_company")}
    parents = await repository.companies_by_key(session, keys)
    items = []
    for facility_id, fields in rows:
        parent = parents.get(name_key(fields["parent_company"])) if fields.get("parent_company") else None
        items.append((facility_id, _facility_data(fields), parent.id if parent else None))
    await service.create_facilities(session, items, _source(disclosure))


def _facility_data(fields: dict[str, Any]) -> FacilityCreate:
    data = {
        "name": fields["name"],
        "address": fields.get("address") or "",
        "country": fields["country"],
        "product_types": fields.get("product_types") or [],
        "worker_band": fields.get("worker_band"),
    }
    try:
        return FacilityCreate.model_validate(data)
    except ValidationError:  # a name the API would refuse (e.g. only punctuation): keep what is sure
        return FacilityCreate.model_validate({"name": fields["name"][:300], "country": fields["country"]})


def _source(disclosure: Disclosure) -> Source:
    return Source(disclosure_id=disclosure.id, label=f"supplier list {disclosure.url}"[:500])


async def _new_facility(session: AsyncSession, disclosure: Disclosure, fields: dict[str, Any]) -> uuid.UUID:
    """A facility made from the row's fields, each value's source being the disclosure. The parent
    company is set when a company of that name exists (lists name groups loosely: none is created)."""
    parent = None
    if fields.get("parent_company"):
        key = name_key(fields["parent_company"])
        parent = (await repository.companies_by_key(session, [key])).get(key)
    data: dict[str, Any] = {
        "name": fields["name"],
        "address": fields.get("address") or "",
        "country": fields["country"],
        "product_types": fields.get("product_types") or [],
        "worker_band": fields.get("worker_band"),
    }
    if parent is not None:
        data["parent_company"] = str(parent.id)
    try:
        body = FacilityCreate.model_validate(data)
    except ValidationError:  # a name the API would refuse (e.g. only punctuation): keep what is sure
        body = FacilityCreate.model_validate({"name": fields["name"][:300], "country": fields["country"]})
    source = Source(disclosure_id=disclosure.id, label=f"supplier list {disclosure.url}"[:500])
    created = await service.create_facility(session, None, body, source=source)
    return created.id


async def _finish(session: AsyncSession, disclosure: Disclosure) -> dict[str, Any]:
    """Mark the disclosure finished; the data of its webhook event."""
    if disclosure.state != DisclosureState.failed:
        disclosure.state = DisclosureState.processed
    disclosure.processed_at = datetime.now(UTC)
    await session.flush()
    counts = (await repo.outcome_counts(session, [disclosure.id]))[disclosure.id]
    return {
        "disclosure_id": disclosure.id,
        "company_id": disclosure.company_id,
        "state": disclosure.state.value,
        "row_count": disclosure.row_count,
        "outcomes": counts,
        "retrieved_on": disclosure.retrieved_on,
    }


# --- the review queue -------------------------------------------------------------------------------


def _review_id(text: str) -> tuple[uuid.UUID, int]:
    disclosure, _, number = text.partition(":")
    try:
        return uuid.UUID(disclosure), int(number)
    except ValueError:
        raise ReviewNotFound(f"No review {text!r}.") from None


async def review_queue(
    session: AsyncSession, principal: Principal | None, company: Ref | None, *, limit: int, offset: int
) -> ReviewPage:
    policy.ensure_sees_provenance(principal)
    company_id = None
    if company is not None:
        found = await repository.get_company(session, company)
        if found is None:
            return ReviewPage(items=[], total=0, limit=limit, offset=offset)
        company_id = found.id
    items, total = await repo.review_page(session, company_id, limit=limit, offset=offset)
    facilities = {}
    for row, _ in items:
        if row.candidate_id is not None and row.candidate_id not in facilities:
            try:
                facilities[row.candidate_id] = await service.get_facility(session, str(row.candidate_id))
            except FacilityNotFound:
                continue
    return ReviewPage(
        items=[
            ReviewRead(
                id=f"{row.disclosure_id}:{row.row_number}",
                company=CompanyBrief.model_validate(company_row),
                disclosure_id=row.disclosure_id,
                row_number=row.row_number,
                fields=row.fields,
                candidate=facilities.get(row.candidate_id) if row.candidate_id else None,
                score=row.score,
            )
            for row, company_row in items
        ],
        total=total,
        limit=limit,
        offset=offset,
    )


async def _open_review(session: AsyncSession, review: str) -> tuple[DisclosureRow, Disclosure]:
    disclosure_id, number = _review_id(review)
    found = await repo.review_row(session, disclosure_id, number)
    if found is None:
        raise ReviewNotFound(f"No row {review!r} waits for review (decided already, or none).")
    return found


async def confirm(
    session: AsyncSession, principal: Principal, review: str, body: ReviewConfirm
) -> dict[str, Any]:
    """The row is the proposed facility (or the one named): linked, and remembered."""
    row, disclosure = await _open_review(session, review)
    await repo.lock_company_matching(session, disclosure.company_id)
    facility_id = body.facility or row.candidate_id
    if facility_id is None or await repository.get_facility(session, id=facility_id) is None:
        raise ReviewFacilityNotFound("Name the facility the row is (`facility`): the proposed one is gone.")
    return await _decide(session, principal, row, disclosure, RowOutcome.confirmed, facility_id)


async def reject(session: AsyncSession, principal: Principal, review: str) -> dict[str, Any]:
    """The row is not the proposed facility: a new facility is made from it, and that is remembered."""
    row, disclosure = await _open_review(session, review)
    await repo.lock_company_matching(session, disclosure.company_id)
    facility_id = await _new_facility(session, disclosure, row.fields)
    return await _decide(session, principal, row, disclosure, RowOutcome.rejected, facility_id)


async def _decide(
    session: AsyncSession,
    principal: Principal,
    row: DisclosureRow,
    disclosure: Disclosure,
    outcome: RowOutcome,
    facility_id: uuid.UUID,
) -> dict[str, Any]:
    user_id = principal.id if principal.kind == "user" else None
    row.outcome, row.facility_id = outcome, facility_id
    row.decided_by, row.decided_at = user_id, datetime.now(UTC)
    await session.flush()
    assert row.row_key is not None
    await repo.remember(session, [_decision(disclosure, row, user_id)])
    await repo.settle_same_rows(session, disclosure.company_id, row.row_key, outcome, facility_id, user_id)
    await repo.link(session, disclosure.company_id, [facility_id], disclosure.id, disclosure.retrieved_on)
    return {
        "disclosure_id": disclosure.id,
        "row_number": row.row_number,
        "fields": row.fields,
        "problems": row.problems,
        "outcome": row.outcome,
        "method": row.method,
        "facility_id": facility_id,
        "score": row.score,
    }
