"""Helpers for tests that send mail for real: committed sessions on a clean email queue, queueing
messages, and reading rows back; the ``mail_sessions`` and ``mail_settings`` fixtures (re-exported by the
conftests of tests/core/mail and tests/worker/mail)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.db.engine import create_sessionmaker
from services.core.mail.models import EmailMessage, MessageCategory
from services.core.mail.queue import NewMessage, queue_many
from tests.smtp_server import SmtpServer


async def clear_mail(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        await session.execute(text("DELETE FROM email_messages"))
        await session.execute(text("DELETE FROM email_suppressions"))


def new_message(to: str, **changes: Any) -> NewMessage:
    fields: dict[str, Any] = {
        "dedup_key": f"test:{uuid.uuid4()}",
        "kind": "test",
        "category": MessageCategory.transactional,
        "to_address": to,
        "subject": "Hello",
        "text_body": "Hello there\n",
        "html_body": "<p>Hello there</p>\n",
    }
    fields.update(changes)
    return NewMessage(**fields)


async def enqueue(
    sessions: async_sessionmaker[AsyncSession], messages: Sequence[NewMessage]
) -> list[uuid.UUID]:
    async with sessions.begin() as session:
        queued = await queue_many(session, messages)
    return list(queued)


async def enqueue_many(
    sessions: async_sessionmaker[AsyncSession], count: int, domain: str = "example.org"
) -> list[uuid.UUID]:
    return await enqueue(sessions, [new_message(f"person{i}@{domain}") for i in range(count)])


async def rows(
    sessions: async_sessionmaker[AsyncSession], ids: Sequence[uuid.UUID] | None = None
) -> list[EmailMessage]:
    async with sessions() as session:
        query = select(EmailMessage).order_by(EmailMessage.created_at, EmailMessage.id)
        if ids is not None:
            query = query.where(EmailMessage.id.in_(ids))
        return list((await session.scalars(query)).all())


async def make_due(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Pending messages due now (skipping a backoff or a deferral)."""
    async with sessions.begin() as session:
        await session.execute(
            text("UPDATE email_messages SET next_attempt_at = now() WHERE state = 'pending'")
        )


@pytest.fixture
async def mail_sessions(engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions that really commit (the sender uses its own connections), on an empty mail queue."""
    sessions = create_sessionmaker(engine)
    await clear_mail(sessions)
    yield sessions
    await clear_mail(sessions)


@pytest.fixture
def mail_settings(settings: Settings, smtp_server: SmtpServer) -> Settings:
    return settings.model_copy(
        update={
            "smtp_url": SecretStr(smtp_server.url),
            "smtp_timeout_seconds": 10.0,
            "mail_batch_size": 50,
            "mail_retry_base_seconds": 60.0,
            "mail_retry_max_seconds": 600.0,
            "mail_rate_per_second": 0,
            "mail_rate_per_domain_per_minute": 0,
            "mail_server_backoff_max_seconds": 60.0,
        }
    )
