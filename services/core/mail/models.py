"""Email messages and the suppression list.

A message is rendered when it is queued, in the transaction that decides it should be sent, and stored
whole (subject, text and HTML parts, extra headers): what the worker sends is exactly what was decided,
however often it is retried. ``dedup_key`` (built from stable ids, e.g. ``confirmation:<signature id>``)
makes queueing idempotent: a retried job queues nothing twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.core.db.base import Base, UUIDPrimaryKey


class MessageState(StrEnum):
    pending = "pending"  # waiting to be sent (again, after a transient failure: see next_attempt_at)
    sent = "sent"  # accepted by the SMTP server
    failed = "failed"  # refused for good (5xx), or out of attempts
    suppressed = "suppressed"  # not sent: the address is on the suppression list


class MessageCategory(StrEnum):
    """What a suppression stops: ``bounced`` addresses get nothing; ``unsubscribed`` ones get no
    ``updates`` but still the ``transactional`` mail they ask for (a confirmation link after signing)."""

    transactional = "transactional"  # confirmation, thank-you
    updates = "updates"  # campaign updates (carry an unsubscribe link)
    staff = "staff"  # to staff: milestones, disabled webhook endpoints, test sends


class SuppressionReason(StrEnum):
    bounced = "bounced"  # the server refused the address for good (5xx)
    unsubscribed = "unsubscribed"  # the person asked to receive no more updates


class EmailMessage(UUIDPrimaryKey, Base):
    __tablename__ = "email_messages"
    __table_args__ = (
        # The sender's queue: due pending messages, oldest first.
        Index(
            "ix_email_messages_due",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
        ),
        Index("ix_email_messages_reference_id_state", "reference_id", "state"),
    )

    dedup_key: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(String(40))  # confirmation, thank_you, update, milestone, …
    category: Mapped[MessageCategory] = mapped_column(String(20))
    # What the message is about (a campaign update's id, …), for progress counts.
    reference_id: Mapped[uuid.UUID | None]
    to_address: Mapped[str] = mapped_column(Text)
    to_canonical: Mapped[str] = mapped_column(Text, index=True)  # for suppression and erasure
    language: Mapped[str | None] = mapped_column(String(35))
    subject: Mapped[str] = mapped_column(Text)
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default=text("'{}'::jsonb"))
    state: Mapped[MessageState] = mapped_column(
        String(20), default=MessageState.pending, server_default=MessageState.pending.value
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]

    def __repr__(self) -> str:  # never show the address
        return f"EmailMessage(id={self.id!s}, kind={self.kind!r}, state={self.state!r})"


class Suppression(Base):
    """An address (canonical form) Loom must not mail, and why."""

    __tablename__ = "email_suppressions"

    email_canonical: Mapped[str] = mapped_column(Text, primary_key=True)
    reason: Mapped[SuppressionReason] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
