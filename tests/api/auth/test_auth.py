"""Signing in, renewing tokens, the signed-in user, changing one's password (HTTP through the app)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.app import create_app
from services.core.config import Settings
from services.core.users.models import Role, User
from services.core.users.security import JWT_ALGORITHM
from tests.factories import PASSWORD, auth_headers, make_api_key, make_organisation, make_user

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert str(body["type"]).endswith("/" + code)
    return body


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/v1/auth/token", data={"username": email, "password": password})


async def test_login_returns_working_tokens(client: httpx.AsyncClient, db: AsyncSession) -> None:
    organisation = await make_organisation(db)
    user = await make_user(db, Role.partner, organisation=organisation)

    response = await login(client, user.email.upper())
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    tokens = response.json()
    assert tokens["token_type"] == "bearer"
    assert 0 < tokens["expires_in"] <= 15 * 60
    assert tokens["refresh_expires_in"] > tokens["expires_in"]

    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200, me.text
    body = me.json()
    assert (body["id"], body["email"], body["role"]) == (str(user.id), user.email, "partner")
    assert body["organisation_id"] == str(organisation.id)
    assert body["last_login_at"] is not None
    assert "password_hash" not in body


@pytest.mark.parametrize("case", ["unknown email", "wrong password", "inactive user"])
async def test_failed_logins_are_one_generic_401(
    client: httpx.AsyncClient, db: AsyncSession, case: str
) -> None:
    user = await make_user(db, Role.coordinator)
    email, password = user.email, PASSWORD
    if case == "unknown email":
        email = f"nobody-{uuid.uuid4().hex[:6]}@example.org"
    elif case == "wrong password":
        password = "guess"
    else:
        user.is_active = False
        await db.flush()
    response = await login(client, email, password)
    body = assert_problem(response, 401, "invalid-credentials")
    assert body["detail"] == "Incorrect email or password."
    assert response.headers["www-authenticate"] == "Bearer"


async def test_login_accepts_the_full_oauth2_form(client: httpx.AsyncClient, db: AsyncSession) -> None:
    """What Swagger UI's "Authorize" and OAuth2 client libraries send."""
    user = await make_user(db, Role.admin)
    form = {
        "grant_type": "password",
        "username": user.email,
        "password": PASSWORD,
        "scope": "",
        "client_id": "",
    }
    response = await client.post("/v1/auth/token", data=form)
    assert response.status_code == 200, response.text


