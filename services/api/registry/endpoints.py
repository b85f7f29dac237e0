"""Endpoints of the registry: companies and facilities.

Reading is public. Admins, coordinators and campaigners create and change companies; they and partners
create and change facilities (API keys need ``pledges:write``). Where each value came from is for network
staff (API keys with a ``pledges:*`` scope).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Response, status

from services.api.deps import OptionalPrincipal, PaginationDep, SessionDep, require_roles
from services.api.problems import problem_responses
from services.api.publicread import public_read
from services.api.routing import router as make_router
from services.core.errors import Forbidden, InvalidToken, Unauthenticated
from services.core.network.errors import StaffOnly
from services.core.network.schemas import CountryCode
from services.core.refs import Ref, RefQuery
from services.core.registry import policy, service
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
)
from services.core.registry.models import CompanyKind
from services.core.registry.schemas import (
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
    OsId,
)
from services.core.schemas import SearchText
from services.core.users.security import Principal

router = make_router()

CompanyEditor = Annotated[Principal, Depends(require_roles(*policy.EDITORS, scope=policy.WRITE_SCOPE))]
FacilityWriter = Annotated[
    Principal, Depends(require_roles(*policy.FACILITY_WRITERS, scope=policy.WRITE_SCOPE))
]
CompanyRefParam = Annotated[Ref, Path(description="The company's id or slug.")]
FacilityRefParam = Annotated[
    str, Path(max_length=100, description="The facility's id, or its OS ID (with or without hyphens).")
]
FieldParam = Annotated[
    str | None, Query(max_length=50, pattern=r"^[a-z_]+$", description="Only this field's values.")
]

_AUTH = (Unauthenticated, InvalidToken, Forbidden)
_PROVENANCE = (Unauthenticated, InvalidToken, StaffOnly)
_COMPANY_CONFLICTS = (CompanySlugTaken, CompanyNameTaken, CompanyIdentifierTaken)


# --- companies --------------------------------------------------------------------------------------


@router.get(
    "/v1/companies",
    dependencies=[public_read("registry")],
    tags=["companies"],
    summary="List companies",
    response_model=CompanyPage,
    responses=problem_responses(InvalidToken),
)
async def list_companies(
    session: SessionDep,
    page: PaginationDep,
    q: Annotated[
        SearchText | None,
        Query(description="Text searched in names and aliases, ignoring case and accents; or a slug."),
    ] = None,
    country: Annotated[CountryCode | None, Query(description="Headquarters country.")] = None,
    kind: Annotated[list[CompanyKind] | None, Query(description="Repeat for several.")] = None,
    parent: Annotated[
        RefQuery | None, Query(description="Only companies this group (id or slug) owns.")
    ] = None,
) -> CompanyPage:
    """By name (then id). Public."""
    filters = CompanyFilters(
        q=(q or "").strip() or None, country=country, kinds=tuple(kind or ()), parent=parent
    )
    return await service.list_companies(session, filters, limit=page.limit, offset=page.offset)


@router.post(
    "/v1/companies",
    tags=["companies"],
    summary="Create a company",
    status_code=status.HTTP_201_CREATED,
    response_model=CompanyRead,
    responses=problem_responses(*_AUTH, *_COMPANY_CONFLICTS, ParentCompanyNotFound),
)
async def create_company(
    session: SessionDep, principal: CompanyEditor, body: CompanyCreate, response: Response
) -> CompanyRead:
    """Admins, coordinators and campaigners. The slug is generated from the name unless given; each
    value's source (the caller, and `source` when given) is kept."""
    company = await service.create_company(session, principal, body)
    response.headers["Location"] = f"/v1/companies/{company.id}"
    return company


@router.get(
    "/v1/companies/{ref}",
    dependencies=[public_read("registry")],
    tags=["companies"],
    summary="Get a company",
    response_model=CompanyRead,
    responses=problem_responses(InvalidToken, CompanyNotFound),
)
async def get_company(session: SessionDep, ref: CompanyRefParam) -> CompanyRead:
    """By id or slug. Public."""
    return await service.get_company(session, ref)


@router.patch(
    "/v1/companies/{ref}",
    tags=["companies"],
    summary="Change a company",
    response_model=CompanyRead,
    responses=problem_responses(
        *_AUTH, CompanyNotFound, *_COMPANY_CONFLICTS, ParentCompanyNotFound, CompanyParentCycle
    ),
)
async def update_company(
    session: SessionDep, principal: CompanyEditor, ref: CompanyRefParam, body: CompanyUpdate
) -> CompanyRead:
    """Only the fields sent change; `null` clears an optional one. A `parent` that is the company itself
    or one it owns is a 409 `company-parent-cycle`."""
    return await service.update_company(session, principal, ref, body)


