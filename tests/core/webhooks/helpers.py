"""Shared helpers of the webhook tests."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.integrations.webhooks import generate_secret
from services.core.webhooks.events import emit
from services.core.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


async def make_endpoint(
    db: AsyncSession, url: str, *, event_types: tuple[str, ...] = ("signature.confirmed",), **fields: Any
) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(url=url, event_types=list(event_types), secret=generate_secret(), **fields)
    db.add(endpoint)
    await db.flush()
    return endpoint


async def emit_sample(db: AsyncSession, **data: Any) -> uuid.UUID:
    """A ``signature.confirmed`` event with a payload of the usual shape; committed."""
    signature_id = uuid.uuid4()
    payload = {"signature_id": signature_id, "petition_slug": "living-wage", "country": "BD", **data}
    event_id = await emit(db, "signature.confirmed", payload, key=f"signature.confirmed:{signature_id}")
    assert event_id is not None
    await db.commit()
    return event_id


async def deliveries(
    sessionmaker: async_sessionmaker[AsyncSession], endpoint_id: uuid.UUID
) -> list[WebhookDelivery]:
    async with sessionmaker() as session:
        found = await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.created_at)
        )
        return list(found)


async def attempts(
    sessionmaker: async_sessionmaker[AsyncSession], delivery_id: uuid.UUID
) -> list[WebhookAttempt]:
    async with sessionmaker() as session:
        found = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.id)
        )
        return list(found)


async def endpoint_row(
    sessionmaker: async_sessionmaker[AsyncSession], endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    async with sessionmaker() as session:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        return endpoint
