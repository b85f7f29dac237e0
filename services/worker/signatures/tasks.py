"""Signature work in the worker: the deduplication-and-count pipeline (a periodic loop taking new
signatures in batches, :mod:`services.worker.signatures.pipeline`) and the confirmation requests it
writes, one job per batch."""

from __future__ import annotations

import uuid

from services.core.mail import messages
from services.core.outbox.registry import JobContext, task
from services.core.signatures import confirmation
from services.core.signatures.pipeline import CONFIRMATION_TASK
from services.worker.periodic import LoopContext, periodic
from services.worker.signatures import pipeline


@periodic("signatures.pipeline", every=lambda settings: settings.signature_pipeline_seconds)
async def run_pipeline(ctx: LoopContext) -> None:
    # Ticks follow each other without the pause while a backlog lasts (counts are refreshed after each).
    while (await pipeline.run_once(ctx.sessionmaker, ctx.queue, ctx.settings)).backlog:
        pass


@task(CONFIRMATION_TASK)
async def request_confirmations(ctx: JobContext, signature_ids: list[uuid.UUID]) -> None:
    """Issue a confirmation token for each signature still waiting for one, and queue the email carrying
    it, in the job's transaction: a retried job finds the tokens issued and queues nothing twice."""
    issued = await confirmation.request(ctx.session, ctx.settings, signature_ids)
    await messages.queue_confirmations(ctx.session, ctx.settings, issued)
