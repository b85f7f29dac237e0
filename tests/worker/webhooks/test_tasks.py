"""The worker's webhook delivery loop is registered and, run as the worker runs it, sends due deliveries."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core import jobs
from services.core.config import Settings
from services.core.outbox.registry import PERIODIC, LoopContext
from services.worker.settings import load_tasks
from tests.core.webhooks.helpers import deliveries, emit_sample, make_endpoint
from tests.core.webhooks.receiver import running_receiver


async def test_the_delivery_loop_is_registered_and_delivers(
    db: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    queue: jobs.JobQueue,
) -> None:
    assert "services.worker.webhooks.tasks" in load_tasks()
    loop = PERIODIC["webhooks.deliver"]
    assert loop.every(settings) == settings.webhook_poll_seconds == 0.5

    with running_receiver() as receiver:
        endpoint = await make_endpoint(db, receiver.url)
        receiver.secrets = [endpoint.secret]
        event_id = await emit_sample(db)
        await loop.fn(LoopContext(sessionmaker, settings, queue))

    [got] = receiver.verified
    assert got.webhook_id == str(event_id)
    [row] = await deliveries(sessionmaker, endpoint.id)
    assert row.state == "delivered"
