"""Sending queued email: the statements and rules of the worker's sender (``services.worker.mail.sender``).

:func:`claim` leases due ``pending`` messages (``FOR UPDATE SKIP LOCKED``) or marks them ``suppressed``;
:func:`has_due` / :func:`next_due_in` say when to wake; :func:`mark_sent` and :func:`record` write outcomes
on a plain asyncpg connection (cheap at hundreds a second); :func:`classify` reads a failure.
docs/email.md, "The sender".
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

import aiosmtplib
import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.mail import message as mime

# Mirrors services.core.mail.queue.suppressing_reasons: bounced blocks everything, unsubscribed updates.
_CLAIM = text(
    "WITH due AS ("
    " SELECT m.id, EXISTS (SELECT 1 FROM email_suppressions s WHERE s.email_canonical = m.to_canonical"
    "  AND (s.reason = 'bounced' OR (s.reason = 'unsubscribed' AND m.category = 'updates'))) AS blocked"
    " FROM email_messages m WHERE m.state = 'pending' AND m.next_attempt_at <= now()"
    " ORDER BY m.next_attempt_at LIMIT :limit FOR UPDATE OF m SKIP LOCKED) "
    "UPDATE email_messages e SET"
    " state = CASE WHEN due.blocked THEN 'suppressed' ELSE e.state END,"
    " next_attempt_at = CASE WHEN due.blocked THEN e.next_attempt_at"
    "  ELSE now() + make_interval(secs => :lease) END "
    "FROM due WHERE e.id = due.id "
    "RETURNING e.id, e.state, e.to_address, e.to_canonical, e.subject, e.text_body, e.html_body, e.headers,"
    " e.created_at, e.attempts"
)
_HAS_DUE = text(
    "SELECT EXISTS (SELECT 1 FROM email_messages WHERE state = 'pending' AND next_attempt_at <= now())"
)
_NEXT_DUE = text(
    "SELECT extract(epoch FROM min(next_attempt_at) - now()) FROM email_messages WHERE state = 'pending'"
)
# The recorder's statements, for asyncpg ($n parameters): run on a connection of its own, one round trip each.
_MARK_SENT = (
    "UPDATE email_messages SET state = 'sent', sent_at = now(), attempts = attempts + 1, last_error = NULL "
    "WHERE id = ANY($1::uuid[]) AND state = 'pending'"
)
_MARK_RETRY = (
    "UPDATE email_messages e SET attempts = e.attempts + 1, last_error = r.error,"
    " state = CASE WHEN e.attempts + 1 >= $2 OR e.created_at < now() - make_interval(secs => $3)"
    "  THEN 'failed' ELSE 'pending' END,"
    " failed_at = CASE WHEN e.attempts + 1 >= $2 OR e.created_at < now() - make_interval(secs => $3)"
    "  THEN now() END,"
    " next_attempt_at = now() + make_interval(secs => r.delay) "
    "FROM jsonb_to_recordset($1::jsonb) AS r(id uuid, delay float8, error text) "
    "WHERE e.id = r.id AND e.state = 'pending'"
)
_MARK_FAILED = (
    "UPDATE email_messages e SET state = 'failed', failed_at = now(), attempts = e.attempts + 1,"
    " last_error = r.error "
    "FROM jsonb_to_recordset($1::jsonb) AS r(id uuid, error text) "
    "WHERE e.id = r.id AND e.state = 'pending'"
)
_SUPPRESS = (
    "INSERT INTO email_suppressions (email_canonical, reason, detail) "
    "SELECT DISTINCT ON (r.canonical) r.canonical, 'bounced', r.error "
    "FROM jsonb_to_recordset($1::jsonb) AS r(canonical text, error text) "
    "ON CONFLICT (email_canonical) DO UPDATE SET reason = 'bounced', detail = EXCLUDED.detail "
    "WHERE email_suppressions.reason <> 'bounced'"
)
_RESCHEDULE = (
    "UPDATE email_messages e SET next_attempt_at = to_timestamp(r.at) "
    "FROM jsonb_to_recordset($1::jsonb) AS r(id uuid, at float8) "
    "WHERE e.id = r.id AND e.state = 'pending'"
)


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    to_address: str
    to_canonical: str
    subject: str
    text_body: str
    html_body: str | None
    headers: dict[str, str]
    created_at: datetime
    attempts: int

    @property
    def domain(self) -> str:
        return self.to_canonical.rpartition("@")[2]


class Verdict(Enum):
    retry = "retry"  # transient, about this message: an attempt, then backoff
    bounce = "bounce"  # the recipient refused for good: failed, address suppressed
    fail = "fail"  # the message refused for good: failed
    lost = "lost"  # the connection broke during this message: an attempt for it; the sender reconnects
    server = "server"  # about the server or Loom's account: no attempt; the sender pauses


def classify(exc: BaseException) -> tuple[Verdict, str]:
    """What a failed send means, and a description free of addresses."""
    if isinstance(exc, mime.InvalidMessage):
        return Verdict.fail, str(exc)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = exc.recipients[0] if exc.recipients else None
        code = refused.code if refused is not None else 550
        detail = mime.scrub(f"RCPT {code} {refused.message if refused is not None else ''}")
        if code == 421:
            return Verdict.server, detail
        return (Verdict.bounce if code >= 500 else Verdict.retry), detail
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        detail = mime.scrub(f"MAIL {exc.code} {exc.message}")
        if exc.code == 552:  # message size exceeds the server's limit: about this message
            return Verdict.fail, detail
        return Verdict.server, detail
    if isinstance(exc, aiosmtplib.SMTPNotSupported):  # e.g. SMTPUTF8 needed, not offered
        return Verdict.fail, mime.scrub(str(exc))
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPTimeoutError):
        return Verdict.lost, type(exc).__name__
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        stage = "DATA" if isinstance(exc, aiosmtplib.SMTPDataError) else "SMTP"
        detail = mime.scrub(f"{stage} {exc.code} {exc.message}")
        if exc.code == 421 or exc.code in (530, 535):  # closing down; authentication required / failed
            return Verdict.server, detail
        return (Verdict.fail if exc.code >= 500 else Verdict.retry), detail
    if isinstance(exc, OSError | TimeoutError | aiosmtplib.SMTPException):
        return Verdict.lost, type(exc).__name__
    if isinstance(exc, ValueError):  # aiosmtplib refusing an address it can't send safely
        return Verdict.fail, "invalid recipient address"
    return Verdict.lost, type(exc).__name__


@dataclass
class Outcomes:
    """Send outcomes waiting to be written: ids sent; retries, failures, bounces and reschedules as
    JSON-ready records."""

    sent: list[str] = field(default_factory=list)
    retries: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    bounces: list[dict[str, Any]] = field(default_factory=list)
    reschedules: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.sent or self.retries or self.failures or self.bounces or self.reschedules)


async def claim(session: AsyncSession, limit: int, *, lease: float) -> tuple[list[Claimed], int]:
    """Lease up to ``limit`` due messages for ``lease`` seconds, in the caller's transaction; returns them
    (oldest first) and how many were marked suppressed instead."""
    rows = (await session.execute(_CLAIM, {"limit": limit, "lease": float(lease)})).all()
    claimed = [
        Claimed(
            r.id,
            r.to_address,
            r.to_canonical,
            r.subject,
            r.text_body,
            r.html_body,
            r.headers or {},
            r.created_at,
            r.attempts,
        )
        for r in rows
        if r.state == "pending"
    ]
    claimed.sort(key=lambda row: row.created_at)
    return claimed, len(rows) - len(claimed)


async def has_due(session: AsyncSession) -> bool:
    return bool(await session.scalar(_HAS_DUE))


async def next_due_in(session: AsyncSession) -> float | None:
    """Seconds until the earliest pending message is due (None: nothing pending)."""
    value = await session.scalar(_NEXT_DUE)
    return None if value is None else max(0.0, float(value))


async def mark_sent(conn: asyncpg.Connection, ids: list[str]) -> None:
    await conn.execute(_MARK_SENT, ids)


async def record(conn: asyncpg.Connection, outcomes: Outcomes, settings: Settings) -> None:
    """Write these outcomes, in the caller's transaction on ``conn``."""
    if outcomes.sent:
        await conn.execute(_MARK_SENT, outcomes.sent)
    if outcomes.retries:
        await conn.execute(
            _MARK_RETRY,
            json.dumps(outcomes.retries),
            settings.mail_max_attempts,
            settings.mail_max_age_hours * 3600.0,
        )
    if outcomes.failures:
        await conn.execute(_MARK_FAILED, json.dumps(outcomes.failures))
    if outcomes.bounces:
        await conn.execute(_SUPPRESS, json.dumps(outcomes.bounces))
    if outcomes.reschedules:
        await conn.execute(_RESCHEDULE, json.dumps(outcomes.reschedules))
