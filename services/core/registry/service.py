"""Companies and facilities: creating and changing them with each value's source, groups without
cycles, search, and the companies campaigns target. Who may do what is in ``policy``; services take the
session first and never commit."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.core.db.unique import free_slug, is_uuid, save_unique
from services.core.refs import SLUG_MAX_LENGTH, Ref
from services.core.registry import disclosure_repository, policy, repository
from services.core.registry.errors import (
    CompanyIdentifierTaken,
    CompanyNameTaken,
    CompanyNotFound,
    CompanyParentCycle,
    CompanySlugTaken,
    CoordinatesIncomplete,
    FacilityNotFound,
    OsIdTaken,
    ParentCompanyNotFound,
    TargetCompanyNotFound,
)
from services.core.registry.identifiers import is_os_id, name_key, normalise_os_id, search_text
from services.core.registry.models import Company, Facility, FieldSource, RecordType
from services.core.registry.schemas import (
    CompanyBrief,
    CompanyCreate,
    CompanyFilters,
    CompanyPage,
    CompanyRead,
    CompanyUpdate,
    FacilityCreate,
    FacilityFilters,
    FacilityPage,
    FacilityRead,
    FacilityUpdate,
    FacilityWithSourcing,
    FieldSourcePage,
    FieldSourceRead,
    SourcingRead,
)
from services.core.users.security import Principal

_COMPANY_ERRORS: Mapping[str, Callable[[], Exception]] = {
    "uq_companies_slug": lambda: CompanySlugTaken("Another company already uses this slug."),
    "uq_companies_name_key": lambda: CompanyNameTaken(
        "A company with this name (ignoring case, accents and punctuation) already exists."
    ),
    "uq_companies_lei": lambda: CompanyIdentifierTaken("Another company has this LEI.", field="lei"),
    "uq_companies_wikirate_id": lambda: CompanyIdentifierTaken(
        "Another company has this WikiRate id.", field="wikirate_id"
    ),
    "uq_companies_os_hub_contributor_id": lambda: CompanyIdentifierTaken(
        "Another company has this Open Supply Hub contributor id.", field="os_hub_contributor_id"
    ),
}
_FACILITY_ERRORS: Mapping[str, Callable[[], Exception]] = {
    "uq_facilities_os_id": lambda: OsIdTaken("Another facility already has this OS ID."),
}
_TARGET_LABEL = "campaign target"


@dataclass(frozen=True)
class Source:
    """Who or what gives values: a user or an API key, with an optional label; later a disclosure."""

    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    label: str | None = None
    disclosure_id: uuid.UUID | None = None

    @classmethod
    def of(cls, principal: Principal | None, label: str | None = None) -> Source:
        if principal is None:
            return cls(label=label)
        if principal.kind == "api_key":
            return cls(api_key_id=principal.id, label=label)
        return cls(user_id=principal.id, label=label)


def _json(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


async def _record(
    session: AsyncSession,
    record_type: RecordType,
    record_id: uuid.UUID,
    values: Mapping[str, Any],
    source: Source,
) -> None:
    """Keep where each of these field values came from."""
    await repository.add_sources(
        session,
        [
            FieldSource(
                record_type=record_type,
                record_id=record_id,
                field=field,
                value=_json(value),
                user_id=source.user_id,
                api_key_id=source.api_key_id,
                source_label=source.label,
                disclosure_id=source.disclosure_id,
            )
            for field, value in values.items()
        ],
    )


def _changed(record: Any, changes: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in changes.items() if getattr(record, name) != value}


# --- companies --------------------------------------------------------------------------------------


async def _read_companies(session: AsyncSession, companies: Sequence[Company]) -> list[CompanyRead]:
    parents = await repository.companies_by_id(session, [c.parent_id for c in companies if c.parent_id])
    return [
        CompanyRead(
            id=c.id,
            slug=c.slug,
            name=c.name,
            aliases=list(c.aliases),
            kind=c.kind,
            hq_country=c.hq_country,
            website=c.website,
            parent=CompanyBrief.model_validate(parents[c.parent_id]) if c.parent_id else None,
            lei=c.lei,
            wikirate_id=c.wikirate_id,
            os_hub_contributor_id=c.os_hub_contributor_id,
            created_at=c.created_at,
            updated_at=c.updated_at,
        )
        for c in companies
    ]


async def _company(session: AsyncSession, ref: Ref, *, for_update: bool = False) -> Company:
    company = await repository.get_company(session, ref, for_update=for_update)
    if company is None:
        raise CompanyNotFound(f"No company {ref.text!r}.")
    return company


async def _parent(session: AsyncSession, ref: Ref) -> Company:
    parent = await repository.get_company(session, ref)
    if parent is None:
        raise ParentCompanyNotFound(f"No company {ref.text!r}.")
    return parent


async def list_companies(
    session: AsyncSession, filters: CompanyFilters, *, limit: int, offset: int
) -> CompanyPage:
    items, total = await repository.list_companies(session, filters, limit=limit, offset=offset)
    return CompanyPage(items=await _read_companies(session, items), total=total, limit=limit, offset=offset)


async def get_company(session: AsyncSession, ref: Ref) -> CompanyRead:
    return (await _read_companies(session, [await _company(session, ref)]))[0]


async def create_company(session: AsyncSession, principal: Principal, data: CompanyCreate) -> CompanyRead:
    parent = await _parent(session, data.parent) if data.parent is not None else None
    slug = data.slug or await free_slug(
        session, Company.slug, data.name, "company", max_length=SLUG_MAX_LENGTH
    )
    values = data.model_dump(include=data.model_fields_set - {"source", "parent", "slug"})
    company = Company(
        id=uuid.uuid4(),
        slug=slug,
        name=data.name,
        name_key=name_key(data.name),
        aliases=data.aliases,
        kind=data.kind,
        hq_country=data.hq_country,
        website=data.website,
        parent_id=parent.id if parent else None,
        lei=data.lei,
        wikirate_id=data.wikirate_id,
        os_hub_contributor_id=data.os_hub_contributor_id,
        search_text=search_text(data.name, *data.aliases),
    )
    await save_unique(session, company, _COMPANY_ERRORS)
    values.update(name=company.name, slug=company.slug)
    if parent is not None:
        values["parent"] = parent.id
    await _record(session, RecordType.company, company.id, values, Source.of(principal, data.source))
    return (await _read_companies(session, [company]))[0]


async def _ensure_no_cycle(session: AsyncSession, company: Company, parent: Company) -> None:
    await repository.lock_parent_changes(session)
    if parent.id == company.id or company.id in await repository.ancestors(session, parent.id):
        raise CompanyParentCycle(f"{parent.slug} is {company.slug} or belongs to it.")


async def update_company(
    session: AsyncSession, principal: Principal | None, ref: Ref, patch: CompanyUpdate
) -> CompanyRead:
    """Only the fields sent change; the source of each changed value is kept."""
    changes = patch.changes()
    label = changes.pop("source", None)
    company = await _company(session, ref, for_update=True)
    if "parent" in changes:
        parent_ref = changes.pop("parent")
        parent = None if parent_ref is None else await _parent(session, parent_ref)
        if parent is not None:
            await _ensure_no_cycle(session, company, parent)
        changes["parent_id"] = parent.id if parent else None
    changed = _changed(company, changes)
    derived: dict[str, Any] = {}
    if "name" in changed:
        derived["name_key"] = name_key(changed["name"])
    if "name" in changed or "aliases" in changed:
        derived["search_text"] = search_text(
            changed.get("name", company.name), *changed.get("aliases", company.aliases)
        )

    def apply() -> None:
        for name, value in {**changed, **derived}.items():
            setattr(company, name, value)

    await save_unique(session, company, _COMPANY_ERRORS, apply)
    if "parent_id" in changed:
        changed["parent"] = changed.pop("parent_id")
    await _record(session, RecordType.company, company.id, changed, Source.of(principal, label))
    return (await _read_companies(session, [company]))[0]


async def company_sources(
    session: AsyncSession,
    principal: Principal | None,
    ref: Ref,
    field: str | None,
    *,
    limit: int,
    offset: int,
) -> FieldSourcePage:
    policy.ensure_sees_provenance(principal)
    company = await _company(session, ref)
    return await list_sources(session, RecordType.company, company.id, field, limit=limit, offset=offset)


async def list_sources(
    session: AsyncSession,
    record_type: RecordType,
    record_id: uuid.UUID,
    field: str | None,
    *,
    limit: int,
    offset: int,
) -> FieldSourcePage:
    """A record's field sources, newest first (callers check who may see them)."""
    items, total = await repository.list_sources(
        session, record_type, record_id, field=field, limit=limit, offset=offset
    )
    return FieldSourcePage(
        items=[FieldSourceRead.model_validate(s) for s in items], total=total, limit=limit, offset=offset
    )


