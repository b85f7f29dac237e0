"""Admins manage staff users over HTTP."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.users.models import Role, User
from tests.api.auth.test_auth import assert_problem, login
from tests.factories import auth_headers, make_organisation, make_user

NEW_PASSWORD = "a long enough password"


@pytest.fixture
async def admin(db: AsyncSession) -> User:
    return await make_user(db, Role.admin)


@pytest.fixture
def headers(settings: Settings, admin: User) -> dict[str, str]:
    return auth_headers(settings, admin)


async def test_create_then_get_then_sign_in(
    client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]
) -> None:
    organisation = await make_organisation(db)
    response = await client.post(
        "/v1/users",
        json={
            "email": "Organiser@Example.org",
            "full_name": "  Nasrin Akter ",
            "role": "partner",
            "organisation_id": str(organisation.id),
            "password": NEW_PASSWORD,
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["full_name"] == "Nasrin Akter"
    assert (created["role"], created["organisation_id"], created["is_active"]) == (
        "partner",
        str(organisation.id),
        True,
    )
    assert "password" not in created
    assert "password_hash" not in created

    fetched = await client.get(f"/v1/users/{created['id']}", headers=headers)
    assert fetched.json() == created
    assert (await login(client, "organiser@example.org", NEW_PASSWORD)).status_code == 200


@pytest.mark.parametrize("email", ["taken@example.org", "TAKEN@example.ORG"])
async def test_duplicate_email_is_409(
    client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str], email: str
) -> None:
    await make_user(db, Role.coordinator, email="taken@example.org")
    response = await client.post(
        "/v1/users", json={"email": email, "role": "coordinator", "password": NEW_PASSWORD}, headers=headers
    )
    assert_problem(response, 409, "email-taken")


async def test_email_change_to_a_taken_one_is_409(
    client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]
) -> None:
    await make_user(db, Role.coordinator, email="first@example.org")
    second = await make_user(db, Role.coordinator, email="second@example.org")
    response = await client.patch(
        f"/v1/users/{second.id}", json={"email": "First@example.org"}, headers=headers
    )
    assert_problem(response, 409, "email-taken")
    # Changing only the case of one's own email is fine.
    same = await client.patch(f"/v1/users/{second.id}", json={"email": "Second@example.org"}, headers=headers)
    assert same.status_code == 200, same.text
    assert same.json()["email"] == "Second@example.org"


async def test_partner_needs_an_organisation_and_others_must_not_have_one(
    client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]
) -> None:
    organisation = await make_organisation(db)
    no_org = await client.post(
        "/v1/users",
        json={"email": "p@example.org", "role": "partner", "password": NEW_PASSWORD},
        headers=headers,
    )
    body = assert_problem(no_org, 422, "invalid-user")
    assert "organisation" in str(body["detail"])
    assert body["errors"] == [
        {"loc": ["body", "organisation_id"], "msg": body["detail"], "type": "invalid-user"}
    ]

    with_org = await client.post(
        "/v1/users",
        json={
            "email": "c@example.org",
            "role": "campaigner",
            "organisation_id": str(organisation.id),
            "password": NEW_PASSWORD,
        },
        headers=headers,
    )
    assert_problem(with_org, 422, "invalid-user")

    unknown = await client.post(
        "/v1/users",
        json={
            "email": "p@example.org",
            "role": "partner",
            "organisation_id": str(uuid.uuid4()),
            "password": NEW_PASSWORD,
        },
        headers=headers,
    )
    assert_problem(unknown, 422, "unknown-organisation")

    coordinator = await make_user(db, Role.coordinator)
    to_partner = await client.patch(f"/v1/users/{coordinator.id}", json={"role": "partner"}, headers=headers)
    assert_problem(to_partner, 422, "invalid-user")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "role": "admin", "password": NEW_PASSWORD}, "email"),
        ({"email": "a@example.org", "role": "superuser", "password": NEW_PASSWORD}, "role"),
        ({"email": "a@example.org", "role": "admin", "password": "short"}, "password"),
        ({"email": "a@example.org", "role": "admin"}, "password"),
        ({"email": "a@example.org", "role": "admin", "password": NEW_PASSWORD, "is_admin": True}, "is_admin"),
    ],
)
async def test_create_validates_the_body(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, object], field: str
) -> None:
    response = await client.post("/v1/users", json=body, headers=headers)
    problem = assert_problem(response, 422, "validation-error")
    assert ["body", field] in [e["loc"][:2] for e in problem["errors"]]  # type: ignore[attr-defined]


async def test_patch_refuses_null_for_required_fields(
    client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]
) -> None:
    user = await make_user(db, Role.campaigner)
    response = await client.patch(f"/v1/users/{user.id}", json={"role": None}, headers=headers)
    assert_problem(response, 422, "validation-error")


async def test_list_paginates_filters_and_counts(
    client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]
) -> None:
    tag = uuid.uuid4().hex[:8]
    for n in range(5):
        await make_user(db, Role.case_worker, email=f"cw{n}-{tag}@example.org")
    inactive = await make_user(db, Role.case_worker, email=f"gone-{tag}@example.org")
    inactive.is_active = False
    await db.flush()

    page = await client.get("/v1/users", params={"q": tag, "limit": 2, "offset": 1}, headers=headers)
    assert page.status_code == 200, page.text
    body = page.json()
    assert (body["total"], body["limit"], body["offset"]) == (6, 2, 1)
    assert [u["email"] for u in body["items"]] == [f"cw1-{tag}@example.org", f"cw2-{tag}@example.org"]

    active = (await client.get("/v1/users", params={"q": tag, "is_active": "true"}, headers=headers)).json()
    assert active["total"] == 5
    by_role = (
        await client.get("/v1/users", params={"role": "case_worker", "q": "gone-"}, headers=headers)
    ).json()
    assert [u["id"] for u in by_role["items"]] == [str(inactive.id)]

    assert_problem(
        await client.get("/v1/users", params={"limit": 0}, headers=headers), 422, "validation-error"
    )
    assert_problem(
        await client.get("/v1/users", params={"limit": 201}, headers=headers), 422, "validation-error"
    )


async def test_search_treats_wildcards_literally(
    client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]
) -> None:
    await make_user(db, Role.case_worker, email=f"plain-{uuid.uuid4().hex[:6]}@example.org")
    body = (await client.get("/v1/users", params={"q": "%"}, headers=headers)).json()
    assert body["total"] == 0


async def test_deactivate_blocks_login_and_tokens(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings, headers: dict[str, str]
) -> None:
    user = await make_user(db, Role.campaigner)
    user_headers = auth_headers(settings, user)
    assert (await client.get("/v1/me", headers=user_headers)).status_code == 200

    response = await client.post(f"/v1/users/{user.id}/deactivate", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False
    assert_problem(await client.get("/v1/me", headers=user_headers), 401, "invalid-token")
    assert_problem(await login(client, user.email), 401, "invalid-credentials")
    again = await client.post(f"/v1/users/{user.id}/deactivate", headers=headers)
    assert again.status_code == 200

    reactivated = await client.patch(f"/v1/users/{user.id}", json={"is_active": True}, headers=headers)
    assert reactivated.json()["is_active"] is True
    assert (await login(client, user.email)).status_code == 200


async def test_password_reset_by_admin(
    client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]
) -> None:
    user = await make_user(db, Role.coordinator)
    response = await client.patch(f"/v1/users/{user.id}", json={"password": NEW_PASSWORD}, headers=headers)
    assert response.status_code == 200, response.text
    assert_problem(await login(client, user.email), 401, "invalid-credentials")
    assert (await login(client, user.email, NEW_PASSWORD)).status_code == 200


async def test_admin_cannot_demote_or_deactivate_self(
    client: httpx.AsyncClient, admin: User, headers: dict[str, str]
) -> None:
    assert_problem(
        await client.post(f"/v1/users/{admin.id}/deactivate", headers=headers), 409, "self-modification"
    )
    assert_problem(
        await client.patch(f"/v1/users/{admin.id}", json={"role": "campaigner"}, headers=headers),
        409,
        "self-modification",
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/users/{id}"), ("PATCH", "/v1/users/{id}"), ("POST", "/v1/users/{id}/deactivate")],
)
async def test_unknown_user_is_404(
    client: httpx.AsyncClient, headers: dict[str, str], method: str, path: str
) -> None:
    url = path.format(id=uuid.uuid4())
    response = await client.request(
        method, url, json={"full_name": "x"} if method == "PATCH" else None, headers=headers
    )
    assert_problem(response, 404, "user-not-found")
    assert_problem(await client.get("/v1/users/not-a-uuid", headers=headers), 422, "validation-error")
