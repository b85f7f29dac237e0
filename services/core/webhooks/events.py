"""Emitting webhook events, in the caller's transaction.

``emit(session, type, data, key=…)`` writes the event and one pending delivery per subscribed endpoint in
one statement; the key makes it idempotent, and nothing is sent before the transaction commits. Keep
personal data out of ``data``. docs/webhooks.md, "Outbound events".
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
