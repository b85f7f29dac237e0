"""The outbox: follow-up work written in the same transaction as the business rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.core.db.base import Base, UUIDPrimaryKey


class OutboxJob(UUIDPrimaryKey, Base):
    """One job; its id is the queue's job id, so publishing twice is harmless."""

    __tablename__ = "outbox_jobs"
    __table_args__ = (
        Index(
            "ix_outbox_jobs_unpublished",
            "created_at",
            postgresql_where=text("published_at IS NULL"),
        ),
    )

    task: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    published_at: Mapped[datetime | None]
    # Set in the same transaction as the task's effects: a second delivery sees it and does nothing.
    completed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(String(500))
