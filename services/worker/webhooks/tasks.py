"""Outbound webhooks in the worker: the delivery loop (see ``services.core.webhooks.delivery`` for why a
loop over the delivery table, not an outbox job per delivery)."""

from __future__ import annotations

from services.worker.periodic import LoopContext, periodic
from services.worker.webhooks import delivery


@periodic("webhooks.deliver", every=lambda settings: settings.webhook_poll_seconds)
async def deliver(ctx: LoopContext) -> None:
    await delivery.run_once(ctx.sessionmaker, ctx.settings)
