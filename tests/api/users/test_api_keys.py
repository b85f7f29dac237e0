"""Admins manage API keys over HTTP; machine clients authenticate with them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, Depends
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.app import create_app
from services.api.deps import StaffOnly, require_roles
from services.api.routing import router as make_router
from services.core.config import Settings
from services.core.users.models import ApiKey, Role, User
from services.core.users.scopes import Scope
from services.core.users.security import Principal
from tests.api.auth.test_auth import assert_problem
from tests.factories import api_key_headers, auth_headers, make_api_key, make_organisation, make_user


@pytest.fixture
async def admin(db: AsyncSession) -> User:
    return await make_user(db, Role.admin)


@pytest.fixture
def headers(settings: Settings, admin: User) -> dict[str, str]:
    return auth_headers(settings, admin)


async def test_create_shows_the_secret_once_and_lists_without_it(
    client: httpx.AsyncClient, db: AsyncSession, admin: User, headers: dict[str, str]
) -> None:
    organisation = await make_organisation(db)
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    response = await client.post(
        "/v1/api-keys",
        json={
            "name": "Partner site",
            "scopes": ["signatures:write", "organisations:read", "signatures:write"],
            "organisation_id": str(organisation.id),
            "expires_at": expires,
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["key"].startswith(f"loom_{created['prefix']}_")
    assert created["scopes"] == ["organisations:read", "signatures:write"]
    assert (created["organisation_id"], created["created_by_id"]) == (str(organisation.id), str(admin.id))
    assert created["is_active"] is True
    assert created["last_used_at"] is None

    stored = await db.scalar(select(ApiKey).where(ApiKey.id == uuid.UUID(created["id"])))
    assert stored is not None
    assert created["key"] not in stored.key_hash

    fetched = (await client.get(f"/v1/api-keys/{created['id']}", headers=headers)).json()
    assert "key" not in fetched
    assert "key_hash" not in fetched
    listed = (
        await client.get("/v1/api-keys", params={"organisation_id": str(organisation.id)}, headers=headers)
    ).json()
    assert listed["total"] == 1
    assert [k["id"] for k in listed["items"]] == [created["id"]]
    assert "key" not in listed["items"][0]
    assert created["key"] not in str(listed)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scopes": ["everything:write"]}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "", "scopes": ["signatures:write"]}, "name"),
        ({"name": "x", "scopes": ["signatures:write"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "scopes": ["signatures:write"], "expires_at": "2099-01-01T00:00:00"}, "expires_at"),
    ],
)
async def test_create_validates(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, object], field: str
) -> None:
    problem = assert_problem(
        await client.post("/v1/api-keys", json=body, headers=headers), 422, "validation-error"
    )
    assert ["body", field] in [e["loc"][:2] for e in problem["errors"]]  # type: ignore[attr-defined]


async def test_create_for_unknown_organisation_is_422(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/api-keys",
        json={"name": "x", "scopes": ["signatures:write"], "organisation_id": str(uuid.uuid4())},
        headers=headers,
    )
    assert_problem(response, 422, "unknown-organisation")


async def test_revoke_stops_the_key(
    client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]
) -> None:
    api_key, key = await make_api_key(db, ["organisations:read"])
    response = await client.post(f"/v1/api-keys/{api_key.id}/revoke", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["revoked_at"] is not None
    assert body["is_active"] is False
    again = (await client.post(f"/v1/api-keys/{api_key.id}/revoke", headers=headers)).json()
    assert again["revoked_at"] == body["revoked_at"]
    active_only = (
        await client.get("/v1/api-keys", params={"include_revoked": "false"}, headers=headers)
    ).json()
    assert str(api_key.id) not in [k["id"] for k in active_only["items"]]
    assert_problem(await client.get("/v1/me", headers=api_key_headers(key)), 401, "invalid-token")
    assert_problem(
        await client.post(f"/v1/api-keys/{uuid.uuid4()}/revoke", headers=headers), 404, "api-key-not-found"
    )


async def test_api_keys_cannot_manage_users_or_keys(client: httpx.AsyncClient, db: AsyncSession) -> None:
    _, key = await make_api_key(db, [scope.value for scope in Scope])
    assert_problem(await client.get("/v1/users", headers=api_key_headers(key)), 403, "forbidden")
    assert_problem(
        await client.post(
            "/v1/api-keys", json={"name": "x", "scopes": ["cases:read"]}, headers=api_key_headers(key)
        ),
        403,
        "forbidden",
    )


# --- authenticating with API keys on scoped endpoints ----------------------------------------------------

OrganisationReader = Annotated[
    Principal,
    Depends(require_roles(Role.admin, Role.coordinator, Role.partner, scope=Scope.organisations_read)),
]


def probe_router() -> APIRouter:
    """Endpoints guarded the way other domains guard theirs."""
    router = make_router(prefix="/probe")

    @router.get("/organisations/{organisation_id}")
    async def read_organisation(organisation_id: uuid.UUID, principal: OrganisationReader) -> dict[str, str]:
        principal.ensure_may_act_for(organisation_id)
        return {"kind": principal.kind, "role": principal.role.value}

    @router.get("/staff")
    async def staff_only(principal: StaffOnly) -> dict[str, str]:
        return {"role": principal.role.value}

    return router


@pytest.fixture
async def probe_client(
    settings: Settings, database_url: str, redis_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database_url=database_url, redis_url=redis_url)
    app.include_router(probe_router())
    async with LifespanManager(app):
        app.state.sessionmaker = sessionmaker
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def test_scoped_key_is_admitted_and_its_use_recorded(
    probe_client: httpx.AsyncClient, db: AsyncSession
) -> None:
    organisation = await make_organisation(db)
    api_key, key = await make_api_key(db, ["organisations:read"])
    assert api_key.last_used_at is None
    response = await probe_client.get(f"/probe/organisations/{organisation.id}", headers=api_key_headers(key))
    assert response.status_code == 200, response.text
    assert response.json() == {"kind": "api_key", "role": "coordinator"}
    await db.refresh(api_key)
    assert api_key.last_used_at is not None
    assert datetime.now(UTC) - api_key.last_used_at < timedelta(minutes=1)


async def test_key_without_the_scope_is_403(probe_client: httpx.AsyncClient, db: AsyncSession) -> None:
    organisation = await make_organisation(db)
    _, key = await make_api_key(db, ["organisations:write", "signatures:write"])
    response = await probe_client.get(f"/probe/organisations/{organisation.id}", headers=api_key_headers(key))
    body = assert_problem(response, 403, "forbidden")
    assert "organisations:read" in str(body["detail"])


async def test_organisation_key_acts_only_for_its_organisation(
    probe_client: httpx.AsyncClient, db: AsyncSession
) -> None:
    own, other = await make_organisation(db), await make_organisation(db)
    _, key = await make_api_key(db, ["organisations:read"], organisation=own)
    mine = await probe_client.get(f"/probe/organisations/{own.id}", headers=api_key_headers(key))
    assert mine.json() == {"kind": "api_key", "role": "partner"}
    assert_problem(
        await probe_client.get(f"/probe/organisations/{other.id}", headers=api_key_headers(key)),
        403,
        "forbidden",
    )


@pytest.mark.parametrize("case", ["revoked", "expired", "wrong secret", "unknown prefix", "malformed"])
async def test_unusable_keys_are_401(probe_client: httpx.AsyncClient, db: AsyncSession, case: str) -> None:
    organisation = await make_organisation(db)
    now = datetime.now(UTC)
    api_key, key = await make_api_key(
        db,
        ["organisations:read"],
        revoked_at=now if case == "revoked" else None,
        expires_at=now - timedelta(seconds=1) if case == "expired" else now + timedelta(days=1),
    )
    if case == "wrong secret":
        key = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    elif case == "unknown prefix":
        key = key.replace(api_key.prefix, "0" * len(api_key.prefix))
    elif case == "malformed":
        key = "just-some-string"
    response = await probe_client.get(f"/probe/organisations/{organisation.id}", headers=api_key_headers(key))
    assert_problem(response, 401, "invalid-token")
    assert response.headers["www-authenticate"] == "Bearer"
    await db.refresh(api_key)
    assert api_key.last_used_at is None


async def test_endpoints_without_a_scope_refuse_every_key(
    probe_client: httpx.AsyncClient, db: AsyncSession
) -> None:
    _, key = await make_api_key(db, [scope.value for scope in Scope])
    body = assert_problem(
        await probe_client.get("/probe/staff", headers=api_key_headers(key)), 403, "forbidden"
    )
    assert "API keys" in str(body["detail"])


async def test_users_pass_the_same_guards(
    probe_client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    own, other = await make_organisation(db), await make_organisation(db)
    partner = await make_user(db, Role.partner, organisation=own)
    campaigner = await make_user(db, Role.campaigner)
    as_partner = auth_headers(settings, partner)
    assert (await probe_client.get(f"/probe/organisations/{own.id}", headers=as_partner)).status_code == 200
    assert_problem(
        await probe_client.get(f"/probe/organisations/{other.id}", headers=as_partner), 403, "forbidden"
    )
    assert_problem(await probe_client.get("/probe/staff", headers=as_partner), 403, "forbidden")
    as_campaigner = auth_headers(settings, campaigner)
    assert_problem(
        await probe_client.get(f"/probe/organisations/{own.id}", headers=as_campaigner), 403, "forbidden"
    )
    assert (await probe_client.get("/probe/staff", headers=as_campaigner)).json() == {"role": "campaigner"}
    assert_problem(await probe_client.get("/probe/staff"), 401, "unauthenticated")


def test_unknown_scopes_fail_when_the_endpoint_is_defined() -> None:
    with pytest.raises(ValueError, match="organisation:read"):
        require_roles(Role.admin, scope="organisation:read")
    with pytest.raises(ValueError, match="at least one role"):
        require_roles()
