"""Emitting webhook events, in the caller's transaction.

``await emit(session, "signature.confirmed", data, key="signature.confirmed:<signature id>")`` writes one
``webhook_events`` row and one pending ``webhook_deliveries`` row per enabled endpoint subscribed to that
type, in one statement. ``key`` (built from stable ids) makes it idempotent: emitting the same key again —
a retried job, a second confirmation of a duplicate — writes nothing. No HTTP call happens here: the
worker's delivery loop sends the deliveries once the transaction commits (and never if it rolls back).

``data`` is what receivers get under ``data``; keep personal data out of it (see the README, "Outbound
webhooks").
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pydantic_core import to_jsonable_python
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.webhooks.models import EventType

_EMIT = text(
    "WITH event AS ("
    " INSERT INTO webhook_events (id, key, type, data) VALUES (:id, :key, :type, CAST(:data AS jsonb))"
    " ON CONFLICT (key) DO NOTHING RETURNING id, type"
    "), deliveries AS ("
    " INSERT INTO webhook_deliveries (id, event_id, endpoint_id)"
    " SELECT gen_random_uuid(), event.id, e.id FROM event"
    " JOIN webhook_endpoints e ON e.enabled AND event.type = ANY(e.event_types)"
    " RETURNING id"
    ") SELECT (SELECT id FROM event) AS event_id, (SELECT count(*) FROM deliveries) AS deliveries"
)


async def emit(session: AsyncSession, event_type: str, data: dict[str, Any], *, key: str) -> uuid.UUID | None:
    """Record event ``event_type`` with ``data`` for delivery to its subscribers; returns the new event's
    id (the ``webhook-id`` receivers see), or None when ``key`` was emitted before. An unknown type is a
    ``ValueError``."""
    kind = EventType(event_type)
    payload = json.dumps(to_jsonable_python(data))
    row = (
        await session.execute(_EMIT, {"id": uuid.uuid4(), "key": key, "type": kind.value, "data": payload})
    ).one()
    event_id: uuid.UUID | None = row.event_id
    return event_id
