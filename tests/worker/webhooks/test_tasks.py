"""The worker's webhook delivery loop is registered and, run as the worker runs it, sends due deliveries."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core import jobs
from services.core.config import Settings
from services.core.webhooks.models import WebhookEndpoint, WebhookEvent
from services.worker import runtime
from services.worker.periodic import PERIODIC, LoopContext
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


async def test_a_running_worker_delivers_a_committed_event(
    factory: async_sessionmaker[AsyncSession],
    job_settings: Settings,
    database_url: str,
    redis_url: str,
    job_queue_name: str,
) -> None:
    """The whole path, with real commits: an event emitted in a committed transaction reaches the
    receiver through a running worker's loop."""
    load_tasks()
    options = runtime.worker_options(
        job_settings, database_url=database_url, redis_url=redis_url, queue_name=job_queue_name, relay=False
    )
    with running_receiver() as receiver:
        async with factory() as session:
            endpoint = await make_endpoint(session, receiver.url)
            receiver.secrets = [endpoint.secret]
            event_id = await emit_sample(session)
        try:
            async with runtime.running_worker(options):
                # a bound for a broken loop, not a speed test
                assert await asyncio.to_thread(receiver.arrived.wait, 30)
            [got] = receiver.verified
            assert got.webhook_id == str(event_id)
        finally:
            async with factory.begin() as session:
                await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id))
                await session.execute(delete(WebhookEvent).where(WebhookEvent.id == event_id))
