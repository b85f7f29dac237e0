"""Public signature endpoints: signing, confirming, counts and statistics.

Signing is the hot path: rate limits in Redis, then one ``INSERT … SELECT`` in autocommit — no session,
no principal, no transaction; the answer is the same whether or not the person signed before. Counts come
from the cache the worker refreshes. docs/signatures.md, "Signing: the hot path".
"""

from __future__ import annotations

import functools
import time
from typing import Annotated

from fastapi import Path, Query, Response, status

from services.api.deps import (
    CONNECTION_LOST,
    PublicCounts,
    PublicCountsDep,
    SessionDep,
    SettingsDep,
    SigningDep,
    StatsCacheDep,
)
from services.api.problems import problem_responses
from services.api.publicread import public_read
from services.api.routing import router as make_router
from services.core.campaigns.errors import PetitionClosed, PetitionNotFound
from services.core.errors import RateLimited
from services.core.refs import Ref
from services.core.signatures import confirmation, counts, signing
from services.core.signatures.errors import InvalidSignature
from services.core.signatures.identity import email_domain
from services.core.signatures.schemas import (
    ConfirmationIn,
    ConfirmationStatus,
    Confirmed,
    PetitionCount,
    PetitionStats,
    SignatureAccepted,
    SignatureIn,
)
from services.core.signatures.store import PreparedSignature
from services.core.signatures.tokens import (
    ConfirmationTokenExpired,
    ConfirmationTokenInvalid,
    ConfirmationTokenUsed,
)

router = make_router()

PetitionRefParam = Annotated[Ref, Path(description="The petition's id or slug.")]

_PENDING = SignatureAccepted(status="pending_confirmation").model_dump_json().encode()
_RECEIVED = SignatureAccepted(status="received").model_dump_json().encode()


@router.post(
    "/v1/petitions/{petition}/signatures",
    tags=["signatures"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SignatureAccepted,
    responses=problem_responses(PetitionNotFound, PetitionClosed, InvalidSignature, RateLimited),
    summary="Sign a petition",
)
async def sign_petition(
    petition: PetitionRefParam,
    body: SignatureIn,
    use: SigningDep,
) -> Response:
    """Record a signature. Answers 202 with the same body whether or not this person had signed before;
    with an email, a confirmation email follows (double opt-in). The client's address is never stored,
    only a keyed hash of it. Too many signatures from one address, one email domain or on one petition in
    a short time get 429 with `Retry-After`."""
    address_hash = signing.ip_hash(use.settings, use.address)
    row = PreparedSignature.of(body)
    await use.limits.hit(
        address_hash=address_hash,
        email_domain=email_domain(row.email_canonical) if row.email_canonical else None,
        petition=petition.text,
    )
    answer = _PENDING if body.email else _RECEIVED
    if not body.website:  # a filled-in honeypot is a bot: answer as usual, store nothing
        for attempt in (1, 2):
            try:
                async with use.connect() as connection:
                    await signing.sign(connection, petition, row, ip_address_hash=address_hash)
                break
            except CONNECTION_LOST:
                # A connection that died in the pool: try once more on a fresh one.
                if attempt == 2:
                    raise
    return Response(answer, status_code=status.HTTP_202_ACCEPTED, media_type="application/json")


@router.get(
    "/v1/petitions/{petition}/count",
    tags=["signatures"],
    response_model=PetitionCount,
    responses=problem_responses(PetitionNotFound),
    summary="A petition's public count",
)
async def petition_count(petition: PetitionRefParam, use: PublicCountsDep) -> Response:
    """Counted signatures (one per person; confirmed ones only under the `confirmed` count policy),
    served from a cache the worker refreshes about every second (each API process keeps a copy for a
    second more)."""
    key = petition.key
    body = use.memo.get(key, time.monotonic())
    if body is None:
        # One request per petition asks Redis; the others wait for it.
        body = await use.memo.refresh(key, functools.partial(_fetch_count, use, petition))
    return Response(body, media_type="application/json", headers={"Cache-Control": "public, max-age=2"})


async def _fetch_count(use: PublicCounts, petition: Ref) -> bytes:
    """The count's body from Redis, else from the database (cached for the next ones)."""
    body = await counts.cached_body(use.cache, petition.key)
    if body == counts.HIDDEN:
        raise PetitionNotFound(f"No petition {petition.text!r}.")
    if body is None:
        async with use.sessionmaker() as session:
            body = await counts.load(session, use.cache, use.settings, petition)
    return body


@router.get(
    "/v1/petitions/{petition}/stats",
    dependencies=[public_read("signatures", "campaigns", "network")],
    tags=["signatures"],
    response_model=PetitionStats,
    responses=problem_responses(PetitionNotFound),
    summary="A petition's counted signatures per country, partner and day",
)
async def petition_stats(
    petition: PetitionRefParam, session: SessionDep, settings: SettingsDep, cache: StatsCacheDep
) -> PetitionStats:
    """Counted signatures per country, per partner organisation (null: none) and per day (UTC)."""
    return await counts.stats(session, cache, settings, petition)


@router.get(
    "/v1/signatures/confirm",
    tags=["signatures"],
    response_model=ConfirmationStatus,
    responses=problem_responses(ConfirmationTokenExpired, ConfirmationTokenInvalid),
    summary="What a confirmation link is (confirms nothing)",
)
async def confirmation_status(
    token: Annotated[str, Query(min_length=1, max_length=2000, description="The token from the email.")],
    session: SessionDep,
    settings: SettingsDep,
) -> ConfirmationStatus:
    """For the front end behind the email's link: whether the signature can be confirmed or already is.
    A GET never confirms (mail scanners follow links); `POST` does."""
    return await confirmation.status(session, settings, token)


@router.post(
    "/v1/signatures/confirm",
    tags=["signatures"],
    response_model=Confirmed,
    responses=problem_responses(ConfirmationTokenExpired, ConfirmationTokenInvalid, ConfirmationTokenUsed),
    summary="Confirm a signature (double opt-in)",
)
async def confirm_signature(body: ConfirmationIn, session: SessionDep, settings: SettingsDep) -> Confirmed:
    """Confirm the signature the token names. Expired links are 410, broken or replaced ones 400, and a
    second confirmation 409."""
    return await confirmation.confirm(session, settings, body.token)
