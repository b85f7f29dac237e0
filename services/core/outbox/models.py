"""The outbox: follow-up work written in the same transaction as the business rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.core.db.base import Base, UUIDPrimaryKey


class OutboxJob(UUIDPrimaryKey, Base):
    """One job; its id is the queue's job id, so publishing twice is harmless.

    A job is *unpublished* (``published_at`` unset), *open* (published, neither completed nor failed),
    *completed* (``completed_at``, set in the same transaction as the task's effects) or *failed*
    (``failed_at``: a permanent error, or transient ones ``worker_max_tries`` times).
    """

    __tablename__ = "outbox_jobs"
    __table_args__ = (
        Index(
            "ix_outbox_jobs_unpublished",
            "created_at",
            postgresql_where=text("published_at IS NULL"),
        ),
        # The relay's second query: open jobs published long ago (Redis may have lost them).
        Index(
            "ix_outbox_jobs_open",
            "published_at",
            postgresql_where=text("completed_at IS NULL AND failed_at IS NULL"),
        ),
        # Dead letters are rare; counting them (metrics) should not scan every completed job.
        Index("ix_outbox_jobs_failed", "failed_at", postgresql_where=text("failed_at IS NOT NULL")),
    )

    task: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    published_at: Mapped[datetime | None]
    # Set in the same transaction as the task's effects: a second delivery sees it and does nothing.
    completed_at: Mapped[datetime | None]
    # Set when the job will not be tried again; the row is kept (a dead letter) for inspection.
    failed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(String(500))
