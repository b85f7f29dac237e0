"""Privacy requests: erasing and exporting what Loom stores about one person, found by canonical email.

Erasure keeps each signature as a row, so counts do not change, nulls what identifies the person and
drops their ``petition_signers`` rows; the suppression entry is kept. Emails are never logged.
README, "Privacy"; docs/signatures.md.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.schemas import EMAIL_PATTERN
from services.core.signatures.errors import InvalidSignature
from services.core.signatures.identity import InvalidEmail, canonical_email
from services.core.signatures.models import Channel, SignatureState
from services.core.signatures.recount import mark_for_recount

log = logging.getLogger(__name__)


class PrivacyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(
        min_length=1,
        max_length=320,
        description="The person's email address.",
        json_schema_extra={"format": "email", "pattern": EMAIL_PATTERN},
    )


class Erased(BaseModel):
    signatures: int = Field(description="How many signatures were erased.")
    messages: int = Field(default=0, description="How many email messages to the person were erased.")


class ExportedSignature(BaseModel):
    id: uuid.UUID
    petition_id: uuid.UUID
    petition_slug: str
    created_at: datetime
    channel: Channel
    state: SignatureState
    duplicate_of: uuid.UUID | None
    name: str | None
    email: str | None
    postal_code: str | None
    country: str | None
    language: str | None
    opt_in: bool
    consent_version: int
    organisation_id: uuid.UUID | None = Field(description="The partner organisation it came through.")
    source: str | None
    integration_id: uuid.UUID | None
    external_id: str | None
    ip_hash: str | None = Field(description="A keyed hash of the client's address (never the address).")
    confirmation_requested_at: datetime | None
    confirmed_at: datetime | None = Field(description="When the signer confirmed the address by email.")
    attested: bool = Field(
        description="Vouched for by the organisation that collected it (counts unconfirmed)."
    )
    invalidation_id: uuid.UUID | None


class ExportedMessage(BaseModel):
    id: uuid.UUID
    kind: str = Field(description="`confirmation`, `thank_you`, `campaign_update`, …")
    category: str
    to_address: str
    language: str | None
    subject: str
    text_body: str
    state: str = Field(description="`pending`, `sent`, `failed` or `suppressed` (not sent).")
    created_at: datetime
    sent_at: datetime | None


class ExportedSuppression(BaseModel):
    reason: str = Field(description="`unsubscribed` (from campaign updates) or `bounced`.")
    created_at: datetime


class Export(BaseModel):
    signatures: list[ExportedSignature]
    messages: list[ExportedMessage] = Field(default_factory=list, description="Email sent (or to be sent).")
    suppression: ExportedSuppression | None = Field(
        default=None, description="Whether Loom is told not to mail the address, and why."
    )


def _canonical(email: str) -> str:
    try:
        return canonical_email(email)
    except InvalidEmail:
        raise InvalidSignature("email", "Not a valid email address.", "value_error") from None


async def erase(session: AsyncSession, email: str, *, now: datetime | None = None) -> Erased:
    """Erase the personal data of every signature with this (canonical) email, in the caller's
    transaction."""
    canonical = _canonical(email)
    now = now or datetime.now(UTC)
    rows = (
        await session.execute(
            text(
                "UPDATE signatures SET name = NULL, email = NULL, email_canonical = NULL, "
                "postal_code = NULL, name_key = NULL, postal_key = NULL, ip_hash = NULL, source = NULL, "
                "confirmation_nonce_hash = NULL, erased_at = :now "
                "WHERE email_canonical = :email RETURNING id, petition_id"
            ),
            {"email": canonical, "now": now},
        )
    ).all()
    await session.execute(
        text("DELETE FROM petition_signers WHERE email_canonical = :email OR signature_id = ANY(:ids)"),
        {"email": canonical, "ids": [row.id for row in rows]},
    )
    await mark_for_recount(session, {row.petition_id for row in rows})
    # Their email: kept as rows (an update's counts stay right) with the address and content blanked;
    # one not yet sent never will be.
    messages = await session.execute(
        text(
            "UPDATE email_messages SET to_address = '', to_canonical = '', subject = '', text_body = '', "
            "html_body = NULL, headers = '{}'::jsonb, last_error = NULL, dedup_key = 'erased:' || id, "
            "state = CASE WHEN state = 'pending' THEN 'suppressed' ELSE state END "
            "WHERE to_canonical = :email RETURNING id"
        ),
        {"email": canonical},
    )
    erased_messages = len(messages.all())
    log.info("privacy erasure: %d signatures, %d messages erased", len(rows), erased_messages)
    return Erased(signatures=len(rows), messages=erased_messages)


async def export(session: AsyncSession, email: str) -> Export:
    """Every signature with this (canonical) email, oldest first."""
    canonical = _canonical(email)
    rows = (
        await session.execute(
            text(
                "SELECT s.id, s.petition_id, p.slug AS petition_slug, s.created_at, s.channel, s.state, "
                "s.duplicate_of, s.name, s.email, s.postal_code, s.country, s.language, s.opt_in, "
                "s.consent_version, s.organisation_id, s.source, s.integration_id, s.external_id, "
                "s.ip_hash, s.confirmation_requested_at, s.confirmed_at, s.attested, s.invalidation_id "
                "FROM signatures s JOIN petitions p ON p.id = s.petition_id "
                "WHERE s.email_canonical = :email ORDER BY s.created_at, s.id"
            ),
            {"email": canonical},
        )
    ).all()
    messages = await session.execute(
        text(
            "SELECT id, kind, category, to_address, language, subject, text_body, state, created_at, sent_at "
            "FROM email_messages WHERE to_canonical = :email ORDER BY created_at, id"
        ),
        {"email": canonical},
    )
    suppression = (
        await session.execute(
            text("SELECT reason, created_at FROM email_suppressions WHERE email_canonical = :email"),
            {"email": canonical},
        )
    ).one_or_none()
    return Export(
        signatures=[ExportedSignature.model_validate(row._asdict()) for row in rows],
        messages=[ExportedMessage.model_validate(row._asdict()) for row in messages],
        suppression=ExportedSuppression.model_validate(suppression._asdict()) if suppression else None,
    )
