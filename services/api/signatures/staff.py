"""Staff tools for signatures: list, export (CSV), bulk invalidation and its revert.

Listing and export: admins, coordinators, campaigners, and partners (only the signatures their
organisation collected); API keys with ``signatures:read``. Invalidations: admins and coordinators.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, status
from fastapi.responses import StreamingResponse

from services.api.deps import PaginationDep, SessionDep, SessionmakerDep, require_roles
from services.api.headers import NoStore
from services.api.problems import problem_responses
from services.api.routing import router as make_router
from services.core.campaigns.errors import PetitionNotFound
from services.core.errors import Forbidden, InvalidToken, Unauthenticated
from services.core.network.schemas import CountryCode, Slug
from services.core.refs import Ref
from services.core.schemas import Instant, SearchText
from services.core.signatures import policy, staff
from services.core.signatures.models import Channel, SignatureState
from services.core.signatures.schemas import (
    EmailDomain,
    InvalidationIn,
    InvalidationPage,
    InvalidationRead,
    StaffSignaturePage,
)
from services.core.users.scopes import Scope
from services.core.users.security import Principal

router = make_router(dependencies=[NoStore])  # signers' data, and filters by address hash

PetitionRefParam = Annotated[Ref, Path(description="The petition's id or slug.")]

SignatureReaders = Annotated[Principal, Depends(require_roles(*policy.READERS, scope=Scope.signatures_read))]
Invalidators = Annotated[Principal, Depends(require_roles(*policy.INVALIDATORS))]


async def signature_filters(
    state: Annotated[SignatureState | None, Query(description="Pipeline state.")] = None,
    country: Annotated[CountryCode | None, Query(description="ISO 3166-1 alpha-2 code.")] = None,
    partner: Annotated[Slug | None, Query(description="Slug of the collecting organisation.")] = None,
    channel: Annotated[Channel | None, Query(description="How it arrived.")] = None,
    email_domain: Annotated[EmailDomain | None, Query(description="Signers' email domain (exact).")] = None,
    q: Annotated[
        SearchText | None, Query(description="Case-insensitive text contained in the name or email.")
    ] = None,
    created_after: Annotated[Instant | None, Query(description="Signed at or after (inclusive).")] = None,
    created_before: Annotated[Instant | None, Query(description="Signed before (exclusive).")] = None,
    invalidated: Annotated[bool | None, Query(description="Only (in)validated signatures.")] = None,
) -> staff.SignatureFilters:
    return staff.SignatureFilters(
        state=state,
        country=country,
        partner=partner,
        channel=channel,
        email_domain=email_domain,
        q=q or None,
        created_after=created_after,
        created_before=created_before,
        invalidated=invalidated,
    )


Filters = Annotated[staff.SignatureFilters, Depends(signature_filters)]


@router.get(
    "/v1/petitions/{petition}/signatures",
    tags=["signatures"],
    response_model=StaffSignaturePage,
    responses=problem_responses(Unauthenticated, InvalidToken, Forbidden, PetitionNotFound),
    summary="List a petition's signatures (staff)",
)
async def list_signatures(
    petition: PetitionRefParam,
    session: SessionDep,
    principal: SignatureReaders,
    filters: Filters,
    page: PaginationDep,
) -> StaffSignaturePage:
    """Every signature, duplicates and invalidated ones included, newest first. Partners see only the
    signatures their organisation collected. Erased signatures show no personal data."""
    return await staff.list_signatures(
        session, principal, petition, filters, limit=page.limit, offset=page.offset
    )


@router.get(
    "/v1/petitions/{petition}/signatures.csv",
    tags=["signatures"],
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "The signatures as CSV.",
        },
        **problem_responses(Unauthenticated, InvalidToken, Forbidden, PetitionNotFound),
    },
    summary="Export a petition's signatures as CSV (staff)",
)
async def export_signatures(
    petition: PetitionRefParam,
    session: SessionDep,
    principal: SignatureReaders,
    filters: Filters,
    sessionmaker: SessionmakerDep,
) -> StreamingResponse:
    """The same signatures and filters as the list, as a CSV file streamed from the database (UTF-8,
    header row first). Partners export only their own signatures. Cells that a spreadsheet would take
    for a formula start with `'`."""
    found, conditions = await staff.prepare_export(session, principal, petition, filters)
    return StreamingResponse(
        staff.export_csv(sessionmaker, conditions),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="signatures-{found.slug}.csv"',
        },
    )


@router.post(
    "/v1/petitions/{petition}/invalidations",
    tags=["signatures"],
    status_code=status.HTTP_201_CREATED,
    response_model=InvalidationRead,
    responses=problem_responses(Unauthenticated, InvalidToken, Forbidden, PetitionNotFound),
    summary="Invalidate signatures in bulk",
)
async def invalidate(
    petition: PetitionRefParam, body: InvalidationIn, session: SessionDep, principal: Invalidators
) -> InvalidationRead:
    """Take the petition's signatures matching all the filters given (at least one) out of its counts,
    for a reason. Signatures already invalidated stay with their invalidation. The count follows within
    seconds (the worker recounts)."""
    return await staff.invalidate(session, principal, petition, body)


@router.get(
    "/v1/petitions/{petition}/invalidations",
    tags=["signatures"],
    response_model=InvalidationPage,
    responses=problem_responses(Unauthenticated, InvalidToken, Forbidden, PetitionNotFound),
    summary="List a petition's invalidations",
)
async def list_invalidations(
    petition: PetitionRefParam, session: SessionDep, principal: Invalidators, page: PaginationDep
) -> InvalidationPage:
    """Newest first, reverted ones included."""
    return await staff.list_invalidations(session, principal, petition, limit=page.limit, offset=page.offset)


@router.post(
    "/v1/invalidations/{invalidation}/revert",
    tags=["signatures"],
    response_model=InvalidationRead,
    responses=problem_responses(
        Unauthenticated,
        InvalidToken,
        Forbidden,
        staff.InvalidationNotFound,
        staff.InvalidationAlreadyReverted,
    ),
    summary="Revert an invalidation",
)
async def revert_invalidation(
    invalidation: Annotated[uuid.UUID, Path(description="The invalidation's id.")],
    session: SessionDep,
    principal: Invalidators,
) -> InvalidationRead:
    """Put the invalidation's signatures back into the counts. 409 if it was reverted already."""
    return await staff.revert(session, principal, invalidation)
