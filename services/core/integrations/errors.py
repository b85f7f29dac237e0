"""Errors of integrations and of webhook verification, each with its own stable problem ``code``."""

from __future__ import annotations

from services.core.errors import BadRequest, LoomError, NotFound


class IntegrationNotFound(NotFound):
    code = "integration-not-found"
    title = "Integration not found"


class WebhookHeadersMissing(BadRequest):
    code = "webhook-headers-missing"
    title = "The webhook-id, webhook-timestamp and webhook-signature headers are required"


class WebhookHeadersMalformed(BadRequest):
    code = "webhook-headers-malformed"
    title = "A webhook header is malformed"


class WebhookTimestampOutOfTolerance(LoomError):
    status = 401
    code = "webhook-timestamp-out-of-tolerance"
    title = "The webhook timestamp is too far from the current time"


class WebhookSignatureInvalid(LoomError):
    status = 401
    code = "webhook-signature-invalid"
    title = "No webhook signature matches"
