"""A campaign update sent by a real worker: the send job's chain (one job per batch, each enqueueing the
next) runs through the outbox and arq until every recipient's message is queued, once."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.campaigns.models import CountPolicy
from services.core.config import Settings
from services.core.refs import Ref
from services.core.signatures import pipeline
from services.core.updates import service
from services.core.updates.models import BodyFormat
from services.core.updates.schemas import UpdateCreate, UpdateText
from services.core.users.models import Role
from services.core.users.security import Principal
from services.worker import runtime
from services.worker.settings import load_tasks
from tests.factories import make_petition, make_signature


async def test_the_worker_sends_an_update_in_batches(
    factory: async_sessionmaker[AsyncSession],
    job_settings: Settings,
    database_url: str,
    redis_url: str,
    job_queue_name: str,
) -> None:
    assert "services.worker.updates.tasks" in load_tasks()
    async with factory.begin() as session:
        petition = await make_petition(session, count_policy=CountPolicy.all_unique)
        emails = [f"person{i}-{uuid.uuid4().hex[:6]}@example.org" for i in range(5)]
        for email in emails:
            await make_signature(session, petition, email=email, opt_in=True)
    try:
        async with factory.begin() as session:
            await pipeline.process_batch(session, limit=100)
            await session.execute(
                text("UPDATE signatures SET confirmed_at = now() WHERE petition_id = :p"), {"p": petition.id}
            )
        async with factory.begin() as session:
            principal = Principal(kind="api_key", id=uuid.uuid4(), role=Role.coordinator)
            created = await service.create_update(
                session,
                principal,
                Ref.of_id(petition.campaign_id),
                UpdateCreate(
                    content={"en": UpdateText(subject="News", body="We won.")}, format=BodyFormat.text
                ),
            )
            await service.start_sending(session, principal, Ref.of_id(petition.campaign_id), str(created.id))
        options: dict[str, Any] = runtime.worker_options(
            job_settings.model_copy(update={"update_batch_size": 2}),
            database_url=database_url,
            redis_url=redis_url,
            queue_name=job_queue_name,
            relay=True,
            loops=False,
        )
        async with runtime.running_worker(options):
            deadline = time.monotonic() + 10
            state = None
            while time.monotonic() < deadline:
                async with factory() as session:
                    state = await session.scalar(
                        text("SELECT state FROM campaign_updates WHERE id = :id"), {"id": created.id}
                    )
                if state == "sent":
                    break
                await asyncio.sleep(0.1)
        assert state == "sent", "the update was not sent within 10 seconds"
        async with factory() as session:
            queued = (
                await session.scalars(
                    text("SELECT to_canonical FROM email_messages WHERE reference_id = :id ORDER BY 1"),
                    {"id": created.id},
                )
            ).all()
            batches = await session.scalar(
                text("SELECT batches FROM campaign_updates WHERE id = :id"), {"id": created.id}
            )
            runs = await session.scalar(
                text("SELECT count(*) FROM outbox_jobs WHERE task = :t AND completed_at IS NOT NULL"),
                {"t": service.SEND_TASK},
            )
        assert list(queued) == sorted(emails)
        assert batches == 3  # 2 + 2 + 1
        assert runs == 3
    finally:
        async with factory.begin() as session:
            await session.execute(
                text(
                    "DELETE FROM email_messages WHERE reference_id IN "
                    "(SELECT id FROM campaign_updates WHERE campaign_id = :c) "
                    "OR reference_id IN (SELECT id FROM signatures WHERE petition_id = :p)"
                ),
                {"c": petition.campaign_id, "p": petition.id},
            )
            await session.execute(
                text("DELETE FROM campaign_updates WHERE campaign_id = :c"), {"c": petition.campaign_id}
            )
            for table in ("petition_signers", "petition_count_refresh", "signatures"):
                await session.execute(text(f"DELETE FROM {table} WHERE petition_id = :p"), {"p": petition.id})  # noqa: S608
            await session.execute(text("DELETE FROM petitions WHERE id = :p"), {"p": petition.id})
            await session.execute(text("DELETE FROM campaigns WHERE id = :c"), {"c": petition.campaign_id})
