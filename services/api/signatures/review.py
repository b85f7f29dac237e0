"""The review queue: paper signatures that may be duplicates, for staff to decide (issue 3 §5).

Admins, coordinators and campaigners (signed-in users; API keys never)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Query

from services.api.deps import PaginationDep, SessionDep, require_roles
from services.api.headers import NoStore
from services.api.problems import problem_responses
from services.api.routing import router as make_router
from services.core.campaigns.errors import PetitionNotFound
from services.core.errors import Forbidden, InvalidToken, Unauthenticated
from services.core.refs import RefQuery
from services.core.signatures import policy, review
from services.core.signatures.errors import ReviewNotFound
from services.core.signatures.models import ReviewResolution
from services.core.users.security import Principal

router = make_router(dependencies=[NoStore])  # signers' names and postal codes

Reviewer = Annotated[Principal, Depends(require_roles(*policy.REVIEWERS))]

_AUTH = (Unauthenticated, InvalidToken, Forbidden)


@router.get(
    "/v1/signature-reviews",
    tags=["signatures"],
    summary="List signatures awaiting review",
    response_model=review.ReviewPage,
    responses=problem_responses(*_AUTH, PetitionNotFound),
)
async def list_signature_reviews(
    session: SessionDep,
    principal: Reviewer,
    page: PaginationDep,
    petition: Annotated[RefQuery | None, Query(description="A petition's id or slug.")] = None,
    resolved: Annotated[
        bool | None,
        Query(description="Only open (`false`) or only decided (`true`) reviews; both if absent."),
    ] = None,
) -> review.ReviewPage:
    """Paper signatures that look like a counted signature of the same petition, with both signatures'
    name, postal code, country and time, and the name similarity score. Oldest first."""
    return await review.list_reviews(
        session, petition=petition, resolved=resolved, limit=page.limit, offset=page.offset
    )


@router.post(
    "/v1/signature-reviews/{signature_id}/resolve",
    tags=["signatures"],
    summary="Decide a review",
    response_model=review.ReviewRead,
    responses=problem_responses(*_AUTH, ReviewNotFound, review.ReviewAlreadyResolved),
)
async def resolve_signature_review(
    signature_id: Annotated[uuid.UUID, Path(description="The reviewed signature's id.")],
    body: review.ReviewDecision,
    session: SessionDep,
    principal: Reviewer,
) -> review.ReviewRead:
    """`duplicate`: the signature becomes a duplicate of the candidate (not counted); `distinct`: it
    counts. The petition's count is refreshed by the worker. A decided review is 409."""
    return await review.resolve(session, signature_id, ReviewResolution(body.decision), by=principal.id)