async def target_companies(
    session: AsyncSession, principal: Principal, refs: Sequence[Ref], names: Sequence[str]
) -> list[Company]:
    """The companies a campaign targets: those named by id or slug (each must exist), then those named
    by name — the company of that name, created when there is none. In order, each once."""
    found: list[Company] = []
    for ref in refs:
        company = await repository.get_company(session, ref)
        if company is None:
            raise TargetCompanyNotFound(f"No company {ref.text!r}.")
        found.append(company)
    keys = {name_key(name): name for name in names}
    existing = await repository.companies_by_key(session, keys)
    for key, name in keys.items():
        if key not in existing:
            existing[key] = await _company_named(session, principal, name, key)
    found.extend(existing[name_key(name)] for name in names)
    return list({c.id: c for c in found}.values())


async def _company_named(session: AsyncSession, principal: Principal, name: str, key: str) -> Company:
    """A new company of this name, or the one a concurrent request just made."""
    for attempt in range(3):
        slug = await free_slug(session, Company.slug, name, "company", max_length=SLUG_MAX_LENGTH)
        if attempt:
            slug = f"{slug[: SLUG_MAX_LENGTH - 9]}-{uuid.uuid4().hex[:8]}"
        company_id = uuid.uuid4()
        await repository.insert_company_if_absent(
            session, id=company_id, slug=slug, name=name, name_key=key, search_text=search_text(name)
        )
        company = (await repository.companies_by_key(session, [key])).get(key)
        if company is not None:
            if company.id == company_id:
                values = {"name": name, "slug": slug}
                await _record(
                    session, RecordType.company, company.id, values, Source.of(principal, _TARGET_LABEL)
                )
            return company
    raise CompanySlugTaken("No free slug was found for this company's name; create it first.")


