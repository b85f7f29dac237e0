"""Endpoints managing outbound webhook endpoints: URLs that receive Loom's events, signed with Standard
Webhooks. (Inbound signature webhooks from integrators are ``services/api/signatures/webhooks.py``.)

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
from services.core.errors import Forbidden, InvalidToken, Unauthenticated
from services.core.users.security import Principal
from services.core.webhooks import policy, service
from services.core.webhooks.errors import (
    WebhookDeliveryNotFound,
    WebhookEndpointDisabled,
    WebhookEndpointNotFound,
    WebhookUrlRefused,
)
from services.core.webhooks.models import DeliveryState
from services.core.webhooks.schemas import (
    WebhookDeliveryPage,
    WebhookDeliveryRead,
    WebhookEndpointCreate,
    WebhookEndpointPage,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)

router = make_router()

WebhookManager = Annotated[Principal, Depends(require_roles(*policy.MANAGERS))]

EndpointId = Annotated[uuid.UUID, Path(description="The webhook endpoint's id.")]
DeliveryId = Annotated[uuid.UUID, Path(description="The delivery's id.")]

_AUTH = (Unauthenticated, InvalidToken, Forbidden)
BASE = "/v1/webhook-endpoints"


@router.get(
    BASE,
    tags=["webhook-endpoints"],
    summary="List webhook endpoints",
    response_model=WebhookEndpointPage,
    responses=problem_responses(*_AUTH),
)
async def list_endpoints(
    session: SessionDep,
    principal: WebhookManager,
    page: PaginationDep,
    enabled: Annotated[bool | None, Query(description="Only enabled (or only disabled) ones.")] = None,
) -> WebhookEndpointPage:
    """Newest first (then by id). Secrets are never shown."""
    return await service.list_endpoints(
        session, principal, enabled=enabled, limit=page.limit, offset=page.offset
    )


@router.post(
    BASE,
    tags=["webhook-endpoints"],
    summary="Register a webhook endpoint",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookEndpointWithSecret,
    responses=problem_responses(*_AUTH, WebhookUrlRefused),
    dependencies=[NoStore],
)
async def create_endpoint(
    session: SessionDep,
    principal: WebhookManager,
    settings: SettingsDep,
    body: WebhookEndpointCreate,
    response: Response,
) -> WebhookEndpointWithSecret:
    """Events of the chosen types are POSTed to the URL, signed with Standard Webhooks. Generates the
    endpoint's signing secret (`whsec_…`) and shows it in this answer only. The caller owns the endpoint
    and is emailed if it is disabled for failing. A URL whose host is private, loopback, link-local,
    multicast or reserved (or does not resolve) is a 422 `webhook-url-refused`."""
    endpoint = await service.create_endpoint(
        session, principal, body, allow_private=settings.webhooks_allow_private_urls
    )
    response.headers["Location"] = f"{BASE}/{endpoint.id}"
    return endpoint


@router.get(
    BASE + "/{endpoint_id}",
    tags=["webhook-endpoints"],
    summary="Get a webhook endpoint",
    response_model=WebhookEndpointRead,
    responses=problem_responses(*_AUTH, WebhookEndpointNotFound),
)
async def get_endpoint(
    session: SessionDep, principal: WebhookManager, endpoint_id: EndpointId
) -> WebhookEndpointRead:
    """Without its secret."""
    return await service.get_endpoint(session, principal, endpoint_id)


@router.patch(
    BASE + "/{endpoint_id}",
    tags=["webhook-endpoints"],
    summary="Change a webhook endpoint",
    response_model=WebhookEndpointRead,
    responses=problem_responses(*_AUTH, WebhookEndpointNotFound, WebhookUrlRefused),
)
async def update_endpoint(
    session: SessionDep,
    principal: WebhookManager,
    settings: SettingsDep,
    endpoint_id: EndpointId,
    body: WebhookEndpointUpdate,
) -> WebhookEndpointRead:
    """Only the fields sent change (`url`, `event_types`, `description`, `enabled`). `{"enabled": true}`
    turns an endpoint disabled for failing back on; `{"enabled": false}` pauses it and fails its pending
    deliveries (they can be redelivered by hand later)."""
    return await service.update_endpoint(
        session, principal, endpoint_id, body, allow_private=settings.webhooks_allow_private_urls
    )


@router.delete(
    BASE + "/{endpoint_id}",
    tags=["webhook-endpoints"],
    summary="Delete a webhook endpoint",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(*_AUTH, WebhookEndpointNotFound),
)
async def delete_endpoint(session: SessionDep, principal: WebhookManager, endpoint_id: EndpointId) -> None:
    """With its delivery log."""
    await service.delete_endpoint(session, principal, endpoint_id)


@router.post(
    BASE + "/{endpoint_id}/rotate-secret",
    tags=["webhook-endpoints"],
    summary="Rotate a webhook endpoint's secret",
    response_model=WebhookEndpointWithSecret,
    responses=problem_responses(*_AUTH, WebhookEndpointNotFound),
    dependencies=[NoStore],
)
async def rotate_secret(
    session: SessionDep, principal: WebhookManager, settings: SettingsDep, endpoint_id: EndpointId
) -> WebhookEndpointWithSecret:
    """A new secret, shown in this answer only. For `LOOM_WEBHOOK_SECRET_GRACE_HOURS` deliveries carry
    two signatures, one with the new secret and one with the previous, so the receiver can switch at any
    time within it."""
    return await service.rotate_secret(
        session, principal, endpoint_id, grace=timedelta(hours=settings.webhook_secret_grace_hours)
    )


@router.get(
    BASE + "/{endpoint_id}/deliveries",
    tags=["webhook-endpoints"],
    summary="An endpoint's delivery log",
    response_model=WebhookDeliveryPage,
    responses=problem_responses(*_AUTH, WebhookEndpointNotFound),
)
async def list_deliveries(
    session: SessionDep,
    principal: WebhookManager,
    page: PaginationDep,
    endpoint_id: EndpointId,
    state: Annotated[DeliveryState | None, Query(description="Only deliveries in this state.")] = None,
) -> WebhookDeliveryPage:
    """Newest first; each delivery with its attempts (time, status code, latency, error, the first 200
    characters of the answer)."""
    return await service.list_deliveries(
        session, principal, endpoint_id, state=state, limit=page.limit, offset=page.offset
    )


@router.post(
    BASE + "/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    tags=["webhook-endpoints"],
    summary="Send a delivery again",
    response_model=WebhookDeliveryRead,
    responses=problem_responses(
        *_AUTH, WebhookEndpointNotFound, WebhookDeliveryNotFound, WebhookEndpointDisabled
    ),
)
async def redeliver(
    session: SessionDep, principal: WebhookManager, endpoint_id: EndpointId, delivery_id: DeliveryId
) -> WebhookDeliveryRead:
    """The worker sends it again within a second, with the same `webhook-id`, whatever its state (a
    failed one gets a fresh retry window). 409 while the endpoint is disabled."""
    return await service.redeliver(session, principal, endpoint_id, delivery_id)
