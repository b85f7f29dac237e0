"""Standard Webhooks (https://www.standardwebhooks.com/) for integrators: secrets, signing, verification and
replay protection.

The HMAC is the ``standardwebhooks`` package's; Loom checks headers and timestamp itself (``now`` is
explicit), tries every secret still valid and raises a distinct problem per failure. Secrets and
signatures are never logged. docs/webhooks.md, "Verifying what integrators send".
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import re
import secrets
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from services.core.integrations.errors import (
    WebhookHeadersMalformed,
    WebhookHeadersMissing,
    WebhookSignatureInvalid,
    WebhookTimestampOutOfTolerance,
)
from services.core.integrations.models import Integration, SeenWebhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64 random bytes
TOLERANCE = timedelta(minutes=5)
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")  # up to the year 33658


def generate_secret(nbytes: int = SECRET_BYTES) -> str:
    """A new signing secret: ``whsec_`` and the base64 of ``nbytes`` random bytes."""
    if not 24 <= nbytes <= 64:
        raise ValueError("a webhook secret has 24 to 64 random bytes")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


def valid_secrets(integration: Integration, now: datetime) -> list[str]:
    """The secrets a delivery to ``integration`` may be signed with at ``now``: the current one, and the
    previous one until its grace period ends."""
    found = [integration.secret]
    expires = integration.previous_secret_expires_at
    if integration.previous_secret is not None and expires is not None and now < expires:
        found.append(integration.previous_secret)
    return found


def _signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> bytes:
    signed = Webhook(secret).sign(
        msg_id=webhook_id, timestamp=datetime.fromtimestamp(timestamp, UTC), data=body.decode()
    )
    return base64.b64decode(signed.partition(",")[2])


def sign_webhook(secret: str, webhook_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """The three headers of a delivery of ``body`` signed with ``secret`` — for tests and for integrators
    (any Standard Webhooks library produces the same)."""
    seconds = math.floor(timestamp.timestamp())
    signature = base64.b64encode(_signature(secret, webhook_id, seconds, body)).decode("ascii")
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": f"v1,{signature}",
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict may hold other spellings; HTTP header names are case-insensitive
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value.strip() if value else None


def _passed_signatures(header: str) -> list[bytes]:
    """The ``v1`` signatures of a ``webhook-signature`` header; others and malformed ones are skipped."""
    found = []
    for part in header.split():
        version, _, encoded = part.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def verify_webhook(
    integration_secrets: list[str], headers: Mapping[str, str], body: bytes, now: datetime
) -> str:
    """Check a delivery's headers against ``body`` and any of ``integration_secrets``; return its
    ``webhook-id``.

    Raises ``WebhookHeadersMissing`` (400) when a header is missing or empty, ``WebhookHeadersMalformed``
    (400) when the timestamp is not Unix seconds, ``WebhookTimestampOutOfTolerance`` (401) when it is more
    than five minutes before or after ``now``, and ``WebhookSignatureInvalid`` (401) when no ``v1``
    signature matches any secret (a body that is not UTF-8 never matches).
    """
    values = {name: _header(headers, name) for name in HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise WebhookHeadersMissing(f"Missing headers: {', '.join(missing)}.", missing=missing)
    webhook_id, timestamp_text, signature_header = (str(values[name]) for name in HEADERS)
    if not _UNIX_SECONDS.fullmatch(timestamp_text):  # int() would take 400 digits, "1_7e9" or Thai digits
        raise WebhookHeadersMalformed("webhook-timestamp must be Unix seconds.")
    timestamp = int(timestamp_text)
    if abs(timestamp - now.timestamp()) > TOLERANCE.total_seconds():
        raise WebhookTimestampOutOfTolerance(
            "webhook-timestamp must be within five minutes of the current time."
        )
    passed = _passed_signatures(signature_header)
    try:
        body.decode()
    except UnicodeDecodeError:
        passed = []
    for secret in integration_secrets:
        expected = _signature(secret, webhook_id, timestamp, body) if passed else b""
        if any(hmac.compare_digest(expected, signature) for signature in passed):
            return webhook_id
    raise WebhookSignatureInvalid("No signature matches a valid secret of this integration.")


async def remember_webhook_id(session: AsyncSession, integration_id: uuid.UUID, webhook_id: str) -> bool:
    """Record that ``webhook_id`` was received from the integration: True the first time, False for a
    replay. Safe under concurrency (``INSERT … ON CONFLICT DO NOTHING RETURNING``)."""
    inserted = await session.scalar(
        insert(SeenWebhook)
        .values(integration_id=integration_id, webhook_id=webhook_id)
        .on_conflict_do_nothing()
        .returning(SeenWebhook.webhook_id)
    )
    return inserted is not None
