"""Campaign updates: drafts until sent, immutable after.

Sending queues the messages in batches in canonical-email order, each batch committing its messages with
``cursor`` and the next batch's job. docs/email.md, "Campaign updates".
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.core.db.base import Base, Timestamps, UUIDPrimaryKey


class UpdateState(StrEnum):
    draft = "draft"  # editable; test sends allowed
    sending = "sending"  # the send job is queueing messages
    sent = "sent"  # every recipient's message is queued (the sender delivers them)


class BodyFormat(StrEnum):
    text = "text"  # plain text: escaped, paragraphs and line breaks kept
    markdown = "markdown"  # CommonMark, raw HTML not allowed


class CampaignUpdate(UUIDPrimaryKey, Timestamps, Base):
    __tablename__ = "campaign_updates"

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    # {language: {"subject": …, "body": …}}; holds the campaign's default language.
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)
    format: Mapped[BodyFormat] = mapped_column(String(20))
    state: Mapped[UpdateState] = mapped_column(
        String(20), default=UpdateState.draft, server_default=UpdateState.draft.value
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    send_requested_at: Mapped[datetime | None]
    send_requested_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The send job's progress: the last canonical email queued, and how many recipients so far.
    cursor: Mapped[str | None] = mapped_column(Text)
    recipients: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    batches: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    finished_at: Mapped[datetime | None]
