"""Errors of outbound webhooks, each with its own stable problem ``code``."""

from __future__ import annotations

from services.core.errors import Conflict, LoomError, NotFound


class WebhookEndpointNotFound(NotFound):
    code = "webhook-endpoint-not-found"
    title = "Webhook endpoint not found"


class WebhookDeliveryNotFound(NotFound):
    code = "webhook-delivery-not-found"
    title = "Webhook delivery not found"


class WebhookUrlRefused(LoomError):
    """The URL does not resolve, or resolves to an address Loom must not call (private, loopback,
    link-local, multicast, reserved), unless ``LOOM_WEBHOOKS_ALLOW_PRIVATE_URLS`` is set."""

    status = 422
    code = "webhook-url-refused"
    title = "The webhook URL is refused"


class WebhookEndpointDisabled(Conflict):
    code = "webhook-endpoint-disabled"
    title = "The webhook endpoint is disabled"
