"""Request and response shapes of webhook endpoints and their delivery log. No response but the ones at
creation and rotation (``WebhookEndpointWithSecret``) holds a secret."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from services.core.schemas import HTTP_URL_PATTERN, Page, Patch
from services.core.webhooks.models import DeliveryState, EventType
from services.core.webhooks.urls import MAX_URL_LENGTH, check_syntax


def _unique_sorted(types: list[EventType]) -> list[EventType]:
    return sorted(set(types))


WebhookUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="An http(s) URL without credentials. Hosts resolving to private, loopback, link-local, "
        "multicast or reserved addresses are refused (422 `webhook-url-refused`).",
        examples=["https://crm.example.org/loom-webhooks"],
        json_schema_extra={"format": "uri", "pattern": HTTP_URL_PATTERN},
    ),
    AfterValidator(check_syntax),
]
EventTypes = Annotated[
    list[EventType],
    Field(min_length=1, description="The event types sent to this endpoint."),
    AfterValidator(_unique_sorted),
]
Description = Annotated[str, Field(max_length=500)]


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl
    event_types: EventTypes
    description: Description | None = None


class WebhookEndpointUpdate(Patch):
    """Fields to change. ``enabled: true`` turns a disabled endpoint back on (and forgets its failures);
    ``enabled: false`` pauses it (nothing is delivered to it, events meanwhile are not kept for it)."""

    NULLABLE = frozenset({"description"})

    url: WebhookUrl | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    enabled: bool | None = None


class WebhookEndpointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[EventType]
    owner_id: uuid.UUID | None = Field(description="The admin who registered it; notices go to them.")
    enabled: bool
    disabled_at: datetime | None = Field(description="When it was disabled (by an admin or for failing).")
    disabled_reason: str | None
    failing_since: datetime | None = Field(
        description="The first failed attempt since the last success; null while deliveries succeed."
    )
    secret_rotated_at: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="Until when deliveries are also signed with the secret before the last rotation."
    )
    created_at: datetime
    updated_at: datetime


class WebhookEndpointWithSecret(WebhookEndpointRead):
    secret: str = Field(
        description="The signing secret (`whsec_…`, Standard Webhooks). Shown only in this response: store "
        "it now, it cannot be read again (rotate it if lost).",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class WebhookEndpointPage(Page[WebhookEndpointRead]):
    """A page of webhook endpoints."""


class WebhookAttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int = Field(description="1 for the delivery's first attempt.")
    attempted_at: datetime
    succeeded: bool
    status_code: int | None = Field(description="The HTTP status answered; null if none came.")
    latency_ms: int | None
    error: str | None = Field(description="Why it failed: a status, a timeout, a refused connection…")
    response_snippet: str | None = Field(description="The first characters of the answer's body.")


class WebhookDeliveryRead(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID = Field(description="The `webhook-id` header of every attempt.")
    event_type: EventType
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None = Field(description="When it is tried next (pending ones only).")
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None
    attempt_log: list[WebhookAttemptRead] = Field(description="Every attempt, oldest first.")


class WebhookDeliveryPage(Page[WebhookDeliveryRead]):
    """A page of an endpoint's deliveries, newest first."""
