"""Integrations: integrators (e.g. a partner's Action Network account) that deliver signatures to Loom by
Standard Webhooks, and the webhook ids already seen from each (replay protection)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from services.core.db.base import Base, Timestamps, UUIDPrimaryKey


class Integration(UUIDPrimaryKey, Timestamps, Base):
    """An integrator delivering signatures by webhook.

    The signing secrets (``secret`` and, during a rotation's grace period, ``previous_secret``) are stored
    **as is**, not hashed and not encrypted: verifying a Standard Webhooks signature recomputes an HMAC,
    which needs the raw key, so a hash cannot be used; and encrypting them with a key from the settings
    would guard only against someone who reads the database but not the environment, while tying every
    integration to that key's own rotation. Instead the columns are write-only as far as the API goes:
    the secret is returned once, when it is created or rotated, never by list or get, and never logged.
    """

    __tablename__ = "integrations"

    name: Mapped[str] = mapped_column(String(200))
    default_petition_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("petitions.id", ondelete="SET NULL"), index=True
    )
    # The partner organisation the integration's signatures are attributed to.
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True
    )
    active: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    # Its signatures are attested (they count at once); this asks for confirmation mail to them anyway.
    send_confirmation_mail: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    secret: Mapped[str] = mapped_column(Text)  # whsec_<base64>; never returned after creation or rotation
    previous_secret: Mapped[str | None] = mapped_column(Text)  # still valid until previous_secret_expires_at
    previous_secret_expires_at: Mapped[datetime | None]
    secret_rotated_at: Mapped[datetime | None]

    def __repr__(self) -> str:  # never show the secrets
        return f"Integration(id={self.id!s}, name={self.name!r})"


class SeenWebhook(Base):
    """A ``webhook-id`` already received from an integration: a delivery with the same id is a replay."""

    __tablename__ = "integration_seen_webhooks"

    integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    webhook_id: Mapped[str] = mapped_column(Text, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
