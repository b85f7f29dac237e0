"""Supplier-list disclosures: one job per step (reading the rows, then each batch of matches), each
enqueueing the next, so progress commits batch by batch and a crash resumes at the cursor."""

from __future__ import annotations

import uuid

from services.core.outbox.registry import JobContext, task
from services.core.registry import disclosures
from services.core.webhooks import events


@task(disclosures.PROCESS_TASK)
async def process_disclosure(ctx: JobContext, disclosure_id: uuid.UUID) -> None:
    """Read the disclosure's rows, or match the next batch of them; when it is finished, emit
    ``disclosure.processed`` in the same transaction (the key makes a retried job emit it once)."""
    result = await disclosures.process_batch(ctx.session, ctx.settings, disclosure_id)
    if result.event is not None:
        await events.emit(
            ctx.session, disclosures.EVENT, result.event, key=f"{disclosures.EVENT}:{disclosure_id}"
        )