@router.get(
    "/v1/companies/{ref}/sources",
    tags=["companies"],
    summary="List where a company's values came from",
    response_model=FieldSourcePage,
    responses=problem_responses(*_PROVENANCE, CompanyNotFound),
)
async def list_company_sources(
    session: SessionDep,
    principal: OptionalPrincipal,
    ref: CompanyRefParam,
    page: PaginationDep,
    field: FieldParam = None,
) -> FieldSourcePage:
    """Network staff only: every value each field was given, who or what gave it and when, newest
    first. The latest of a field is where its current value came from."""
    return await service.company_sources(session, principal, ref, field, limit=page.limit, offset=page.offset)


# --- facilities -------------------------------------------------------------------------------------


@router.get(
    "/v1/facilities",
    dependencies=[public_read("registry")],
    tags=["facilities"],
    summary="List facilities",
    response_model=FacilityPage,
    responses=problem_responses(InvalidToken),
)
async def list_facilities(
    session: SessionDep,
    page: PaginationDep,
    q: Annotated[
        SearchText | None,
        Query(
            description="Text searched in names (also native-script) and aliases, ignoring case and "
            "accents; or an OS ID."
        ),
    ] = None,
    country: Annotated[
        list[CountryCode] | None, Query(description="ISO 3166-1 alpha-2 code; repeat for several.")
    ] = None,
    os_id: Annotated[OsId | None, Query(description="Open Supply Hub's OS ID.")] = None,
    company: Annotated[RefQuery | None, Query(description="Only this parent company's (id or slug).")] = None,
    closed: Annotated[bool | None, Query(description="Only closed (`true`) or open (`false`) ones.")] = None,
) -> FacilityPage:
    """By country and name (then id). Public."""
    filters = FacilityFilters(
        q=(q or "").strip() or None,
        countries=tuple(country or ()),
        os_id=os_id,
        company=company,
        closed=closed,
    )
    return await service.list_facilities(session, filters, limit=page.limit, offset=page.offset)


@router.post(
    "/v1/facilities",
    tags=["facilities"],
    summary="Create a facility",
    status_code=status.HTTP_201_CREATED,
    response_model=FacilityRead,
    responses=problem_responses(*_AUTH, OsIdTaken, ParentCompanyNotFound),
)
async def create_facility(
    session: SessionDep, principal: FacilityWriter, body: FacilityCreate, response: Response
) -> FacilityRead:
    """Admins, coordinators, campaigners and partners. Each value's source (the caller, and `source` when
    given) is kept."""
    facility = await service.create_facility(session, principal, body)
    response.headers["Location"] = f"/v1/facilities/{facility.id}"
    return facility


@router.get(
    "/v1/facilities/{ref}",
    dependencies=[public_read("registry")],
    tags=["facilities"],
    summary="Get a facility",
    response_model=FacilityWithSourcing,
    responses=problem_responses(InvalidToken, FacilityNotFound),
)
async def get_facility(session: SessionDep, ref: FacilityRefParam) -> FacilityWithSourcing:
    """By id or OS ID, with the companies whose published supplier lists name it (`sourced_by`).
    Public."""
    return await service.get_facility_with_sourcing(session, ref)


@router.patch(
    "/v1/facilities/{ref}",
    tags=["facilities"],
    summary="Change a facility",
    response_model=FacilityRead,
    responses=problem_responses(
        *_AUTH, FacilityNotFound, OsIdTaken, ParentCompanyNotFound, CoordinatesIncomplete
    ),
)
async def update_facility(
    session: SessionDep, principal: FacilityWriter, ref: FacilityRefParam, body: FacilityUpdate
) -> FacilityRead:
    """Only the fields sent change; `null` clears an optional one (`null` for `latitude` or `longitude`
    clears both; a new one needs the other, sent or already there: else 422 `coordinates-incomplete`)."""
    return await service.update_facility(session, principal, ref, body)


@router.get(
    "/v1/facilities/{ref}/sources",
    tags=["facilities"],
    summary="List where a facility's values came from",
    response_model=FieldSourcePage,
    responses=problem_responses(*_PROVENANCE, FacilityNotFound),
)
async def list_facility_sources(
    session: SessionDep,
    principal: OptionalPrincipal,
    ref: FacilityRefParam,
    page: PaginationDep,
    field: FieldParam = None,
) -> FieldSourcePage:
    """Network staff only: every value each field was given, who or what gave it and when, newest
    first."""
    return await service.facility_sources(
        session, principal, ref, field, limit=page.limit, offset=page.offset
    )
