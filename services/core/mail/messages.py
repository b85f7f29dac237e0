"""The messages Loom sends to signers: what goes in each, in which language, under which dedup key.

Each builder renders its template in the signer's language (else the campaign's default) and queues it in
the caller's transaction: ``confirmation`` (one per token issued) and ``thank_you`` (one per person and
petition). The ``*_context`` functions are also what staff previews render. docs/email.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.languages import choose_language
from services.core.config import Settings
from services.core.mail.models import MessageCategory
from services.core.mail.queue import NewMessage, queue_many
from services.core.mail.rendering import TEMPLATES, Rendered, render
from services.core.signatures import tokens
from services.core.signatures.names import name_for_mail
from services.core.signatures.tokens import ConfirmationRequest

CONFIRMATION = "confirmation"
THANK_YOU = "thank_you"


def title_in(translations: Mapping[str, Any], language: str, default: str) -> str:
    """A campaign's or petition's title in ``language`` (or the closest it has, else its default)."""
    chosen = choose_language(list(translations), [language], default)
    entry = translations.get(chosen) or translations.get(default) or {}
    title = entry.get("title") if isinstance(entry, Mapping) else None
    return str(title) if title else ""


def confirmation_context(
    settings: Settings, *, name: str | None, petition_title: str, campaign_title: str, token: str
) -> dict[str, Any]:
    # The name is the only text from the (unauthenticated) signer in their mail: checked again here, so a
    # name stored before today's rule is left out rather than carried to whatever address was given.
    return {
        "name": name_for_mail(name),
        "petition_title": petition_title,
        "campaign_title": campaign_title,
        "confirm_url": settings.link(settings.confirm_url, token=token),
        "expires_days": tokens.DEFAULT_LIFETIME.days,
    }


def thank_you_context(
    settings: Settings, *, name: str | None, petition_title: str, campaign_title: str, slug: str
) -> dict[str, Any]:
    return {
        "name": name_for_mail(name),
        "petition_title": petition_title,
        "campaign_title": campaign_title,
        "share_url": settings.link(settings.petition_url, slug=slug),
    }


# The signer, their petition and its campaign: what the signer mails need.
_SIGNERS = text(
    "SELECT s.id, s.email, s.name, s.language, p.slug, p.translations AS petition_translations, "
    "p.default_language AS petition_language, c.translations AS campaign_translations, "
    "c.default_language AS campaign_language "
    "FROM signatures s JOIN petitions p ON p.id = s.petition_id JOIN campaigns c ON c.id = p.campaign_id "
    "WHERE s.id = ANY(:ids) AND s.email IS NOT NULL AND s.erased_at IS NULL"
)


def _render_for(kind: str, row: Row[Any], context: Mapping[str, Any]) -> Rendered:
    """Render ``kind`` for the signer of ``row`` in their language (else the campaign's)."""
    return render(kind, context, language=row.language, fallback=row.campaign_language)


def _titles(kind: str, row: Row[Any]) -> tuple[str, str]:
    language = TEMPLATES.choose_language(kind, row.language, row.campaign_language)
    return (
        title_in(row.petition_translations, language, row.petition_language),
        title_in(row.campaign_translations, language, row.campaign_language),
    )


async def queue_confirmations(
    session: AsyncSession, settings: Settings, requests: Sequence[ConfirmationRequest]
) -> int:
    """Queue the confirmation mail of each newly issued token; returns how many were queued."""
    if not requests:
        return 0
    rows = {
        row.id: row
        for row in await session.execute(_SIGNERS, {"ids": [request.signature_id for request in requests]})
    }
    messages: list[NewMessage] = []
    for request in requests:
        row = rows.get(request.signature_id)
        if row is None:
            continue
        petition_title, campaign_title = _titles(CONFIRMATION, row)
        context = confirmation_context(
            settings,
            name=row.name,
            petition_title=petition_title,
            campaign_title=campaign_title,
            token=request.token,
        )
        rendered = _render_for(CONFIRMATION, row, context)
        messages.append(
            NewMessage.of(
                rendered,
                dedup_key=f"confirmation:{row.id}:{request.nonce_hash[:16]}",
                kind=CONFIRMATION,
                category=MessageCategory.transactional,
                to_address=row.email,
                reference_id=row.id,
            )
        )
    return len(await queue_many(session, messages))


async def queue_thank_you(
    session: AsyncSession, settings: Settings, signature_id: uuid.UUID, counted_id: uuid.UUID
) -> bool:
    """Queue the thank-you of a confirmed signature (once per person and petition: the dedup key names
    the counted signature); False when already queued or the signature has no email."""
    row = (await session.execute(_SIGNERS, {"ids": [signature_id]})).one_or_none()
    if row is None:
        return False
    petition_title, campaign_title = _titles(THANK_YOU, row)
    context = thank_you_context(
        settings, name=row.name, petition_title=petition_title, campaign_title=campaign_title, slug=row.slug
    )
    rendered = _render_for(THANK_YOU, row, context)
    queued = await queue_many(
        session,
        [
            NewMessage.of(
                rendered,
                dedup_key=f"thank_you:{counted_id}",
                kind=THANK_YOU,
                category=MessageCategory.transactional,
                to_address=row.email,
                reference_id=counted_id,
            )
        ],
    )
    return bool(queued)
