"""Queueing email: idempotent by dedup key, suppression by category, a NOTIFY for the sender."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.core.db.engine import async_url
from services.core.mail.models import (
    EmailMessage,
    MessageCategory,
    MessageState,
    Suppression,
    SuppressionReason,
)
from services.core.mail.queue import NOTIFY_CHANNEL, NewMessage, queue, queue_many


def message(to: str = "Jane.Doe+news@GMail.com", *, key: str | None = None, **changes: object) -> NewMessage:
    fields: dict[str, object] = {
        "dedup_key": key or f"test:{uuid.uuid4()}",
        "kind": "test",
        "category": MessageCategory.transactional,
        "to_address": to,
        "subject": "Hello",
        "text_body": "Hello there",
    }
    fields.update(changes)
    return NewMessage(**fields)  # type: ignore[arg-type]


async def test_a_message_is_queued_once_per_dedup_key(db: AsyncSession) -> None:
    first = await queue(db, message(key="confirmation:one"))
    again = await queue(db, message(key="confirmation:one", subject="Different"))
    assert first is not None
    assert again is None
    rows = (await db.scalars(select(EmailMessage).where(EmailMessage.dedup_key == "confirmation:one"))).all()
    assert [(r.id, r.subject, r.state, r.to_canonical) for r in rows] == [
        (first, "Hello", MessageState.pending, "janedoe@gmail.com")
    ]


async def test_unsubscribed_addresses_get_transactional_mail_but_no_updates(db: AsyncSession) -> None:
    db.add(Suppression(email_canonical="janedoe@gmail.com", reason=SuppressionReason.unsubscribed))
    await db.flush()
    queued = await queue_many(
        db,
        [
            message("JaneDoe@googlemail.com", category=MessageCategory.transactional),
            message("jane.doe@gmail.com", category=MessageCategory.updates),
            message("someone@example.org", category=MessageCategory.updates),
        ],
    )
    assert sorted(queued.values()) == sorted(
        [MessageState.pending, MessageState.suppressed, MessageState.pending]
    )
    states = {
        (row.to_address, row.state)
        for row in (await db.scalars(select(EmailMessage).where(EmailMessage.id.in_(queued)))).all()
    }
    assert states == {
        ("JaneDoe@googlemail.com", MessageState.pending),
        ("jane.doe@gmail.com", MessageState.suppressed),
        ("someone@example.org", MessageState.pending),
    }


async def test_bounced_addresses_get_nothing(db: AsyncSession) -> None:
    db.add(Suppression(email_canonical="gone@example.org", reason=SuppressionReason.bounced))
    await db.flush()
    queued = await queue_many(
        db,
        [message("Gone@Example.org", category=c) for c in MessageCategory],
    )
    assert set(queued.values()) == {MessageState.suppressed}


async def test_queueing_notifies_the_sender_on_commit(engine: AsyncEngine, database_url: str) -> None:
    listener = await asyncpg.connect(async_url(database_url).replace("postgresql+asyncpg", "postgresql"))
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(NOTIFY_CHANNEL, lambda *args: heard.put_nowait(args[2]))
    key = f"test:{uuid.uuid4()}"
    try:
        async with AsyncSession(engine) as session:
            await queue(session, message(key=key))
            await asyncio.sleep(0.05)
            assert heard.empty()  # not before the commit
            await session.commit()
        assert await asyncio.wait_for(heard.get(), timeout=5) == NOTIFY_CHANNEL
    finally:
        await listener.close()
        async with engine.begin() as conn:
            await conn.execute(delete(EmailMessage).where(EmailMessage.dedup_key == key))
