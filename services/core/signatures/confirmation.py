"""Double opt-in: issuing confirmation tokens (worker) and confirming with them (public API).

A deduplicated signature with an email gets a token (one job per batch, :func:`request`); only ``POST``
confirms (mail scanners follow links), a duplicate's confirmation confirms the counted signature, and the
petition is marked for a recount. docs/signatures.md, "Double opt-in".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.mail import messages
from services.core.signatures import tokens
from services.core.signatures.recount import mark_for_recount
from services.core.signatures.schemas import ConfirmationStatus, Confirmed
from services.core.signatures.tokens import ConfirmationRequest
from services.core.webhooks.events import emit
from services.core.webhooks.models import EventType

# The signatures among :ids that may get a link: unconfirmed, none issued yet (so a retried job issues
# nothing twice), the latest of each person's; and the person's allowance on this petition, taken in the
# same statement: one link per MAIL_INTERVAL until their counted signature is confirmed. Two jobs for the
# same person meet on the petition_signers row; the second re-reads it and finds the allowance used.
_CLAIM = text(
    "WITH wanted AS ("
    " SELECT DISTINCT ON (s.petition_id, s.email_canonical) s.id, s.petition_id, s.email_canonical"
    " FROM signatures s WHERE s.id = ANY(CAST(:ids AS uuid[])) AND s.email IS NOT NULL"
    " AND s.confirmed_at IS NULL AND s.confirmation_nonce_hash IS NULL AND s.erased_at IS NULL"
    " ORDER BY s.petition_id, s.email_canonical, s.created_at DESC, s.id"
    ") "
    "UPDATE petition_signers ps SET confirmation_mailed_at = :now "
    "FROM wanted w, signatures counted "
    "WHERE ps.petition_id = w.petition_id AND ps.email_canonical = w.email_canonical "
    "AND counted.id = ps.signature_id AND counted.confirmed_at IS NULL "
    "AND (ps.confirmation_mailed_at IS NULL OR ps.confirmation_mailed_at <= :since) "
    "RETURNING w.id"
)
MAIL_INTERVAL = timedelta(days=1)


async def request(
    session: AsyncSession,
    settings: Settings,
    signature_ids: Sequence[uuid.UUID],
    *,
    now: datetime | None = None,
) -> list[ConfirmationRequest]:
    """Issue a token for these signatures that have an email, are unconfirmed and have none yet (so a
    retried job issues nothing twice); returns the new tokens, for the email.

    At most one per person (canonical email) and petition per :data:`MAIL_INTERVAL`, and none once the
    person's counted signature is confirmed: signing fifty times with someone else's address sends them
    one mail, not fifty."""
    now = now or datetime.now(UTC)
    claimed = (
        await session.scalars(_CLAIM, {"ids": list(signature_ids), "now": now, "since": now - MAIL_INTERVAL})
    ).all()
    rows = (
        await session.execute(
            text(
                "SELECT id, petition_id FROM signatures WHERE id = ANY(CAST(:ids AS uuid[])) "
                "AND email IS NOT NULL AND confirmed_at IS NULL AND confirmation_nonce_hash IS NULL "
                "AND erased_at IS NULL ORDER BY id FOR UPDATE"
            ),
            {"ids": list(claimed)},
        )
    ).all()
    issued = [
        (row, tokens.issue(settings, signature_id=row.id, petition_id=row.petition_id, now=now))
        for row in rows
    ]
    if issued:
        await session.execute(
            text(
                "UPDATE signatures s SET confirmation_nonce_hash = b.nonce, confirmation_requested_at = :now "
                "FROM unnest(CAST(:ids AS uuid[]), CAST(:nonces AS text[])) AS b(id, nonce) WHERE s.id = b.id"
            ),
            {"ids": [row.id for row, _ in issued], "nonces": [t.nonce_hash for _, t in issued], "now": now},
        )
    return [
        ConfirmationRequest(row.id, row.petition_id, token.token, token.nonce_hash) for row, token in issued
    ]


async def _signature(session: AsyncSession, claims: tokens.ConfirmationClaims, *, lock: bool) -> Row[Any]:
    row = (
        await session.execute(
            text(
                "SELECT s.id, s.petition_id, s.duplicate_of, s.confirmed_at, s.confirmation_nonce_hash, "  # noqa: S608 - constant SQL fragments; values are bound
                "p.slug FROM signatures s JOIN petitions p ON p.id = s.petition_id "
                "WHERE s.id = :id AND s.petition_id = :petition AND s.erased_at IS NULL"
                + (" FOR UPDATE OF s" if lock else "")
            ),
            {"id": claims.signature_id, "petition": claims.petition_id},
        )
    ).one_or_none()
    if row is None:
        raise tokens.ConfirmationTokenInvalid("This link names no signature.")
    return row


async def emit_confirmed(
    session: AsyncSession, signature: Row[Any], *, petition_id: uuid.UUID, petition_slug: str
) -> None:
    """The ``signature.confirmed`` webhook event, once per signature. Only what a partner system needs
    to count and attribute a confirmation goes out — never the signer's name, email, postal code or
    address hash: webhook receivers are outside Loom, and the person consented to the petition, not to
    being passed on."""
    await emit(
        session,
        EventType.signature_confirmed,
        {
            "signature_id": signature.id,
            "petition_id": petition_id,
            "petition_slug": petition_slug,
            "country": signature.country,
            "organisation_id": signature.organisation_id,
            "organisation_slug": signature.organisation_slug,
            "confirmed_at": signature.confirmed_at,
        },
        key=f"{EventType.signature_confirmed.value}:{signature.id}",
    )


async def status(
    session: AsyncSession, settings: Settings, token: str, *, now: datetime | None = None
) -> ConfirmationStatus:
    """What the link is: confirmable, or already confirmed. Expired and invalid links are problems."""
    claims = tokens.read(settings, token, now=now or datetime.now(UTC))
    row = await _signature(session, claims, lock=False)
    if row.confirmed_at is not None:
        return ConfirmationStatus(status="confirmed", petition=claims.petition_id, petition_slug=row.slug)
    tokens.ensure_unused(claims, stored_nonce_hash=row.confirmation_nonce_hash, confirmed_at=None)
    return ConfirmationStatus(
        status="confirmable",
        petition=claims.petition_id,
        petition_slug=row.slug,
        expires_at=claims.expires_at,
    )


async def confirm(
    session: AsyncSession, settings: Settings, token: str, *, now: datetime | None = None
) -> Confirmed:
    """Confirm the signature named by ``token`` (and the person's counted signature, if it is a
    duplicate). 410 expired, 400 invalid, 409 already confirmed."""
    now = now or datetime.now(UTC)
    claims = tokens.read(settings, token, now=now)
    row = await _signature(session, claims, lock=True)
    tokens.ensure_unused(
        claims,
        stored_nonce_hash=row.confirmation_nonce_hash,
        confirmed_at=row.confirmed_at,
    )
    confirmed = (
        await session.execute(
            text(
                "UPDATE signatures s SET confirmed_at = :now WHERE confirmed_at IS NULL "
                "AND (id = :id OR id = CAST(:first AS uuid)) "
                "RETURNING s.id, s.country, s.organisation_id, s.confirmed_at, "
                "(SELECT o.slug FROM organisations o WHERE o.id = s.organisation_id) AS organisation_slug"
            ),
            {"now": now, "id": claims.signature_id, "first": row.duplicate_of},
        )
    ).all()
    for signature in confirmed:
        await emit_confirmed(session, signature, petition_id=claims.petition_id, petition_slug=row.slug)
    await mark_for_recount(session, {claims.petition_id})
    # The thank-you, with the share link: once per person and petition (keyed by the counted signature).
    await messages.queue_thank_you(
        session, settings, claims.signature_id, row.duplicate_of or claims.signature_id
    )
    return Confirmed(petition=claims.petition_id, petition_slug=row.slug)
