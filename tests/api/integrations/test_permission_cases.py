"""Checks this domain's permission cases against a real integration (the shared matrix runs them against
one that does not exist), so a wrong case or rule shows up here first."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.integrations.models import Integration
from services.core.integrations.webhooks import generate_secret
from services.core.users.models import Role
from tests.api.integrations.permission_cases import CASES
from tests.api.network.helpers import HeadersFor
from tests.factories import make_organisation
from tests.permissions import CALLERS, Case


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.path} {c.json or ''}")
async def test_permission_case(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor, case: Case, caller: str
) -> None:
    own = await make_organisation(db)
    integration = Integration(name="Matrix", secret=generate_secret())
    db.add(integration)
    await db.flush()
    headers = (
        {} if caller == "anonymous" else await headers_for(Role(caller), own if caller == "partner" else None)
    )
    path = case.path.format(other_org=integration.id, own_org=own.id)
    body = {k: str(own.id) if v == "{own_org}" else v for k, v in (case.json or {}).items()}

    response = await client.request(case.method, path, json=body if case.json else None, headers=headers)

    if caller in case.allowed:
        assert response.status_code in (200, 201), response.text
        assert response.headers["content-type"] == "application/json"
    else:
        assert response.status_code == (401 if caller == "anonymous" else 403), response.text
        assert response.headers["content-type"] == "application/problem+json"
