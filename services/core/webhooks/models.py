"""Outbound webhooks: the endpoints admins register, the events Loom emits (once per ``key``), one delivery
per event and endpoint — a queue of its own for the worker's loop — and the log of every attempt.
docs/webhooks.md.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.core.db.base import Base, Timestamps, UUIDPrimaryKey


class EventType(StrEnum):
    signature_confirmed = "signature.confirmed"
    petition_milestone_reached = "petition.milestone_reached"
    campaign_published = "campaign.published"
    disclosure_processed = "disclosure.processed"


class DeliveryState(StrEnum):
    pending = "pending"  # waiting for its (next) attempt, or being attempted right now
    delivered = "delivered"  # the endpoint answered 2xx
    failed = "failed"  # no 2xx within the retry window, or its endpoint was disabled


class WebhookEndpoint(UUIDPrimaryKey, Timestamps, Base):
    """A URL that receives the events of the types it subscribes to, signed with its secret.

    Secrets are stored as is, for the same reason as integrations' (an HMAC needs the raw key; see
    ``services.core.integrations.models.Integration``): returned once, on creation and rotation, never
    listed, never logged. During a rotation's grace period deliveries carry two signatures, one per secret.
    """

    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # The admin who registered it: the disabled notice goes to them.
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    enabled: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # The first failed attempt since the last success (None while healthy): auto-disable counts from it.
    failing_since: Mapped[datetime | None]
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    secret_rotated_at: Mapped[datetime | None]

    def __repr__(self) -> str:  # never show the secrets
        return f"WebhookEndpoint(id={self.id!s}, enabled={self.enabled!r})"


class WebhookEvent(UUIDPrimaryKey, Base):
    """Something that happened, once: ``key`` makes emitting idempotent."""

    __tablename__ = "webhook_events"

    key: Mapped[str] = mapped_column(Text, unique=True)
    type: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)


class WebhookDelivery(UUIDPrimaryKey, Base):
    """One event to one endpoint."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_id_endpoint_id"),
        # The delivery loop's queue: due pending deliveries, oldest first.
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("state = 'pending'")),
        # An endpoint's log, newest first.
        Index("ix_webhook_deliveries_endpoint_id_created_at", "endpoint_id", "created_at"),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    state: Mapped[DeliveryState] = mapped_column(
        String(20), default=DeliveryState.pending, server_default=DeliveryState.pending.value
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Retries stop ``webhook_retry_hours`` after this (creation, or the last manual redelivery).
    retry_from: Mapped[datetime] = mapped_column(server_default=func.now())
    last_attempt_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    delivered_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery: what came back, how fast. Never a response body beyond a short
    snippet (a receiver's error page may echo what it was sent)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery_id_id", "delivery_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1 for the first attempt of the delivery
    attempted_at: Mapped[datetime]
    succeeded: Mapped[bool]
    status_code: Mapped[int | None]
    latency_ms: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    response_snippet: Mapped[str | None] = mapped_column(String(200))
