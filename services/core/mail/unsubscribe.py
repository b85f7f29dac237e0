"""One-click unsubscribe (RFC 8058) from campaign updates.

A never-expiring token, signed with a key derived for this purpose alone, names the recipient's canonical
email; unsubscribing adds an ``unsubscribed`` suppression and suppresses pending updates (idempotent).
Only a later explicit opt-in undoes it (:func:`resubscribe`). docs/email.md, "Unsubscribe".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import jwt
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.errors import BadRequest
from services.core.mail.models import MessageCategory, SuppressionReason

ALGORITHM = "HS256"
PURPOSE = "unsubscribe"
ONE_CLICK = "List-Unsubscribe=One-Click"


class UnsubscribeTokenInvalid(BadRequest):
    code = "unsubscribe-token-invalid"
    title = "This unsubscribe link is not valid"


class UnsubscribeTokenMissing(BadRequest):
    code = "unsubscribe-token-missing"
    title = "No unsubscribe token was sent"


class Unsubscribed(BaseModel):
    status: str = Field(
        default="unsubscribed", description="Always `unsubscribed`: the address gets no more updates."
    )


def _key(settings: Settings) -> bytes:
    return settings.derived_key(PURPOSE)


def issue(settings: Settings, canonical: str) -> str:
    """A token naming ``canonical`` (the output of ``canonical_email``)."""
    return jwt.encode({"typ": PURPOSE, "sub": canonical}, _key(settings), algorithm=ALGORITHM)


def read(settings: Settings, token: str) -> str:
    """The canonical email a genuine token names; :class:`UnsubscribeTokenInvalid` otherwise."""
    try:
        claims = jwt.decode(token, _key(settings), algorithms=[ALGORITHM], options={"require": ["sub"]})
    except jwt.PyJWTError as exc:
        raise UnsubscribeTokenInvalid() from exc
    subject = claims.get("sub")
    if claims.get("typ") != PURPOSE or not isinstance(subject, str) or "@" not in subject:
        raise UnsubscribeTokenInvalid()
    return subject


def post_url(settings: Settings, token: str) -> str:
    """The one-click URL (the API's own endpoint) for the ``List-Unsubscribe`` header."""
    return f"{settings.public_url.rstrip('/')}/v1/unsubscribe?token={token}"


def page_url(settings: Settings, token: str) -> str:
    """The link in a message's footer (``LOOM_UNSUBSCRIBE_URL``)."""
    return settings.link(settings.unsubscribe_url, token=token)


def headers(settings: Settings, token: str) -> dict[str, str]:
    """The RFC 8058 headers of a message carrying ``token``."""
    return {"List-Unsubscribe": f"<{post_url(settings, token)}>", "List-Unsubscribe-Post": ONE_CLICK}


async def unsubscribe(session: AsyncSession, settings: Settings, token: str) -> Unsubscribed:
    """Suppress the token's address for updates (idempotent), in the caller's transaction."""
    canonical = read(settings, token)
    await session.execute(
        text(
            "INSERT INTO email_suppressions (email_canonical, reason, detail) "
            "VALUES (:email, :reason, :detail) "
            "ON CONFLICT (email_canonical) DO NOTHING"
        ),
        {
            "email": canonical,
            "reason": SuppressionReason.unsubscribed.value,
            "detail": "one-click unsubscribe",
        },
    )
    await session.execute(
        text(
            "UPDATE email_messages SET state = 'suppressed' "
            "WHERE to_canonical = :email AND category = :category AND state = 'pending'"
        ),
        {"email": canonical, "category": MessageCategory.updates.value},
    )
    return Unsubscribed()


def resubscribe_sql(signed: str) -> str:
    """The statement of :func:`resubscribe` for signatures read from ``signed`` (a table or CTE with
    ``email_canonical``, ``opt_in`` and ``created_at``), for a caller deciding a batch in one statement."""
    return (
        "DELETE FROM email_suppressions e "  # noqa: S608 - ``signed`` is a constant name chosen by the caller
        f"USING {signed} b WHERE b.opt_in AND e.email_canonical = b.email_canonical "
        "AND e.reason = 'unsubscribed' AND e.created_at < b.created_at"
    )


async def resubscribe(session: AsyncSession, emails: Sequence[str], signed_at: Sequence[datetime]) -> int:
    """Lift the ``unsubscribed`` suppression of each canonical email whose signature (opting in to updates)
    was made after it; returns how many were lifted. A bounce suppression is never lifted here."""
    if not emails:
        return 0
    result = await session.execute(
        text(
            "DELETE FROM email_suppressions e "
            "USING unnest(CAST(:emails AS text[]), CAST(:times AS timestamptz[])) AS b(email, at) "
            "WHERE e.email_canonical = b.email AND e.reason = 'unsubscribed' AND e.created_at < b.at "
            "RETURNING e.email_canonical"
        ),
        {"emails": list(emails), "times": list(signed_at)},
    )
    return len(result.all())


__all__ = [
    "ONE_CLICK",
    "UnsubscribeTokenInvalid",
    "UnsubscribeTokenMissing",
    "Unsubscribed",
    "headers",
    "issue",
    "page_url",
    "post_url",
    "read",
    "resubscribe",
    "resubscribe_sql",
    "unsubscribe",
]
