"""Endpoints managing integrations: integrators that deliver signatures by Standard Webhooks.

Admins only (signed-in users; API keys never). The signing secret is in the answers of creation and
rotation only; list and get never show it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Path, Query, Response, status

from services.api.deps import PaginationDep, SessionDep, SettingsDep, require_roles
from services.api.headers import NoStore
from services.api.problems import problem_responses
from services.api.routing import router as make_router
from services.core.campaigns.errors import PartnerOrganisationNotFound, PetitionNotFound
from services.core.errors import Forbidden, InvalidToken, Unauthenticated
from services.core.integrations import policy, service
from services.core.integrations.errors import IntegrationNotFound
from services.core.integrations.schemas import (
    IntegrationCreate,
    IntegrationPage,
    IntegrationRead,
    IntegrationUpdate,
    IntegrationWithSecret,
)
from services.core.users.security import Principal

router = make_router()

IntegrationManager = Annotated[Principal, Depends(require_roles(*policy.MANAGERS))]

IntegrationId = Annotated[uuid.UUID, Path(description="The integration's id.")]

_AUTH = (Unauthenticated, InvalidToken, Forbidden)


@router.get(
    "/v1/integrations",
    tags=["integrations"],
    summary="List integrations",
    response_model=IntegrationPage,
    responses=problem_responses(*_AUTH),
)
async def list_integrations(
    session: SessionDep,
    principal: IntegrationManager,
    page: PaginationDep,
    active: Annotated[bool | None, Query(description="Only active (or only inactive) ones.")] = None,
) -> IntegrationPage:
    """Newest first (then by id). Secrets are never shown."""
    return await service.list_integrations(
        session, principal, active=active, limit=page.limit, offset=page.offset
    )


@router.post(
    "/v1/integrations",
    tags=["integrations"],
    summary="Add an integration",
    status_code=status.HTTP_201_CREATED,
    response_model=IntegrationWithSecret,
    responses=problem_responses(*_AUTH, PetitionNotFound, PartnerOrganisationNotFound),
    dependencies=[NoStore],
)
async def create_integration(
    session: SessionDep, principal: IntegrationManager, body: IntegrationCreate, response: Response
) -> IntegrationWithSecret:
    """Generates the integration's signing secret (`whsec_…`) and shows it in this answer only: give it
    to the integrator now. An unknown default petition or organisation is a 404."""
    integration = await service.create_integration(session, principal, body)
    response.headers["Location"] = f"/v1/integrations/{integration.id}"
    return integration


@router.get(
    "/v1/integrations/{integration_id}",
    tags=["integrations"],
    summary="Get an integration",
    response_model=IntegrationRead,
    responses=problem_responses(*_AUTH, IntegrationNotFound),
)
async def get_integration(
    session: SessionDep, principal: IntegrationManager, integration_id: IntegrationId
) -> IntegrationRead:
    """Without its secret."""
    return await service.get_integration(session, principal, integration_id)


@router.patch(
    "/v1/integrations/{integration_id}",
    tags=["integrations"],
    summary="Change an integration",
    response_model=IntegrationRead,
    responses=problem_responses(*_AUTH, IntegrationNotFound, PetitionNotFound, PartnerOrganisationNotFound),
)
async def update_integration(
    session: SessionDep, principal: IntegrationManager, integration_id: IntegrationId, body: IntegrationUpdate
) -> IntegrationRead:
    """Only the fields sent change (`name`, `default_petition_id`, `organisation_id`, `active`); `null`
    clears the default petition or the organisation. An unknown petition or organisation is a 404."""
    return await service.update_integration(session, principal, integration_id, body)


@router.post(
    "/v1/integrations/{integration_id}/deactivate",
    tags=["integrations"],
    summary="Deactivate an integration",
    response_model=IntegrationRead,
    responses=problem_responses(*_AUTH, IntegrationNotFound),
)
async def deactivate_integration(
    session: SessionDep, principal: IntegrationManager, integration_id: IntegrationId
) -> IntegrationRead:
    """Its deliveries are refused from now on; `PATCH` with `{"active": true}` turns it back on."""
    return await service.deactivate_integration(session, principal, integration_id)


@router.post(
    "/v1/integrations/{integration_id}/rotate-secret",
    tags=["integrations"],
    summary="Rotate an integration's secret",
    response_model=IntegrationWithSecret,
    responses=problem_responses(*_AUTH, IntegrationNotFound),
    dependencies=[NoStore],
)
async def rotate_secret(
    session: SessionDep, principal: IntegrationManager, settings: SettingsDep, integration_id: IntegrationId
) -> IntegrationWithSecret:
    """A new secret, shown in this answer only. The previous one is still accepted for
    `LOOM_WEBHOOK_SECRET_GRACE_HOURS` (see `previous_secret_expires_at`), so the integrator can switch
    without losing deliveries; rotating again within that time ends the older secret at once."""
    return await service.rotate_secret(
        session, principal, integration_id, grace=timedelta(hours=settings.webhook_secret_grace_hours)
    )
