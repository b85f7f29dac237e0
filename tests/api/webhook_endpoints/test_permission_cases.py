"""Checks this domain's permission cases against a real endpoint with a real delivery (the shared matrix
runs them against ones that do not exist), so a wrong case or rule shows up here first."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.users.models import Role
from services.core.webhooks.models import WebhookDelivery
from tests.api.network.helpers import HeadersFor
from tests.api.webhook_endpoints.permission_cases import CASES
from tests.core.webhooks.helpers import emit_sample, make_endpoint
from tests.factories import make_organisation
from tests.permissions import CALLERS, Case


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.path}")
async def test_permission_case(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor, case: Case, caller: str
) -> None:
    own = await make_organisation(db)
    endpoint = await make_endpoint(db, "http://127.0.0.1:9/hook")
    await emit_sample(db)
    delivery = await db.scalar(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    assert delivery is not None
    headers = (
        {} if caller == "anonymous" else await headers_for(Role(caller), own if caller == "partner" else None)
    )
    path = case.path.format(other_org=endpoint.id, own_org=delivery.id)

    response = await client.request(case.method, path, json=case.json, headers=headers)

    if caller in case.allowed:
        assert response.status_code in (200, 201, 204), response.text
    else:
        assert response.status_code == (401 if caller == "anonymous" else 403), response.text
        assert response.headers["content-type"] == "application/problem+json"
