"""The users service against a real database: credentials, tokens, user rules, API keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.errors import Forbidden, InvalidCredentials, InvalidToken
from services.core.users import service
from services.core.users.errors import (
    EmailTaken,
    IncorrectPassword,
    InvalidUserData,
    SelfModification,
    UnknownOrganisation,
)
from services.core.users.models import ApiKey, Role, User
from services.core.users.schemas import ApiKeyCreate, UserCreate, UserUpdate
from services.core.users.scopes import SCOPE_DESCRIPTIONS, Scope
from services.core.users.security import Principal, verify_password
from tests.factories import PASSWORD, make_api_key, make_organisation, make_user

NEW_PASSWORD = "a brand new passphrase"


async def test_authenticate_accepts_the_right_password_case_insensitively_by_email(db: AsyncSession) -> None:
    user = await make_user(db, Role.campaigner, email="Mixed.Case@Example.org")
    found = await service.authenticate(db, "  mixed.case@EXAMPLE.org ", PASSWORD)
    assert found.id == user.id
    assert found.last_login_at is not None


@pytest.mark.parametrize("case", ["unknown email", "wrong password", "inactive"])
async def test_authenticate_gives_the_same_error_for_every_failure(db: AsyncSession, case: str) -> None:
    user = await make_user(db, Role.coordinator)
    email, password = user.email, PASSWORD
    if case == "unknown email":
        email = "nobody@example.org"
    elif case == "wrong password":
        password = "not the password"
    else:
        user.is_active = False
        await db.flush()
    with pytest.raises(InvalidCredentials) as raised:
        await service.authenticate(db, email, password)
    assert raised.value.detail == "Incorrect email or password."


async def test_create_admin_creates_then_repairs_idempotently(db: AsyncSession) -> None:
    admin = await service.create_admin(db, "root@example.org", "first long password")
    assert (admin.role, admin.is_active, admin.organisation_id) == (Role.admin, True, None)

    # Someone demoted and deactivated them: create-admin restores them with the new password.
    organisation = await make_organisation(db)
    admin.role, admin.organisation_id, admin.is_active = Role.partner, organisation.id, False
    await db.flush()
    again = await service.create_admin(db, "ROOT@example.org", "second long password")
    assert again.id == admin.id
    assert (again.role, again.is_active, again.organisation_id) == (Role.admin, True, None)
    assert verify_password(again.password_hash, "second long password")
    assert again.token_version == 1  # old sessions signed out
    count = await db.scalar(
        select(func.count()).select_from(User).where(User.email.ilike("root@example.org"))
    )
    assert count == 1


@pytest.mark.parametrize(
    ("email", "password"), [("not-an-email", "long enough password"), ("a@b.org", "short")]
)
async def test_create_admin_refuses_bad_input(db: AsyncSession, email: str, password: str) -> None:
    with pytest.raises(InvalidUserData):
        await service.create_admin(db, email, password)


async def test_create_user_checks_role_organisation_and_email(db: AsyncSession) -> None:
    organisation = await make_organisation(db)
    admin = await make_user(db, Role.admin)
    with pytest.raises(InvalidUserData, match="partner user must belong"):
        await service.create_user(
            db, admin.id, UserCreate(email="p@example.org", role=Role.partner, password=NEW_PASSWORD)
        )
    with pytest.raises(InvalidUserData, match="Only partner users"):
        await service.create_user(
            db,
            admin.id,
            UserCreate(
                email="c@example.org",
                role=Role.coordinator,
                organisation_id=organisation.id,
                password=NEW_PASSWORD,
            ),
        )
    with pytest.raises(UnknownOrganisation):
        await service.create_user(
            db,
            admin.id,
            UserCreate(
                email="p@example.org",
                role=Role.partner,
                organisation_id=uuid.uuid4(),
                password=NEW_PASSWORD,
            ),
        )
    partner = await service.create_user(
        db,
        admin.id,
        UserCreate(
            email="p@example.org", role=Role.partner, organisation_id=organisation.id, password=NEW_PASSWORD
        ),
    )
    assert partner.organisation_id == organisation.id
    assert verify_password(partner.password_hash, NEW_PASSWORD)
    with pytest.raises(EmailTaken):
        await service.create_user(
            db,
            admin.id,
            UserCreate(
                email="P@EXAMPLE.ORG", role=Role.admin, password=NEW_PASSWORD, current_password=PASSWORD
            ),
        )


async def test_update_signs_out_only_on_security_changes(db: AsyncSession) -> None:
    admin = await make_user(db, Role.admin)
    user = await make_user(db, Role.campaigner)
    await service.update_user(db, admin.id, user.id, UserUpdate(full_name="New Name"))
    assert (user.full_name, user.token_version) == ("New Name", 0)

    await service.update_user(db, admin.id, user.id, UserUpdate(role=Role.case_worker))
    assert (user.role, user.token_version) == (Role.case_worker, 1)

    await service.update_user(db, admin.id, user.id, UserUpdate(password=NEW_PASSWORD))
    assert user.token_version == 2
    assert verify_password(user.password_hash, NEW_PASSWORD)

    await service.update_user(db, admin.id, user.id, UserUpdate(is_active=False))
    assert (user.is_active, user.token_version) == (False, 3)
    await service.update_user(db, admin.id, user.id, UserUpdate(is_active=True))
    assert (user.is_active, user.token_version) == (True, 3)


async def test_update_to_partner_and_back_needs_the_organisation_explicitly(db: AsyncSession) -> None:
    admin = await make_user(db, Role.admin)
    user = await make_user(db, Role.coordinator)
    organisation = await make_organisation(db)
    with pytest.raises(InvalidUserData):
        await service.update_user(db, admin.id, user.id, UserUpdate(role=Role.partner))
    await service.update_user(
        db, admin.id, user.id, UserUpdate(role=Role.partner, organisation_id=organisation.id)
    )
    assert user.organisation_id == organisation.id
    with pytest.raises(InvalidUserData):
        await service.update_user(db, admin.id, user.id, UserUpdate(role=Role.coordinator))
    back = await service.update_user(
        db, admin.id, user.id, UserUpdate(role=Role.coordinator, organisation_id=None)
    )
    assert back.role is Role.coordinator
    assert back.organisation_id is None


async def test_admins_cannot_lock_themselves_out(db: AsyncSession) -> None:
    admin = await make_user(db, Role.admin)
    with pytest.raises(SelfModification):
        await service.update_user(db, admin.id, admin.id, UserUpdate(role=Role.coordinator))
    with pytest.raises(SelfModification):
        await service.update_user(db, admin.id, admin.id, UserUpdate(is_active=False))
    with pytest.raises(SelfModification):
        await service.deactivate_user(db, admin.id, admin.id)
    renamed = await service.update_user(db, admin.id, admin.id, UserUpdate(full_name="Still Me"))
    assert renamed.full_name == "Still Me"


async def test_change_own_password_needs_the_current_one(db: AsyncSession) -> None:
    user = await make_user(db, Role.case_worker)
    with pytest.raises(IncorrectPassword):
        await service.change_own_password(db, user.id, "wrong", NEW_PASSWORD)
    await service.change_own_password(db, user.id, PASSWORD, NEW_PASSWORD)
    assert user.token_version == 1
    assert await service.authenticate(db, user.email, NEW_PASSWORD)


async def test_refresh_token_dies_with_a_token_version_bump(db: AsyncSession, settings: Settings) -> None:
    user = await make_user(db, Role.coordinator)
    tokens = service.issue_tokens(settings, user)
    renewed = await service.refresh_tokens(db, settings, tokens.refresh_token)
    assert renewed.access_token
    with pytest.raises(InvalidToken):  # an access token is not a refresh token
        await service.refresh_tokens(db, settings, tokens.access_token)
    user.token_version += 1
    await db.flush()
    with pytest.raises(InvalidToken):
        await service.refresh_tokens(db, settings, tokens.refresh_token)
    with pytest.raises(InvalidToken):
        await service.principal_from_access_token(db, settings, tokens.access_token)


async def test_api_key_principal(db: AsyncSession) -> None:
    organisation = await make_organisation(db)
    bound, bound_key = await make_api_key(db, [Scope.signatures_write.value], organisation=organisation)
    free, free_key = await make_api_key(db, [Scope.organisations_read.value])

    principal = await service.principal_from_api_key(db, bound_key)
    assert principal == Principal(
        kind="api_key",
        id=bound.id,
        role=Role.partner,
        organisation_id=organisation.id,
        scopes=frozenset({"signatures:write"}),
    )
    assert (await service.principal_from_api_key(db, free_key)).role is Role.coordinator

    for bad in ("", "loom_", "loom_nope", free_key[:-1] + ("A" if free_key[-1] != "A" else "B"), "Bearer x"):
        with pytest.raises(InvalidToken):
            await service.principal_from_api_key(db, bad)

    await service.revoke_api_key(db, free.id)
    with pytest.raises(InvalidToken):
        await service.principal_from_api_key(db, free_key)


async def test_api_key_last_used_is_written_at_most_once_a_minute(db: AsyncSession) -> None:
    api_key, key = await make_api_key(db, [Scope.organisations_read.value])
    await service.principal_from_api_key(db, key)
    await db.refresh(api_key)
    first = api_key.last_used_at
    assert first is not None
    await service.principal_from_api_key(db, key)
    await db.refresh(api_key)
    assert api_key.last_used_at == first

    api_key.last_used_at = first - timedelta(minutes=2)
    await db.flush()
    await service.principal_from_api_key(db, key)
    await db.refresh(api_key)
    assert api_key.last_used_at is not None
    assert api_key.last_used_at >= first


async def test_expired_api_key_is_refused(db: AsyncSession) -> None:
    _, key = await make_api_key(
        db, [Scope.organisations_read.value], expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    with pytest.raises(InvalidToken):
        await service.principal_from_api_key(db, key)


async def test_create_api_key_stores_only_a_hash(db: AsyncSession) -> None:
    admin = await make_user(db, Role.admin)
    api_key, secret = await service.create_api_key(
        db, ApiKeyCreate(name="CRM", scopes=[Scope.signatures_write, Scope.signatures_write]), admin.id
    )
    stored = await db.scalar(select(ApiKey).where(ApiKey.id == api_key.id))
    assert stored is not None
    assert secret not in (stored.key_hash, stored.prefix)
    assert secret.startswith(f"loom_{stored.prefix}_")
    assert stored.scopes == ["signatures:write"]
    assert stored.created_by_id == admin.id
    revoked = await service.revoke_api_key(db, api_key.id)
    first = revoked.revoked_at
    assert (await service.revoke_api_key(db, api_key.id)).revoked_at == first


def test_every_scope_is_documented() -> None:
    assert set(SCOPE_DESCRIPTIONS) == set(Scope)
    for scope in Scope:
        resource, _, access = scope.value.partition(":")
        assert resource
        assert access in {"read", "write"}


async def test_partners_act_only_for_their_organisation(db: AsyncSession) -> None:
    own, other = await make_organisation(db), await make_organisation(db)
    partner = Principal(kind="user", id=own.id, role=Role.partner, organisation_id=own.id)
    partner.ensure_may_act_for(own.id)
    with pytest.raises(Forbidden):
        partner.ensure_may_act_for(other.id)
    Principal(kind="user", id=own.id, role=Role.coordinator).ensure_may_act_for(other.id)
