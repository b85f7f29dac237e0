"""Checks this domain's permission cases (the shared matrix runs them too), so a wrong case or a wrong
rule shows up here first."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.network.models import Coalition
from services.core.users.models import Role
from tests.api.network.helpers import HeadersFor
from tests.api.network.permission_cases import CASES
from tests.factories import make_organisation
from tests.permissions import CALLERS, Case


@pytest.mark.parametrize("coalition_slug", ["custom", "europe"])
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.path} {c.json or ''}")
async def test_permission_case(
    client: httpx.AsyncClient,
    db: AsyncSession,
    headers_for: HeadersFor,
    case: Case,
    caller: str,
    coalition_slug: str,
) -> None:
    own = await make_organisation(db)
    other = await make_organisation(db)
    custom = Coalition(name="Matrix Custom", slug="custom")
    db.add(custom)
    await db.flush()
    headers = (
        {} if caller == "anonymous" else await headers_for(Role(caller), own if caller == "partner" else None)
    )
    path = case.path.format(own_org=own.id, other_org=other.id, coalition=coalition_slug)

    response = await client.request(case.method, path, json=case.json, headers=headers)

    if caller in case.allowed:
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500, response.text
        assert response.status_code != 422, response.text  # the case's body must be valid
    else:
        assert response.status_code == (401 if caller == "anonymous" else 403), response.text
        assert response.headers["content-type"] == "application/problem+json"
