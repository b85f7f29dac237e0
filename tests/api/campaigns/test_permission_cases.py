"""Checks this domain's permission cases against real campaigns and petitions (the shared matrix runs
them against references that do not exist), so a wrong case or rule shows up here first."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.models import Campaign, CampaignStatus, Petition
from services.core.users.models import Role
from tests.api.campaigns.permission_cases import CASES
from tests.api.network.helpers import HeadersFor
from tests.factories import make_organisation
from tests.permissions import CALLERS, Case


@pytest.mark.parametrize("status", [CampaignStatus.draft, CampaignStatus.published])
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.path} {c.json or ''}")
async def test_permission_case(
    client: httpx.AsyncClient,
    db: AsyncSession,
    headers_for: HeadersFor,
    case: Case,
    caller: str,
    status: CampaignStatus,
) -> None:
    own = await make_organisation(db)
    campaign = Campaign(
        slug="matrix-campaign",
        default_language="en",
        translations={"en": {"title": "Matrix", "summary": "", "body": ""}},
        status=status,
    )
    db.add(campaign)
    await db.flush()
    petition = Petition(
        campaign_id=campaign.id,
        slug="matrix-petition",
        default_language="en",
        translations={"en": {"title": "Matrix"}},
        consent_text="I agree.",
    )
    db.add(petition)
    await db.flush()
    headers = (
        {} if caller == "anonymous" else await headers_for(Role(caller), own if caller == "partner" else None)
    )
    real = "matrix-petition" if case.path.startswith("/v1/petitions/") else "matrix-campaign"
    path = case.path.format(own_org=own.id, other_org=real)
    json = case.json
    if json is not None and "campaign" in json:
        json = {**json, "campaign": "matrix-campaign"}
    if json is not None and "partners" in json:
        json = {**json, "partners": [{"organisation": str(own.id), "role": "lead"}]}

    response = await client.request(case.method, path, json=json, headers=headers)

    if caller in case.allowed:
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500, response.text
        assert response.status_code != 422, response.text  # the case's body must be valid
    else:
        assert response.status_code == (401 if caller == "anonymous" else 403), response.text
        assert response.headers["content-type"] == "application/problem+json"
