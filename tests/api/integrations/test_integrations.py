"""Integration management through the API: the secret is shown once, rotation keeps the previous secret
valid for the grace period, references are checked, and only admins get in."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.models import Campaign, Petition
from services.core.integrations.errors import WebhookSignatureInvalid
from services.core.integrations.models import Integration
from services.core.integrations.webhooks import sign_webhook, valid_secrets, verify_webhook
from services.core.users.models import Role
from tests.api.network.helpers import HeadersFor, KeyFor, assert_problem
from tests.factories import make_organisation

BODY = json.dumps({"signatures": []}).encode()


async def make_petition(db: AsyncSession) -> Petition:
    suffix = uuid.uuid4().hex[:8]
    campaign = Campaign(slug=f"c-{suffix}", default_language="en", translations={"en": {"title": "C"}})
    db.add(campaign)
    await db.flush()
    petition = Petition(
        campaign_id=campaign.id,
        slug=f"p-{suffix}",
        default_language="en",
        translations={"en": {"title": "P"}},
        consent_text="I agree.",
    )
    db.add(petition)
    await db.flush()
    return petition


async def create(client: httpx.AsyncClient, admin: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/integrations", json={"name": "Action Network", **fields}, headers=admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def accepts(secrets: list[str], secret: str, now: datetime) -> bool:
    headers = sign_webhook(secret, "msg_1", now, BODY)
    try:
        verify_webhook(secrets, headers, BODY, now)
    except WebhookSignatureInvalid:
        return False
    return True


async def test_create_shows_the_secret_once(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    admin = await headers_for(Role.admin)
    petition = await make_petition(db)
    organisation = await make_organisation(db)

    created = await create(
        client, admin, default_petition_id=str(petition.id), organisation_id=str(organisation.id)
    )

    assert created["secret"].startswith("whsec_")
    assert created["default_petition_id"] == str(petition.id)
    assert created["organisation_id"] == str(organisation.id)
    assert created["active"] is True
    got = await client.get(f"/v1/integrations/{created['id']}", headers=admin)
    assert got.status_code == 200
    assert "secret" not in got.json()
    assert created["secret"] not in got.text
    listed = await client.get("/v1/integrations", headers=admin)
    assert listed.status_code == 200
    page = listed.json()
    assert set(page) == {"items", "total", "limit", "offset"}
    assert created["id"] in [i["id"] for i in page["items"]]
    assert created["secret"] not in listed.text
    assert all("secret" not in item for item in page["items"])


async def test_list_paginates_and_filters(client: httpx.AsyncClient, headers_for: HeadersFor) -> None:
    admin = await headers_for(Role.admin)
    ids = [(await create(client, admin, name=f"I{n}"))["id"] for n in range(3)]
    await client.post(f"/v1/integrations/{ids[0]}/deactivate", headers=admin)

    first = (await client.get("/v1/integrations?limit=2", headers=admin)).json()
    second = (await client.get("/v1/integrations?limit=2&offset=2", headers=admin)).json()
    inactive = (await client.get("/v1/integrations?active=false", headers=admin)).json()

    assert first["total"] == 3
    assert first["limit"] == 2
    assert len(first["items"]) == 2
    assert {i["id"] for i in first["items"] + second["items"]} == set(ids)
    assert [i["id"] for i in inactive["items"]] == [ids[0]]


async def test_rotation_keeps_the_old_secret_for_the_grace_period(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    admin = await headers_for(Role.admin)
    created = await create(client, admin)
    before = datetime.now(UTC)

    rotated = await client.post(f"/v1/integrations/{created['id']}/rotate-secret", headers=admin)

    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != created["secret"]
    expires = datetime.fromisoformat(rotated.json()["previous_secret_expires_at"])
    assert before + timedelta(hours=24) <= expires <= datetime.now(UTC) + timedelta(hours=24)
    got = await client.get(f"/v1/integrations/{created['id']}", headers=admin)
    assert new_secret not in got.text
    assert created["secret"] not in got.text

    integration = await db.get(Integration, uuid.UUID(created["id"]))
    assert integration is not None
    await db.refresh(integration)
    within = expires - timedelta(minutes=1)
    after = expires + timedelta(minutes=1)
    assert accepts(valid_secrets(integration, within), created["secret"], within)
    assert accepts(valid_secrets(integration, within), new_secret, within)
    assert not accepts(valid_secrets(integration, after), created["secret"], after)
    assert accepts(valid_secrets(integration, after), new_secret, after)


async def test_rotating_twice_ends_the_oldest_secret(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    admin = await headers_for(Role.admin)
    created = await create(client, admin)
    second = (await client.post(f"/v1/integrations/{created['id']}/rotate-secret", headers=admin)).json()
    third = (await client.post(f"/v1/integrations/{created['id']}/rotate-secret", headers=admin)).json()

    integration = await db.get(Integration, uuid.UUID(created["id"]))
    assert integration is not None
    await db.refresh(integration)
    now = datetime.now(UTC)
    assert valid_secrets(integration, now) == [third["secret"], second["secret"]]


async def test_patch(client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor) -> None:
    admin = await headers_for(Role.admin)
    petition = await make_petition(db)
    organisation = await make_organisation(db)
    created = await create(client, admin, organisation_id=str(organisation.id))
    url = f"/v1/integrations/{created['id']}"

    changed = await client.patch(
        url,
        json={"name": "  Renamed  ", "default_petition_id": str(petition.id), "organisation_id": None},
        headers=admin,
    )

    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["name"] == "Renamed"
    assert body["default_petition_id"] == str(petition.id)
    assert body["organisation_id"] is None
    assert "secret" not in body
    off = await client.patch(url, json={"active": False}, headers=admin)
    assert off.json()["active"] is False
    on = await client.patch(url, json={"active": True}, headers=admin)
    assert on.json()["active"] is True


async def test_patch_validation(client: httpx.AsyncClient, headers_for: HeadersFor) -> None:
    admin = await headers_for(Role.admin)
    created = await create(client, admin)
    url = f"/v1/integrations/{created['id']}"
    unknown = str(uuid.uuid4())

    assert_problem(
        await client.patch(url, json={"default_petition_id": unknown}, headers=admin),
        404,
        "petition-not-found",
    )
    assert_problem(
        await client.patch(url, json={"organisation_id": unknown}, headers=admin),
        404,
        "partner-organisation-not-found",
    )
    assert_problem(await client.patch(url, json={"name": None}, headers=admin), 422)
    assert_problem(await client.patch(url, json={"active": None}, headers=admin), 422)
    assert_problem(await client.patch(url, json={"name": ""}, headers=admin), 422)
    assert_problem(await client.patch(url, json={"secret": "whsec_x"}, headers=admin), 422)
    assert_problem(await client.patch(url, json={"default_petition_id": "nope"}, headers=admin), 422)
    assert_problem(
        await client.patch(f"/v1/integrations/{unknown}", json={"name": "x"}, headers=admin),
        404,
        "integration-not-found",
    )


async def test_create_validation(client: httpx.AsyncClient, headers_for: HeadersFor) -> None:
    admin = await headers_for(Role.admin)
    unknown = str(uuid.uuid4())

    assert_problem(
        await client.post(
            "/v1/integrations", json={"name": "x", "default_petition_id": unknown}, headers=admin
        ),
        404,
        "petition-not-found",
    )
    assert_problem(
        await client.post("/v1/integrations", json={"name": "x", "organisation_id": unknown}, headers=admin),
        404,
        "partner-organisation-not-found",
    )
    assert_problem(await client.post("/v1/integrations", json={}, headers=admin), 422)
    assert_problem(
        await client.post("/v1/integrations", json={"name": "x", "secret": "whsec_mine"}, headers=admin), 422
    )


async def test_deactivate(client: httpx.AsyncClient, headers_for: HeadersFor) -> None:
    admin = await headers_for(Role.admin)
    created = await create(client, admin)

    response = await client.post(f"/v1/integrations/{created['id']}/deactivate", headers=admin)

    assert response.status_code == 200, response.text
    assert response.json()["active"] is False
    assert "secret" not in response.json()
    assert_problem(
        await client.post(f"/v1/integrations/{uuid.uuid4()}/deactivate", headers=admin),
        404,
        "integration-not-found",
    )


async def test_only_admins(client: httpx.AsyncClient, headers_for: HeadersFor, api_key_for: KeyFor) -> None:
    admin = await headers_for(Role.admin)
    created = await create(client, admin)
    url = f"/v1/integrations/{created['id']}"
    for role in (Role.coordinator, Role.campaigner, Role.case_worker, Role.partner):
        headers = await headers_for(role)
        assert_problem(await client.get(url, headers=headers), 403)
        assert_problem(await client.post(f"{url}/rotate-secret", headers=headers), 403)
    key = await api_key_for(["organisations:write"])
    assert_problem(await client.get("/v1/integrations", headers=key), 403)
    assert_problem(await client.get("/v1/integrations"), 401)
