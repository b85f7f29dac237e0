"""Endpoints of the network directory: organisations, coalitions, memberships and network figures.

Reading is public (anonymous callers see active members only); admins and coordinators write, a partner
its own organisation's public fields. The rules: docs/access.md, "The network directory".
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import Body, Depends, Path, Query, Response, status

from services.api.deps import OptionalPrincipal, PaginationDep, SessionDep, require_roles
from services.api.problems import problem_responses
from services.api.publicread import public_read
from services.api.routing import router as make_router
from services.core.errors import Forbidden, InvalidToken, Unauthenticated
from services.core.network import policy, service
from services.core.network.errors import (
    CoalitionNameTaken,
    CoalitionNotFound,
    FieldNotEditable,
    MembershipNotFound,
    NotYourOrganisation,
    OrganisationNotFound,
    RegionalCoalitionProtected,
    SlugTaken,
    StaffOnly,
)
from services.core.network.models import MembershipStatus, OrganisationKind
from services.core.network.schemas import (
    CoalitionCreate,
    CoalitionPage,
    CoalitionRead,
    CoalitionUpdate,
    CountryCode,
    MembershipRead,
    MembershipWrite,
    NetworkStats,
    OrganisationCreate,
    OrganisationFilters,
    OrganisationPage,
    OrganisationRead,
    OrganisationUpdate,
)
from services.core.refs import Ref, RefQuery
from services.core.schemas import SearchText
from services.core.users.security import Principal

router = make_router()

DirectoryEditor = Annotated[
    Principal, Depends(require_roles(*policy.DIRECTORY_EDITORS, scope=policy.WRITE_SCOPE))
]
OrganisationWriter = Annotated[
    Principal, Depends(require_roles(*policy.ORGANISATION_WRITERS, scope=policy.WRITE_SCOPE))
]
OrganisationRef = Annotated[Ref, Path(description="The organisation's id or slug.")]
CoalitionRefParam = Annotated[Ref, Path(description="The coalition's id or slug.")]

_AUTH = (Unauthenticated, InvalidToken, Forbidden)


async def member_filters(
    country: Annotated[
        list[CountryCode] | None, Query(description="ISO 3166-1 alpha-2 code; repeat for several.")
    ] = None,
    kind: Annotated[list[OrganisationKind] | None, Query(description="Repeat for several.")] = None,
    status: Annotated[
        list[MembershipStatus] | None,
        Query(description="Membership status; repeat for several. Other than `active`: staff only."),
    ] = None,
    q: Annotated[
        SearchText | None,
        Query(description="Case-insensitive text searched in name, city and description."),
    ] = None,
) -> OrganisationFilters:
    return OrganisationFilters(
        countries=tuple(country or ()),
        kinds=tuple(kind or ()),
        statuses=tuple(status or ()),
        q=q or None,
    )


MemberFilters = Annotated[OrganisationFilters, Depends(member_filters)]


# --- organisations ----------------------------------------------------------------------------------


@router.get(
    "/v1/organisations",
    dependencies=[public_read("network")],
    tags=["organisations"],
    summary="List member organisations",
    response_model=OrganisationPage,
    responses=problem_responses(Unauthenticated, InvalidToken, StaffOnly),
)
async def list_organisations(
    session: SessionDep,
    principal: OptionalPrincipal,
    filters: MemberFilters,
    page: PaginationDep,
    coalition: Annotated[
        RefQuery | None, Query(description="Only members of this coalition (id or slug).")
    ] = None,
) -> OrganisationPage:
    """Organisations ordered by name (then id), so pages never overlap or skip. Anonymous callers and
    partners see active members (partners also their own organisation); staff see every status and may
    filter by it."""
    return await service.list_organisations(
        session, principal, replace(filters, coalition=coalition), limit=page.limit, offset=page.offset
    )


@router.post(
    "/v1/organisations",
    tags=["organisations"],
    summary="Add a member organisation",
    status_code=status.HTTP_201_CREATED,
    response_model=OrganisationRead,
    responses=problem_responses(*_AUTH, SlugTaken),
)
async def create_organisation(
    session: SessionDep, principal: DirectoryEditor, body: OrganisationCreate, response: Response
) -> OrganisationRead:
    """Admins and coordinators only. The slug is generated from the name unless given; a slug already in
    use is a 409."""
    organisation = await service.create_organisation(session, principal, body)
    response.headers["Location"] = f"/v1/organisations/{organisation.id}"
    return organisation


@router.get(
    "/v1/organisations/{ref}",
    dependencies=[public_read("network")],
    tags=["organisations"],
    summary="Get a member organisation",
    response_model=OrganisationRead,
    responses=problem_responses(InvalidToken, OrganisationNotFound),
)
async def get_organisation(
    session: SessionDep, principal: OptionalPrincipal, ref: OrganisationRef
) -> OrganisationRead:
    """By id or slug. Organisations that are not active are a 404 except to staff and to the
    organisation's own partner users."""
    return await service.get_organisation(session, principal, ref)


@router.patch(
    "/v1/organisations/{ref}",
    tags=["organisations"],
    summary="Change a member organisation",
    response_model=OrganisationRead,
    responses=problem_responses(
        *_AUTH, NotYourOrganisation, FieldNotEditable, OrganisationNotFound, SlugTaken
    ),
)
async def update_organisation(
    session: SessionDep, principal: OrganisationWriter, ref: OrganisationRef, body: OrganisationUpdate
) -> OrganisationRead:
    """Only the fields sent change; `null` clears `city`, `website` or `joined_on`. Admins and
    coordinators may change any organisation. A partner may change its own organisation's public fields
    (name, kind, country, city, website, description) but not `status`, `slug` or `joined_on`, and gets
    a 403 for any other organisation."""
    return await service.update_organisation(session, principal, ref, body)


