"""Privacy requests: erase or export what Loom stores about a signer, by email (issue 3 §10). Admins only
(signed-in users; API keys never). Emails are never logged."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.api.deps import SessionDep, require_roles
from services.api.headers import NoStore
from services.api.problems import problem_responses
from services.api.routing import router as make_router
from services.core.errors import Forbidden, InvalidToken, Unauthenticated
from services.core.signatures import policy, privacy
from services.core.signatures.errors import InvalidSignature
from services.core.users.security import Principal

router = make_router(dependencies=[NoStore])  # a person's data

PrivacyOfficer = Annotated[Principal, Depends(require_roles(*policy.PRIVACY_OFFICERS))]

_AUTH = (Unauthenticated, InvalidToken, Forbidden)


@router.post(
    "/v1/privacy/erasure",
    tags=["privacy"],
    summary="Erase a signer's personal data",
    response_model=privacy.Erased,
    responses=problem_responses(*_AUTH, InvalidSignature),
)
async def erase_signer(
    body: privacy.PrivacyRequest, session: SessionDep, principal: PrivacyOfficer
) -> privacy.Erased:
    """Every signature whose canonical email is this one's, on every petition, loses its name, email,
    postal code, matching keys, address hash, source and confirmation nonce, and gets `erased_at`. The
    signatures themselves stay (state, duplicate links, country, consent), so counts do not change.
    Email messages to the address keep their row (so campaign update counts stay right) but lose the
    address, subject and content; unsent ones never go out. The suppression entry stays (it keeps an
    unsubscribe honoured). Staff user accounts are not touched. Answers how many signatures and messages
    were erased."""
    return await privacy.erase(session, body.email)


@router.post(
    "/v1/privacy/export",
    tags=["privacy"],
    summary="Export a signer's personal data",
    response_model=privacy.Export,
    responses=problem_responses(*_AUTH, InvalidSignature),
)
async def export_signer(
    body: privacy.PrivacyRequest, session: SessionDep, principal: PrivacyOfficer
) -> privacy.Export:
    """Every signature stored with this (canonical) email, with its petition's slug: all its columns but
    the internal matching keys and the confirmation nonce; the email Loom sent or queued to the address
    (subject and text), and its suppression entry if any. Erased signatures no longer match."""
    return await privacy.export(session, body.email)