async def test_login_form_is_validated(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/auth/token", data={"username": "a@example.org"})
    body = assert_problem(response, 422, "validation-error")
    assert ["body", "password"] in [e["loc"] for e in body["errors"]]  # type: ignore[attr-defined]
    wrong_grant = await client.post(
        "/v1/auth/token",
        data={"username": "a@example.org", "password": "x", "grant_type": "client_credentials"},
    )
    assert_problem(wrong_grant, 422, "validation-error")


async def test_login_is_rate_limited_per_email_and_address(
    settings: Settings,
    database_url: str,
    redis_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    db: AsyncSession,
) -> None:
    limited = create_app(
        settings.model_copy(update={"login_rate_limit": "3/minute"}),
        database_url=database_url,
        redis_url=redis_url,
    )
    user = await make_user(db, Role.campaigner)
    async with LifespanManager(limited):
        limited.state.sessionmaker = sessionmaker

        def client_from(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=limited, client=(address, 50000))
            return httpx.AsyncClient(transport=transport, base_url="http://test")

        async with client_from("198.51.100.7") as attacker, client_from("203.0.113.9") as owner:
            for _ in range(3):
                assert (await login(attacker, user.email, "wrong")).status_code == 401
            blocked = await login(attacker, user.email)  # even the right password, once over the limit
            body = assert_problem(blocked, 429, "rate-limited")
            assert 1 <= int(blocked.headers["retry-after"]) <= 60
            assert "try again" in str(body["detail"])
            # The same email from another address, and the same address for another email, still work.
            assert (await login(owner, user.email)).status_code == 200
            other = await make_user(db, Role.campaigner)
            assert (await login(attacker, other.email)).status_code == 200


async def test_refresh_renews_and_password_change_revokes(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    user = await make_user(db, Role.case_worker)
    tokens = (await login(client, user.email)).json()

    renewed = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert renewed.status_code == 200, renewed.text
    assert renewed.headers["cache-control"] == "no-store"
    fresh = renewed.json()
    assert (await client.get("/v1/me", headers=bearer(fresh["access_token"]))).status_code == 200

    changed = await client.post(
        "/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "a much better passphrase"},
        headers=bearer(fresh["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    newest = changed.json()

    # Everything issued before the change is dead; the tokens returned by the change work.
    for refresh in (tokens["refresh_token"], fresh["refresh_token"]):
        assert_problem(
            await client.post("/v1/auth/refresh", json={"refresh_token": refresh}), 401, "invalid-token"
        )
    assert_problem(await client.get("/v1/me", headers=bearer(fresh["access_token"])), 401, "invalid-token")
    assert (await client.get("/v1/me", headers=bearer(newest["access_token"]))).status_code == 200
    assert (
        await client.post("/v1/auth/refresh", json={"refresh_token": newest["refresh_token"]})
    ).status_code == 200
    assert (await login(client, user.email, "a much better passphrase")).status_code == 200
    assert_problem(await login(client, user.email), 401, "invalid-credentials")


async def test_refresh_is_refused_after_deactivation_and_role_change(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    deactivated = await make_user(db, Role.coordinator)
    promoted = await make_user(db, Role.coordinator)
    refresh_a = (await login(client, deactivated.email)).json()["refresh_token"]
    refresh_b = (await login(client, promoted.email)).json()["refresh_token"]
    admin = await make_user(db, Role.admin)
    headers = auth_headers(settings, admin)
    assert (await client.post(f"/v1/users/{deactivated.id}/deactivate", headers=headers)).status_code == 200
    assert (
        await client.patch(
            f"/v1/users/{promoted.id}", json={"role": "admin", "current_password": PASSWORD}, headers=headers
        )
    ).status_code == 200
    for refresh in (refresh_a, refresh_b):
        assert_problem(
            await client.post("/v1/auth/refresh", json={"refresh_token": refresh}), 401, "invalid-token"
        )


async def test_wrong_current_password_is_refused(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    user = await make_user(db, Role.campaigner)
    response = await client.post(
        "/v1/me/password",
        json={"current_password": "not it", "new_password": "a much better passphrase"},
        headers=auth_headers(settings, user),
    )
    assert_problem(response, 400, "incorrect-password")
    short = await client.post(
        "/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=auth_headers(settings, user),
    )
    body = assert_problem(short, 422, "validation-error")
    assert ["body", "new_password"] in [e["loc"] for e in body["errors"]]  # type: ignore[attr-defined]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def craft(settings: Settings, user: User, **claims: object) -> str:
    now = datetime.now(UTC)
    payload: dict[str, object] = {
        "sub": str(user.id),
        "typ": "access",
        "role": user.role.value,
        "ver": user.token_version,
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    payload.update(claims)
    return jwt.encode(payload, settings.secret_key.get_secret_value(), algorithm=JWT_ALGORITHM)


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "wrong signature",
        "refresh as access",
        "unknown user",
        "garbage",
        "no exp",
        "none algorithm",
    ],
)
async def test_bad_access_tokens_are_401(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings, case: str
) -> None:
    user = await make_user(db, Role.admin)
    past = datetime.now(UTC) - timedelta(minutes=30)
    secret = settings.secret_key.get_secret_value()
    tokens = {
        "expired": craft(settings, user, iat=past, exp=past + timedelta(minutes=15)),
        "wrong signature": jwt.encode(
            {"sub": str(user.id), "typ": "access", "ver": 0, "iat": past, "exp": past + timedelta(days=1)},
            "another-secret-that-is-long-enough-for-hs256",
            algorithm=JWT_ALGORITHM,
        ),
        "refresh as access": craft(settings, user, typ="refresh"),
        "unknown user": craft(settings, user, sub=str(uuid.uuid4())),
        "garbage": "not.a.jwt",
        "no exp": jwt.encode(
            {"sub": str(user.id), "typ": "access", "ver": 0, "iat": past}, secret, algorithm=JWT_ALGORITHM
        ),
        "none algorithm": jwt.encode(
            {"sub": str(user.id), "typ": "access", "ver": 0, "iat": past, "exp": past + timedelta(days=1)},
            None,
            algorithm="none",
        ),
    }
    token = tokens[case]
    response = await client.get("/v1/me", headers=bearer(token))
    assert_problem(response, 401, "invalid-token")
    assert response.headers["www-authenticate"] == "Bearer"
    # A fresh, well-made token for the same user works: the failure above is the token's.
    assert (await client.get("/v1/me", headers=bearer(craft(settings, user)))).status_code == 200


async def test_access_token_is_not_a_refresh_token(client: httpx.AsyncClient, db: AsyncSession) -> None:
    user = await make_user(db, Role.admin)
    tokens = (await login(client, user.email)).json()
    assert_problem(
        await client.post("/v1/auth/refresh", json={"refresh_token": tokens["access_token"]}),
        401,
        "invalid-token",
    )


async def test_me_needs_a_user(client: httpx.AsyncClient, db: AsyncSession) -> None:
    response = await client.get("/v1/me")
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    _, key = await make_api_key(db, ["organisations:read"])
    assert_problem(await client.get("/v1/me", headers={"X-API-Key": key}), 403, "forbidden")