async def company_briefs(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, CompanyBrief]:
    return {
        i: CompanyBrief.model_validate(c) for i, c in (await repository.companies_by_id(session, ids)).items()
    }


# --- facilities -------------------------------------------------------------------------------------


async def _read_facilities(
    session: AsyncSession, facilities: Sequence[Facility], companies: dict[uuid.UUID, Company] | None = None
) -> list[FacilityRead]:
    """Responses for these facilities; their parent companies are read unless given."""
    if companies is None:
        ids = [f.parent_company_id for f in facilities if f.parent_company_id]
        companies = await repository.companies_by_id(session, ids)
    return [
        FacilityRead(
            id=f.id,
            name=f.name,
            native_name=f.native_name,
            address=f.address,
            country=f.country,
            latitude=f.latitude,
            longitude=f.longitude,
            parent_company=(
                CompanyBrief.model_validate(companies[f.parent_company_id]) if f.parent_company_id else None
            ),
            facility_type=f.facility_type,
            processing_types=list(f.processing_types),
            product_types=list(f.product_types),
            worker_band=f.worker_band,
            closed=f.closed,
            aliases=list(f.aliases),
            os_id=f.os_id,
            created_at=f.created_at,
            updated_at=f.updated_at,
        )
        for f in facilities
    ]


async def _facility(
    session: AsyncSession, ref: str, *, for_update: bool = False
) -> tuple[Facility, dict[uuid.UUID, Company]]:
    """By id, or by OS ID (with or without hyphens); with its parent company by id (if it has one)."""
    found = None
    if len(ref) >= 32 and is_uuid(ref):
        found = await repository.get_facility(session, id=uuid.UUID(ref), for_update=for_update)
    elif is_os_id(ref):
        found = await repository.get_facility(session, os_id=normalise_os_id(ref), for_update=for_update)
    if found is None:
        raise FacilityNotFound(f"No facility {ref!r}.")
    facility, parent = found
    return facility, {parent.id: parent} if parent is not None else {}


async def list_facilities(
    session: AsyncSession, filters: FacilityFilters, *, limit: int, offset: int
) -> FacilityPage:
    items, total = await repository.list_facilities(session, filters, limit=limit, offset=offset)
    return FacilityPage(items=await _read_facilities(session, items), total=total, limit=limit, offset=offset)


async def get_facility(session: AsyncSession, ref: str) -> FacilityRead:
    facility, companies = await _facility(session, ref)
    return (await _read_facilities(session, [facility], companies))[0]


async def get_facility_with_sourcing(session: AsyncSession, ref: str) -> FacilityWithSourcing:
    """The facility and the companies whose supplier lists name it (one more query)."""
    facility, companies = await _facility(session, ref)
    read = (await _read_facilities(session, [facility], companies))[0]
    links = (await disclosure_repository.sourcing(session, [facility.id]))[facility.id]
    return FacilityWithSourcing(
        **read.model_dump(),
        sourced_by=[
            SourcingRead(
                company=CompanyBrief.model_validate(company),
                first_seen=link.first_seen,
                last_seen=link.last_seen,
            )
            for link, company in links
        ],
    )


def _facility_search_text(name: str, native_name: str | None, aliases: Sequence[str]) -> str:
    return search_text(name, native_name, *aliases)


