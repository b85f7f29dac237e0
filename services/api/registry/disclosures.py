"""Endpoints of supplier-list disclosures and their review queue.

Admins, coordinators and campaigners upload a company's list and decide the rows waiting for review (API
keys need ``pledges:write``); network staff (API keys with a ``pledges`` scope) read disclosures and the
queue. The worker does the reading and matching: ``services.core.registry.disclosures``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Depends, File, Form, Path, Query, Response, UploadFile, status

from services.api.bodylimit import body_allowance
from services.api.deps import OptionalPrincipal, PaginationDep, SessionDep, SettingsDep, require_roles
from services.api.problems import problem_responses
from services.api.routing import router as make_router
from services.core.errors import Forbidden, InvalidToken, Unauthenticated
from services.core.network.errors import StaffOnly
from services.core.network.schemas import Website
from services.core.refs import Ref, RefQuery
from services.core.registry import disclosures, policy
from services.core.registry.errors import (
    CompanyNotFound,
    DisclosureDuplicate,
    DisclosureNotFound,
    DisclosureTooLarge,
    DisclosureTooManyRows,
    DisclosureUnreadable,
    ReviewFacilityNotFound,
    ReviewNotFound,
)
from services.core.registry.schemas import DisclosurePage, DisclosureRead, ReviewConfirm, ReviewPage, RowRead
from services.core.users.security import Principal

router = make_router()

Editor = Annotated[Principal, Depends(require_roles(*policy.EDITORS, scope=policy.WRITE_SCOPE))]
CompanyRefParam = Annotated[Ref, Path(description="The company's id or slug.")]
DisclosureParam = Annotated[str, Path(max_length=100, description="The disclosure's id.")]
ReviewParam = Annotated[str, Path(max_length=100, description="`<disclosure id>:<row number>`.")]

_AUTH = (Unauthenticated, InvalidToken, Forbidden)
_STAFF = (Unauthenticated, InvalidToken, StaffOnly)


@router.post(
    "/v1/companies/{ref}/disclosures",
    tags=["companies"],
    summary="Upload a company's supplier list",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DisclosureRead,
    responses=problem_responses(
        *_AUTH,
        CompanyNotFound,
        DisclosureDuplicate,
        DisclosureTooLarge,
        DisclosureUnreadable,
        DisclosureTooManyRows,
    ),
    openapi_extra=body_allowance(disclosures.MAX_UPLOAD_BYTES + 64 * 1024),
)
async def upload_disclosure(
    session: SessionDep,
    settings: SettingsDep,
    principal: Editor,
    ref: CompanyRefParam,
    response: Response,
    file: Annotated[UploadFile, File(description="The list: CSV, XLSX or JSON (an array of objects).")],
    url: Annotated[Website, Form(description="Where the company publishes the list.")],
    retrieved_on: Annotated[date, Form(description="The date the list was retrieved.")],
) -> DisclosureRead:
    """Admins, coordinators and campaigners. The file is stored as is (its SHA-256, format and row count
    kept) and the worker reads and matches its rows: follow `GET …/disclosures/{id}`. Headers are
    recognised in their usual variants (`Factory name`, `Supplier name`, `Number of workers`, …). The
    same file again for the company is a 409 `disclosure-duplicate` naming the first (`disclosure_id`);
    a file over 20 MB is a 413, one that cannot be read, has no name column or more rows than
    `LOOM_DISCLOSURE_MAX_ROWS` a 422."""
    content = await file.read(disclosures.MAX_UPLOAD_BYTES + 1)
    if len(content) > disclosures.MAX_UPLOAD_BYTES:
        raise DisclosureTooLarge(f"A supplier list may have up to {disclosures.MAX_UPLOAD_BYTES:,} bytes.")
    filename = (file.filename or "").replace("\x00", "")[:300] or None
    created = await disclosures.upload(
        session,
        settings,
        principal,
        ref,
        content=content,
        filename=filename,
        url=url,
        retrieved_on=retrieved_on,
    )
    response.headers["Location"] = f"/v1/companies/{created.company.slug}/disclosures/{created.id}"
    return created


@router.get(
    "/v1/companies/{ref}/disclosures",
    tags=["companies"],
    summary="List a company's supplier-list disclosures",
    response_model=DisclosurePage,
    responses=problem_responses(*_STAFF, CompanyNotFound),
)
async def list_disclosures(
    session: SessionDep, principal: OptionalPrincipal, ref: CompanyRefParam, page: PaginationDep
) -> DisclosurePage:
    """Network staff: newest first, with each one's progress."""
    return await disclosures.list_disclosures(session, principal, ref, limit=page.limit, offset=page.offset)


@router.get(
    "/v1/companies/{ref}/disclosures/{disclosure}",
    tags=["companies"],
    summary="Get a disclosure and its progress",
    response_model=DisclosureRead,
    responses=problem_responses(*_STAFF, CompanyNotFound, DisclosureNotFound),
)
async def get_disclosure(
    session: SessionDep, principal: OptionalPrincipal, ref: CompanyRefParam, disclosure: DisclosureParam
) -> DisclosureRead:
    """Network staff: state (`queued`, `processing`, `processed`, `failed`), rows done of `row_count`,
    rows per outcome, and per Pledge field how many rows lack it or have an unreadable value."""
    return await disclosures.get_disclosure(session, principal, ref, disclosure)


@router.get(
    "/v1/disclosure-reviews",
    tags=["companies"],
    summary="List supplier-list rows waiting for review",
    response_model=ReviewPage,
    responses=problem_responses(*_STAFF),
)
async def list_reviews(
    session: SessionDep,
    principal: OptionalPrincipal,
    page: PaginationDep,
    company: Annotated[RefQuery | None, Query(description="Only this company's (id or slug).")] = None,
) -> ReviewPage:
    """Network staff: rows whose best match scored below `LOOM_DISCLOSURE_MATCH_AUTO` but at least
    `LOOM_DISCLOSURE_MATCH_REVIEW`, with the proposed facility."""
    return await disclosures.review_queue(session, principal, company, limit=page.limit, offset=page.offset)


@router.post(
    "/v1/disclosure-reviews/{review}/confirm",
    tags=["companies"],
    summary="Confirm a row is the proposed facility",
    response_model=RowRead,
    responses=problem_responses(*_AUTH, ReviewNotFound, ReviewFacilityNotFound),
)
async def confirm_review(
    session: SessionDep, principal: Editor, review: ReviewParam, body: ReviewConfirm | None = None
) -> RowRead:
    """Admins, coordinators and campaigners. The row is linked to the proposed facility (or to `facility`);
    the decision is remembered: the company's later lists never ask about this row again."""
    return RowRead.model_validate(
        await disclosures.confirm(session, principal, review, body or ReviewConfirm())
    )


@router.post(
    "/v1/disclosure-reviews/{review}/reject",
    tags=["companies"],
    summary="Reject the proposed facility for a row",
    response_model=RowRead,
    responses=problem_responses(*_AUTH, ReviewNotFound),
)
async def reject_review(session: SessionDep, principal: Editor, review: ReviewParam) -> RowRead:
    """Admins, coordinators and campaigners. A new facility is made from the row (its values' source:
    the disclosure) and the decision remembered."""
    return RowRead.model_validate(await disclosures.reject(session, principal, review))
