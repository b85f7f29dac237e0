"""A stolen admin access token must not become a permanent takeover: one's own email and password, another
admin's, and making someone an admin need the caller's current password — on `PATCH /v1/users/{id}` and
`POST /v1/users` as on `POST /v1/me/password`. Other users' email and password stay an admin's to reset."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.users.models import Role, User
from tests.api.auth.test_auth import assert_problem, login
from tests.factories import PASSWORD, auth_headers, make_user

NEW_PASSWORD = "another long passphrase"


@pytest.fixture
async def admin(db: AsyncSession) -> User:
    return await make_user(db, Role.admin)


@pytest.fixture
def headers(settings: Settings, admin: User) -> dict[str, str]:
    return auth_headers(settings, admin)


async def _patch(
    client: httpx.AsyncClient, user: User, headers: dict[str, str], **body: Any
) -> httpx.Response:
    return await client.patch(f"/v1/users/{user.id}", json=body, headers=headers)


def _refused_without_password(response: httpx.Response) -> None:
    assert_problem(response, 403, "current-password-required")
    assert response.json()["errors"][0]["loc"] == ["body", "current_password"]


@pytest.mark.parametrize(
    "change",
    [{"email": "taken.over@example.org"}, {"password": NEW_PASSWORD}],
    ids=["email", "password"],
)
async def test_ones_own_credentials_need_the_current_password(
    client: httpx.AsyncClient, db: AsyncSession, admin: User, headers: dict[str, str], change: dict[str, str]
) -> None:
    email = admin.email
    _refused_without_password(await _patch(client, admin, headers, **change))
    assert_problem(
        await _patch(client, admin, headers, current_password="a guess", **change), 400, "incorrect-password"
    )
    await db.refresh(admin)
    assert admin.email == email
    assert (await login(client, email, PASSWORD)).status_code == 200  # nothing changed

    done = await _patch(client, admin, headers, current_password=PASSWORD, **change)
    assert done.status_code == 200, done.text
    signed_in = await login(client, change.get("email", email), change.get("password", PASSWORD))
    assert signed_in.status_code == 200, signed_in.text


async def test_ones_own_name_and_an_unchanged_email_need_no_password(
    client: httpx.AsyncClient, admin: User, headers: dict[str, str]
) -> None:
    response = await _patch(client, admin, headers, full_name="Renamed", email=admin.email.upper())
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Renamed"


async def test_another_admins_credentials_need_the_callers_password(
    client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]
) -> None:
    other = await make_user(db, Role.admin)
    _refused_without_password(await _patch(client, other, headers, email="mine.now@example.org"))
    _refused_without_password(await _patch(client, other, headers, password=NEW_PASSWORD))
    done = await _patch(client, other, headers, email="renamed.admin@example.org", current_password=PASSWORD)
    assert done.status_code == 200, done.text


async def test_admins_still_reset_other_staff_without_their_password(
    client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]
) -> None:
    coordinator = await make_user(db, Role.coordinator)
    response = await _patch(
        client, coordinator, headers, email="new.address@example.org", password=NEW_PASSWORD
    )
    assert response.status_code == 200, response.text
    assert (await login(client, "new.address@example.org", NEW_PASSWORD)).status_code == 200


async def test_making_an_admin_needs_the_callers_password(
    client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]
) -> None:
    coordinator = await make_user(db, Role.coordinator)
    _refused_without_password(await _patch(client, coordinator, headers, role="admin"))
    assert_problem(
        await _patch(client, coordinator, headers, role="admin", current_password="a guess"),
        400,
        "incorrect-password",
    )
    promoted = await _patch(client, coordinator, headers, role="admin", current_password=PASSWORD)
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["role"] == "admin"

    new_admin = {"email": "second.admin@example.org", "role": "admin", "password": NEW_PASSWORD}
    _refused_without_password(await client.post("/v1/users", json=new_admin, headers=headers))
    created = await client.post(
        "/v1/users", json={**new_admin, "current_password": PASSWORD}, headers=headers
    )
    assert created.status_code == 201, created.text
    staff = {"email": "campaigner@example.org", "role": "campaigner", "password": NEW_PASSWORD}
    assert (await client.post("/v1/users", json=staff, headers=headers)).status_code == 201


async def test_password_guesses_are_rate_limited(
    client: httpx.AsyncClient, admin: User, headers: dict[str, str], settings: Settings
) -> None:
    limit = int(settings.login_rate_limit.split("/")[0])
    for _ in range(limit):
        response = await _patch(client, admin, headers, password=NEW_PASSWORD, current_password="a guess")
        assert_problem(response, 400, "incorrect-password")
    limited = await _patch(client, admin, headers, password=NEW_PASSWORD, current_password=PASSWORD)
    assert_problem(limited, 429, "rate-limited")