async def create_facility(
    session: AsyncSession, principal: Principal | None, data: FacilityCreate, *, source: Source | None = None
) -> FacilityRead:
    """A new facility; its values' source is the caller and the body's label, or ``source`` when given
    (the worker's, from a disclosure)."""
    parent = await _parent(session, data.parent_company) if data.parent_company is not None else None
    fields = data.model_dump(mode="json", exclude={"source", "parent_company"})
    facility = Facility(
        id=uuid.uuid4(),
        **fields,
        parent_company_id=parent.id if parent else None,
        search_text=_facility_search_text(data.name, data.native_name, data.aliases),
    )
    await save_unique(session, facility, _FACILITY_ERRORS)
    values = {k: v for k, v in fields.items() if k in data.model_fields_set or k == "name"}
    if parent is not None:
        values["parent_company"] = parent.id
    source = source or Source.of(principal, data.source)
    await _record(session, RecordType.facility, facility.id, values, source)
    return (await _read_facilities(session, [facility]))[0]


async def create_facilities(
    session: AsyncSession, items: Sequence[tuple[uuid.UUID, FacilityCreate, uuid.UUID | None]], source: Source
) -> None:
    """Many new facilities at once (the worker's, from a supplier list): ``(id, data, parent company id)``
    each, without OS IDs (no uniqueness to check); one flush for the rows, one for their sources."""
    facilities: list[Facility] = []
    sources: list[FieldSource] = []
    for facility_id, data, parent_id in items:
        fields = data.model_dump(mode="json", exclude={"source", "parent_company", "os_id"})
        facilities.append(
            Facility(
                id=facility_id,
                **fields,
                parent_company_id=parent_id,
                search_text=_facility_search_text(data.name, data.native_name, data.aliases),
            )
        )
        values = {k: v for k, v in fields.items() if k in data.model_fields_set or k == "name"}
        if parent_id is not None:
            values["parent_company"] = parent_id
        sources.extend(
            FieldSource(
                record_type=RecordType.facility,
                record_id=facility_id,
                field=field,
                value=_json(value),
                source_label=source.label,
                disclosure_id=source.disclosure_id,
            )
            for field, value in values.items()
        )
    session.add_all(facilities)
    await session.flush()
    await repository.add_sources(session, sources)


async def update_facility(
    session: AsyncSession,
    principal: Principal | None,
    ref: str,
    patch: FacilityUpdate,
    *,
    source: Source | None = None,
) -> FacilityRead:
    """Only the fields sent change; the source of each changed value (the caller's, or ``source``) is
    kept."""
    changes = patch.changes()
    label = changes.pop("source", None)
    facility, _ = await _facility(session, ref, for_update=True)
    if "parent_company" in changes:
        parent_ref = changes.pop("parent_company")
        parent = None if parent_ref is None else await _parent(session, parent_ref)
        changes["parent_company_id"] = parent.id if parent else None
    _coordinates(facility, changes)
    for name in ("processing_types", "product_types"):
        if name in changes:
            changes[name] = [_json(v) for v in changes[name]]
    changed = _changed(facility, changes)
    search = _facility_search_text(
        changed.get("name", facility.name),
        changed.get("native_name", facility.native_name),
        changed.get("aliases", facility.aliases),
    )

    def apply() -> None:
        for name, value in changed.items():
            setattr(facility, name, value)
        facility.search_text = search

    await save_unique(session, facility, _FACILITY_ERRORS, apply)
    if "parent_company_id" in changed:
        changed["parent_company"] = changed.pop("parent_company_id")
    await _record(session, RecordType.facility, facility.id, changed, source or Source.of(principal, label))
    return (await _read_facilities(session, [facility]))[0]


def _coordinates(facility: Facility, changes: dict[str, Any]) -> None:
    """``null`` for either coordinate clears both; a new one needs the other, sent or already there."""
    sent = {"latitude", "longitude"} & changes.keys()
    if not sent:
        return
    if any(changes[name] is None for name in sent):
        changes.update(latitude=None, longitude=None)
        return
    for name in {"latitude", "longitude"} - sent:
        if getattr(facility, name) is None:
            raise CoordinatesIncomplete("Send latitude and longitude together: the facility has neither.")


async def facility_sources(
    session: AsyncSession,
    principal: Principal | None,
    ref: str,
    field: str | None,
    *,
    limit: int,
    offset: int,
) -> FieldSourcePage:
    policy.ensure_sees_provenance(principal)
    facility, _ = await _facility(session, ref)
    return await list_sources(session, RecordType.facility, facility.id, field, limit=limit, offset=offset)
