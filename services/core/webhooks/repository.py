"""Queries of webhook endpoints and deliveries."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Row, func, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.webhooks.models import (
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)


async def get_endpoint(
    session: AsyncSession, endpoint_id: uuid.UUID, *, for_update: bool = False
) -> WebhookEndpoint | None:
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def fail_pending_deliveries(
    session: AsyncSession, endpoint_id: uuid.UUID, now: datetime, reason: str
) -> None:
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.state == DeliveryState.pending)
        .values(state=DeliveryState.failed, failed_at=now, last_error=reason)
        .execution_options(synchronize_session=False)
    )


async def list_endpoints(
    session: AsyncSession, *, enabled: bool | None, limit: int, offset: int
) -> tuple[Sequence[WebhookEndpoint], int]:
    """A page of endpoints, newest first (then by id), and how many match in all."""
    condition: ColumnElement[bool] = true() if enabled is None else WebhookEndpoint.enabled.is_(enabled)
    total = await session.scalar(select(func.count()).select_from(WebhookEndpoint).where(condition))
    items = (
        await session.scalars(
            select(WebhookEndpoint)
            .where(condition)
            .order_by(WebhookEndpoint.created_at.desc(), WebhookEndpoint.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return items, total or 0


async def list_deliveries(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    *,
    state: DeliveryState | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Row[WebhookDelivery, str]], int]:
    """A page of an endpoint's deliveries with their event types, newest first, and the total."""
    conditions = [WebhookDelivery.endpoint_id == endpoint_id]
    if state is not None:
        conditions.append(WebhookDelivery.state == state)
    total = await session.scalar(select(func.count()).select_from(WebhookDelivery).where(*conditions))
    rows = (
        await session.execute(
            select(WebhookDelivery, WebhookEvent.type)
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .where(*conditions)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return rows, total or 0


async def attempts_of(
    session: AsyncSession, delivery_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookAttempt]]:
    found: dict[uuid.UUID, list[WebhookAttempt]] = defaultdict(list)
    if not delivery_ids:
        return found
    attempts = await session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.delivery_id, WebhookAttempt.id)
    )
    for attempt in attempts:
        found[attempt.delivery_id].append(attempt)
    return found


async def get_delivery(
    session: AsyncSession, endpoint_id: uuid.UUID, delivery_id: uuid.UUID, *, for_update: bool = False
) -> WebhookDelivery | None:
    query = select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint_id
    )
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def event_type_of(session: AsyncSession, event_id: uuid.UUID) -> str:
    return str(await session.scalar(select(WebhookEvent.type).where(WebhookEvent.id == event_id)))
