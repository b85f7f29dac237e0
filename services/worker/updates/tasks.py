"""Sending campaign updates: one job per batch of recipients, each enqueueing the next."""

from __future__ import annotations

import uuid

from services.core.outbox.registry import JobContext, task
from services.core.updates import service


@task(service.SEND_TASK)
async def send_update(ctx: JobContext, update_id: uuid.UUID) -> None:
    """Queue the next batch of the update's messages (and the job for the batch after it)."""
    await service.send_batch(ctx.session, ctx.settings, update_id)
