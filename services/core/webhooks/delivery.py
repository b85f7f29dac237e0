"""Delivering webhook events: the steps of the worker's loop over due deliveries (the loop, which owns the
transactions, is ``services.worker.webhooks.delivery``).

**claim** due deliveries with a lease (one short transaction), **attempt** them without a transaction,
**record** the outcomes, backoff and auto-disable (one transaction). At least once: receivers deduplicate
by ``webhook-id``. Why a loop over the table, not outbox jobs: docs/webhooks.md, "Delivery".
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from services.core.config import Settings
from services.core.mail.models import MessageCategory
from services.core.mail.queue import NewMessage, queue
from services.core.mail.rendering import render
from services.core.outbox.dispatch import backoff
from services.core.webhooks.errors import WebhookUrlRefused
from services.core.webhooks.service import fail_pending
from services.core.webhooks.urls import resolve_target

log = logging.getLogger(__name__)

SNIPPET_CHARS = 200
USER_AGENT = "Loom-Webhooks/1.0"
DISABLED_KIND = "webhook_endpoint_disabled"
# How long a claimed delivery is left alone before another worker may take it (the attempt's own limit
# plus a margin for resolving, recording and a slow event loop).
LEASE_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True)
class Claimed:
    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    number: int  # this attempt's number (1 for the first)
    url: str
    secrets: list[str]
    body: bytes
    retry_from: datetime


@dataclass(frozen=True)
class AttemptResult:
    succeeded: bool
    status_code: int | None
    latency_ms: int | None
    error: str | None
    snippet: str | None


_CLAIM = text(
    "WITH due AS ("
    " SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id"
    " WHERE d.state = 'pending' AND d.next_attempt_at <= :now AND e.enabled"
    " ORDER BY d.next_attempt_at LIMIT :limit FOR UPDATE OF d SKIP LOCKED"
    ") UPDATE webhook_deliveries d SET attempts = d.attempts + 1, next_attempt_at = :lease"
    " FROM due, webhook_endpoints e, webhook_events ev"
    " WHERE d.id = due.id AND e.id = d.endpoint_id AND ev.id = d.event_id"
    " RETURNING d.id, d.endpoint_id, d.event_id, d.attempts, d.retry_from, e.url, e.secret,"
    " e.previous_secret, e.previous_secret_expires_at, ev.type, ev.data, ev.created_at"
)


def event_body(event_type: str, created_at: datetime, data: dict[str, Any]) -> bytes:
    """The JSON body of an event (the Standard Webhooks envelope: ``type``, ``timestamp``, ``data``)."""
    envelope = {"type": event_type, "timestamp": created_at.astimezone(UTC).isoformat(), "data": data}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


async def claim(session: AsyncSession, settings: Settings, now: datetime) -> list[Claimed]:
    """Take the due deliveries (see the module's doc); the caller commits."""
    lease = now + timedelta(seconds=settings.webhook_timeout_seconds) + LEASE_MARGIN
    rows = (
        await session.execute(_CLAIM, {"now": now, "limit": settings.webhook_batch_size, "lease": lease})
    ).all()
    claimed = []
    for row in rows:
        secrets = [row.secret]
        expires = row.previous_secret_expires_at
        if row.previous_secret is not None and expires is not None and now < expires:
            secrets.append(row.previous_secret)
        claimed.append(
            Claimed(
                delivery_id=row.id,
                endpoint_id=row.endpoint_id,
                event_id=row.event_id,
                number=row.attempts,
                url=row.url,
                secrets=secrets,
                body=event_body(row.type, row.created_at, row.data),
                retry_from=row.retry_from,
            )
        )
    return claimed


def signature_headers(
    secrets: list[str], webhook_id: str, body: bytes, timestamp: datetime
) -> dict[str, str]:
    """The Standard Webhooks headers: one ``v1,…`` signature per secret, space-separated."""
    signatures = [
        Webhook(secret).sign(msg_id=webhook_id, timestamp=timestamp, data=body.decode()) for secret in secrets
    ]
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connection failed"
    if isinstance(exc, WebhookUrlRefused):
        return f"refused: {exc.detail}"
    return type(exc).__name__


async def attempt(client: httpx.AsyncClient, claimed: Claimed, settings: Settings) -> AttemptResult:
    """POST the event once. Never raises: every failure is an ``AttemptResult``."""
    started = time.monotonic()
    status: int | None = None
    snippet: str | None = None
    try:
        target = await resolve_target(claimed.url, allow_private=settings.webhooks_allow_private_urls)
        headers = {
            "host": target.host_header,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **signature_headers(claimed.secrets, str(claimed.event_id), claimed.body, datetime.now(UTC)),
        }
        extensions = {"sni_hostname": target.tls_name} if target.tls_name else {}
        async with asyncio.timeout(settings.webhook_timeout_seconds * 2):  # a backstop for slow drips
            request = client.build_request(
                "POST", target.url, content=claimed.body, headers=headers, extensions=extensions
            )
            response = await client.send(request, stream=True)
            try:
                status = response.status_code
                head = b""
                async for chunk in response.aiter_raw():
                    head += chunk
                    if len(head) >= SNIPPET_CHARS * 4:
                        break
                snippet = head.decode("utf-8", "replace")[:SNIPPET_CHARS] or None
            finally:
                await response.aclose()
    except Exception as exc:
        latency = int((time.monotonic() - started) * 1000)
        return AttemptResult(False, status, latency, _describe(exc), snippet)
    latency = int((time.monotonic() - started) * 1000)
    if 200 <= status < 300:
        return AttemptResult(True, status, latency, None, snippet)
    return AttemptResult(False, status, latency, f"HTTP {status}", snippet)


_RECORD_ATTEMPT = text(
    "INSERT INTO webhook_attempts (delivery_id, number, attempted_at, succeeded, status_code, latency_ms, "
    "error, response_snippet) VALUES (:delivery, :number, :now, :ok, :status, :latency, :error, :snippet)"
)
_DELIVERED = text(
    "UPDATE webhook_deliveries SET state = 'delivered', delivered_at = :now, last_attempt_at = :now, "
    "last_status_code = :status, last_error = NULL WHERE id = :delivery"
)
_FAILED_ATTEMPT = text(
    "UPDATE webhook_deliveries SET last_attempt_at = :now, last_status_code = :status, last_error = :error, "
    "state = CASE WHEN :give_up THEN 'failed' ELSE state END, "
    "failed_at = CASE WHEN :give_up THEN CAST(:now AS timestamptz) ELSE failed_at END, "
    "next_attempt_at = :next WHERE id = :delivery AND state = 'pending'"
)
_HEALTHY = text(
    "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = :endpoint AND failing_since IS NOT NULL"
)
_FAILING = text(
    "UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, CAST(:now AS timestamptz)) "
    "WHERE id = :endpoint RETURNING failing_since, enabled"
)
_DISABLE = text(
    "UPDATE webhook_endpoints SET enabled = false, disabled_at = :now, disabled_reason = :reason, "
    "updated_at = now() WHERE id = :endpoint AND enabled "
    "RETURNING id, url, description, failing_since, owner_id"
)


async def record(
    session: AsyncSession, settings: Settings, claimed: Claimed, result: AttemptResult, now: datetime
) -> None:
    """Write what an attempt did (see the module's doc); the caller commits."""
    await session.execute(
        _RECORD_ATTEMPT,
        {
            "delivery": claimed.delivery_id,
            "number": claimed.number,
            "now": now,
            "ok": result.succeeded,
            "status": result.status_code,
            "latency": result.latency_ms,
            "error": result.error,
            "snippet": result.snippet,
        },
    )
    if result.succeeded:
        await session.execute(
            _DELIVERED, {"delivery": claimed.delivery_id, "now": now, "status": result.status_code}
        )
        await session.execute(_HEALTHY, {"endpoint": claimed.endpoint_id})
        return
    delay = backoff(
        claimed.number, base=settings.webhook_retry_base_seconds, cap=settings.webhook_retry_max_seconds
    )
    next_at = now + timedelta(seconds=delay)
    give_up = next_at > claimed.retry_from + timedelta(hours=settings.webhook_retry_hours)
    await session.execute(
        _FAILED_ATTEMPT,
        {
            "delivery": claimed.delivery_id,
            "now": now,
            "status": result.status_code,
            "error": result.error,
            "give_up": give_up,
            "next": next_at,
        },
    )
    endpoint = (await session.execute(_FAILING, {"endpoint": claimed.endpoint_id, "now": now})).one_or_none()
    if endpoint is None or not endpoint.enabled:
        return
    if now - endpoint.failing_since >= timedelta(hours=settings.webhook_disable_after_hours):
        await disable_failing(session, settings, claimed.endpoint_id, now)


async def disable_failing(
    session: AsyncSession, settings: Settings, endpoint_id: uuid.UUID, now: datetime
) -> bool:
    """Disable an endpoint that kept failing, fail its pending deliveries and queue the notice to its
    owner (once per disabling: the dedup key holds the time). False if it was disabled already."""
    reason = f"Every delivery attempt failed for {settings.webhook_disable_after_hours:g} hours."
    row = (
        await session.execute(_DISABLE, {"endpoint": endpoint_id, "now": now, "reason": reason})
    ).one_or_none()
    if row is None:
        return False
    await fail_pending(session, endpoint_id, now, "the endpoint was disabled for failing")
    log.warning("webhook endpoint disabled for failing", extra={"endpoint_id": str(endpoint_id)})
    if row.owner_id is None:
        return True
    owner = (
        await session.execute(text("SELECT email FROM users WHERE id = :id"), {"id": row.owner_id})
    ).one_or_none()
    if owner is None:
        return True
    rendered = render(
        DISABLED_KIND,
        {
            "endpoint_id": str(endpoint_id),
            # without its query: receivers sometimes put a token there, and mail travels further than the API
            "url": urlsplit(row.url)._replace(query="", fragment="").geturl(),
            "description": row.description,
            "failing_since": row.failing_since.astimezone(UTC),
            "disabled_at": now.astimezone(UTC),
            "hours": f"{settings.webhook_disable_after_hours:g}",
            "endpoint_url": f"{settings.public_url.rstrip('/')}/v1/webhook-endpoints/{endpoint_id}",
        },
        language="en",
    )
    await queue(
        session,
        NewMessage.of(
            rendered,
            dedup_key=f"{DISABLED_KIND}:{endpoint_id}:{now.astimezone(UTC).isoformat()}",
            kind=DISABLED_KIND,
            category=MessageCategory.staff,
            to_address=owner.email,
            reference_id=endpoint_id,
        ),
    )
    return True


def make_client(settings: Settings) -> httpx.AsyncClient:
    """The HTTP client of the delivery loop: timeouts, no redirects, no proxies from the environment
    (a proxy would connect to the name, not to the checked address)."""
    timeout = httpx.Timeout(
        settings.webhook_timeout_seconds, connect=min(5.0, settings.webhook_timeout_seconds)
    )
    limits = httpx.Limits(max_connections=settings.webhook_concurrency, max_keepalive_connections=20)
    return httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False, trust_env=False)


_PURGE = text(
    "DELETE FROM webhook_events WHERE id IN ("
    "SELECT ev.id FROM webhook_events ev WHERE ev.created_at < :before "
    "AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = ev.id AND d.state = 'pending') "
    "ORDER BY ev.created_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
)
PURGE_BATCH = 5000


async def purge_old(session: AsyncSession, before: datetime, limit: int = PURGE_BATCH) -> int:
    """Delete up to ``limit`` events older than ``before`` (with their deliveries and attempts) that
    have no pending delivery; returns how many. The caller commits. A key emitted again after its event
    was purged makes a new event: keys come from things that happen once (a confirmation, a publication)."""
    result = await session.execute(_PURGE, {"before": before, "limit": limit})
    return int(result.rowcount)  # type: ignore[attr-defined]
