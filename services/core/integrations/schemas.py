"""Request and response shapes of integrations. No response but the ones at creation and rotation
(``IntegrationWithSecret``) holds a secret."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.core.schemas import Name, Page, Patch


class IntegrationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    default_petition_id: uuid.UUID | None = Field(
        default=None, description="The petition deliveries go to when they name none."
    )
    organisation_id: uuid.UUID | None = Field(
        default=None, description="The partner organisation the integration's signatures are attributed to."
    )
    active: bool = True


class IntegrationUpdate(Patch):
    """Fields to change; ``null`` clears the default petition or the organisation."""

    NULLABLE = frozenset({"default_petition_id", "organisation_id"})

    name: Name | None = None
    default_petition_id: uuid.UUID | None = None
    organisation_id: uuid.UUID | None = None
    active: bool | None = None


class IntegrationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    default_petition_id: uuid.UUID | None
    organisation_id: uuid.UUID | None
    active: bool = Field(description="Inactive integrations' deliveries are refused.")
    secret_rotated_at: datetime | None = Field(description="When the secret was last rotated.")
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the secret before the last rotation is still accepted."
    )
    created_at: datetime
    updated_at: datetime


class IntegrationWithSecret(IntegrationRead):
    secret: str = Field(
        description="The signing secret (`whsec_…`, Standard Webhooks). Shown only in this response: "
        "store it now, it cannot be read again (rotate it if lost).",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class IntegrationPage(Page[IntegrationRead]):
    """A page of integrations."""