# --- coalitions -------------------------------------------------------------------------------------


@router.get(
    "/v1/coalitions",
    dependencies=[public_read("network")],
    tags=["coalitions"],
    summary="List coalitions",
    response_model=CoalitionPage,
)
async def list_coalitions(
    session: SessionDep,
    page: PaginationDep,
    regional: Annotated[
        bool | None, Query(description="`true`: only regional coalitions; `false`: only custom ones.")
    ] = None,
) -> CoalitionPage:
    """Regional and custom coalitions, ordered by name (then id). Public."""
    return await service.list_coalitions(session, regional=regional, limit=page.limit, offset=page.offset)


@router.post(
    "/v1/coalitions",
    tags=["coalitions"],
    summary="Create a custom coalition",
    status_code=status.HTTP_201_CREATED,
    response_model=CoalitionRead,
    responses=problem_responses(*_AUTH, SlugTaken, CoalitionNameTaken),
)
async def create_coalition(
    session: SessionDep, principal: DirectoryEditor, body: CoalitionCreate, response: Response
) -> CoalitionRead:
    """Admins and coordinators only. Names and slugs are unique (409)."""
    coalition = await service.create_coalition(session, principal, body)
    response.headers["Location"] = f"/v1/coalitions/{coalition.id}"
    return coalition


@router.get(
    "/v1/coalitions/{ref}",
    dependencies=[public_read("network")],
    tags=["coalitions"],
    summary="Get a coalition",
    response_model=CoalitionRead,
    responses=problem_responses(CoalitionNotFound),
)
async def get_coalition(session: SessionDep, ref: CoalitionRefParam) -> CoalitionRead:
    """By id or slug. Public."""
    return await service.get_coalition(session, ref)


@router.patch(
    "/v1/coalitions/{ref}",
    tags=["coalitions"],
    summary="Change a coalition",
    response_model=CoalitionRead,
    responses=problem_responses(
        *_AUTH, CoalitionNotFound, RegionalCoalitionProtected, SlugTaken, CoalitionNameTaken
    ),
)
async def update_coalition(
    session: SessionDep, principal: DirectoryEditor, ref: CoalitionRefParam, body: CoalitionUpdate
) -> CoalitionRead:
    """Admins and coordinators only. Regional coalitions keep their name, slug and region (409); their
    description may change."""
    return await service.update_coalition(session, principal, ref, body)


@router.delete(
    "/v1/coalitions/{ref}",
    tags=["coalitions"],
    summary="Delete a custom coalition",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(*_AUTH, CoalitionNotFound, RegionalCoalitionProtected),
)
async def delete_coalition(session: SessionDep, principal: DirectoryEditor, ref: CoalitionRefParam) -> None:
    """Admins and coordinators only. Removes the coalition and its memberships, not the organisations.
    Regional coalitions cannot be deleted (409)."""
    await service.delete_coalition(session, principal, ref)


@router.get(
    "/v1/coalitions/{ref}/members",
    dependencies=[public_read("network")],
    tags=["coalitions"],
    summary="List a coalition's member organisations",
    response_model=OrganisationPage,
    responses=problem_responses(Unauthenticated, InvalidToken, StaffOnly, CoalitionNotFound),
)
async def list_coalition_members(
    session: SessionDep,
    principal: OptionalPrincipal,
    ref: CoalitionRefParam,
    filters: MemberFilters,
    page: PaginationDep,
) -> OrganisationPage:
    """Like `GET /v1/organisations` restricted to the coalition's members, with the same visibility."""
    return await service.list_members(session, principal, ref, filters, limit=page.limit, offset=page.offset)


@router.put(
    "/v1/coalitions/{ref}/members/{organisation}",
    tags=["coalitions"],
    summary="Add an organisation to a coalition",
    response_model=MembershipRead,
    responses={
        201: {"model": MembershipRead, "description": "The organisation was added."},
        **problem_responses(*_AUTH, CoalitionNotFound, OrganisationNotFound),
    },
)
async def add_coalition_member(
    session: SessionDep,
    principal: DirectoryEditor,
    ref: CoalitionRefParam,
    organisation: OrganisationRef,
    response: Response,
    body: Annotated[MembershipWrite | None, Body()] = None,
) -> MembershipRead:
    """Admins and coordinators only. Idempotent: 201 when the organisation is added, 200 when it already
    was a member (its `joined_on` is updated if sent). An organisation may be in several coalitions."""
    membership, created = await service.add_member(
        session, principal, ref, organisation, body or MembershipWrite()
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    return membership


@router.delete(
    "/v1/coalitions/{ref}/members/{organisation}",
    tags=["coalitions"],
    summary="Remove an organisation from a coalition",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(*_AUTH, CoalitionNotFound, OrganisationNotFound, MembershipNotFound),
)
async def remove_coalition_member(
    session: SessionDep, principal: DirectoryEditor, ref: CoalitionRefParam, organisation: OrganisationRef
) -> None:
    """Admins and coordinators only. 404 when the organisation is not a member."""
    await service.remove_member(session, principal, ref, organisation)


# --- figures ----------------------------------------------------------------------------------------


@router.get(
    "/v1/network/stats",
    dependencies=[public_read("network")],
    tags=["network"],
    summary="Organisations and countries in the network",
    response_model=NetworkStats,
)
async def get_network_stats(session: SessionDep) -> NetworkStats:
    """Active member organisations and the countries they are in, overall and per coalition. Public."""
    return await service.network_stats(session)
