"""Queueing email: rows in ``email_messages`` written in the caller's transaction.

``queue`` inserts with ``ON CONFLICT (dedup_key) DO NOTHING``, so queueing is idempotent; a message to an
address on the suppression list (for its category) is stored as ``suppressed`` and never sent. The
insert also sends ``NOTIFY loom_mail``, which PostgreSQL delivers on commit: the worker's sender wakes at
once instead of waiting for its next poll.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.mail.models import MessageCategory, MessageState, SuppressionReason
from services.core.mail.rendering import Rendered
from services.core.signatures.identity import canonical_email

NOTIFY_CHANNEL = "loom_mail"


@dataclass(frozen=True)
class NewMessage:
    dedup_key: str  # from stable ids: "confirmation:<signature id>", "update:<update id>:<canonical email>"
    kind: str
    category: MessageCategory
    to_address: str
    subject: str
    text_body: str
    html_body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    language: str | None = None
    reference_id: uuid.UUID | None = None

    @classmethod
    def of(
        cls,
        rendered: Rendered,
        *,
        dedup_key: str,
        kind: str,
        category: MessageCategory,
        to_address: str,
        reference_id: uuid.UUID | None = None,
    ) -> NewMessage:
        """A message of a rendered template: its subject, parts and language."""
        return cls(
            dedup_key=dedup_key,
            kind=kind,
            category=category,
            to_address=to_address,
            subject=rendered.subject,
            text_body=rendered.text_body,
            html_body=rendered.html_body,
            language=rendered.language,
            reference_id=reference_id,
        )


def suppressing_reasons(category: MessageCategory) -> list[str]:
    """The suppression reasons that stop a message of this category."""
    if category is MessageCategory.updates:
        return [SuppressionReason.bounced.value, SuppressionReason.unsubscribed.value]
    return [SuppressionReason.bounced.value]


_INSERT = text(
    "INSERT INTO email_messages (id, dedup_key, kind, category, reference_id, to_address, to_canonical, "
    "language, subject, text_body, html_body, headers, state) "
    "SELECT m.id, m.dedup_key, m.kind, m.category, m.reference_id, m.to_address, m.to_canonical, m.language, "
    "m.subject, m.text_body, m.html_body, m.headers, "
    "CASE WHEN EXISTS (SELECT 1 FROM email_suppressions s WHERE s.email_canonical = m.to_canonical "
    "AND s.reason = ANY(m.reasons)) THEN 'suppressed' ELSE 'pending' END "
    "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS m(id uuid, dedup_key text, kind text, category text, "
    "reference_id uuid, to_address text, to_canonical text, language text, subject text, text_body text, "
    "html_body text, headers jsonb, reasons text[]) "
    "ON CONFLICT (dedup_key) DO NOTHING RETURNING id, state"
)


async def queue_many(session: AsyncSession, messages: Sequence[NewMessage]) -> dict[uuid.UUID, MessageState]:
    """Queue these messages (in the session's transaction); returns the new rows' ids and states (a
    message whose dedup key was already queued is left out)."""
    if not messages:
        return {}
    rows: list[dict[str, Any]] = [
        {
            "id": str(uuid.uuid4()),
            "dedup_key": m.dedup_key,
            "kind": m.kind,
            "category": m.category.value,
            "reference_id": str(m.reference_id) if m.reference_id else None,
            "to_address": m.to_address,
            "to_canonical": canonical_email(m.to_address),
            "language": m.language,
            "subject": m.subject,
            "text_body": m.text_body,
            "html_body": m.html_body,
            "headers": m.headers,
            "reasons": suppressing_reasons(m.category),
        }
        for m in messages
    ]
    result = await session.execute(_INSERT, {"rows": json.dumps(rows)})
    queued = {row.id: MessageState(row.state) for row in result}
    if any(state is MessageState.pending for state in queued.values()):
        await session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
    return queued


async def queue(session: AsyncSession, message: NewMessage) -> uuid.UUID | None:
    """Queue one message; returns its id, or None if its dedup key was already queued."""
    queued = await queue_many(session, [message])
    return next(iter(queued), None)


async def backlog(session: AsyncSession) -> tuple[int, float]:
    """Email messages pending and due now, and how long (seconds) the longest-waiting one has been due
    (a stuck sender or an unreachable server shows as a growing age). Reads the sender's partial index."""
    row = (
        await session.execute(
            text(
                "SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(next_attempt_at)), 0) "
                "FROM email_messages WHERE state = 'pending' AND next_attempt_at <= clock_timestamp()"
            )
        )
    ).one()
    return int(row[0]), float(row[1])
