"""Fixtures of the email tests: the pipeline, job contexts for running tasks in the test's transaction,
and the queued messages."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.mail.models import EmailMessage
from services.core.outbox.registry import JobContext
from tests.api.network.conftest import headers_for
from tests.api.signatures.conftest import run_pipeline

__all__ = ["headers_for", "job", "run_pipeline"]

Job = Callable[..., JobContext]


@pytest.fixture
def job(db: AsyncSession, settings: Settings) -> Job:
    """``job()``: the context a task gets, on the test's session (``job(settings=…)`` to change them)."""

    def make(**changes: Any) -> JobContext:
        values: dict[str, Any] = {
            "session": db,
            "settings": settings,
            "job_id": uuid.uuid4(),
            "attempt": 1,
        }
        values.update(changes)
        return JobContext(**values)

    return make


async def queued(db: AsyncSession, **where: Any) -> list[EmailMessage]:
    """The messages matching ``where`` (column = value), oldest first."""
    query = select(EmailMessage).order_by(EmailMessage.created_at, EmailMessage.dedup_key)
    for column, value in where.items():
        query = query.where(getattr(EmailMessage, column) == value)
    rows = list((await db.scalars(query)).all())
    for row in rows:
        await db.refresh(row)
    return rows
