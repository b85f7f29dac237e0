"""Builders for test data, written straight through the models (no HTTP) to keep tests short."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.network.models import Organisation, OrganisationKind
from services.core.users.models import ApiKey, Role, User
from services.core.users.security import create_access_token, generate_api_key, hash_password

PASSWORD = "correct horse battery staple"
_FAST_HASH = hash_password(PASSWORD)


async def make_organisation(session: AsyncSession, **fields: object) -> Organisation:
    suffix = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "name": f"Garment Workers Union {suffix}",
        "slug": f"gwu-{suffix}",
        "kind": OrganisationKind.trade_union,
        "country": "BD",
        "city": "Dhaka",
        "joined_on": date(2020, 1, 1),
    }
    values.update(fields)
    organisation = Organisation(**values)
    session.add(organisation)
    await session.flush()
    return organisation


async def make_user(
    session: AsyncSession,
    role: Role = Role.admin,
    *,
    organisation: Organisation | None = None,
    email: str | None = None,
) -> User:
    if role is Role.partner and organisation is None:
        organisation = await make_organisation(session)
    user = User(
        email=email or f"{role.value}-{uuid.uuid4().hex[:8]}@example.org",
        full_name=f"Test {role.value}",
        password_hash=_FAST_HASH,
        role=role,
        organisation_id=organisation.id if organisation else None,
    )
    session.add(user)
    await session.flush()
    return user


def auth_headers(settings: Settings, user: User) -> dict[str, str]:
    token, _ = create_access_token(settings, user)
    return {"Authorization": f"Bearer {token}"}


async def make_api_key(
    session: AsyncSession,
    scopes: list[str] | None = None,
    *,
    organisation: Organisation | None = None,
    expires_at: datetime | None = None,
    revoked_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """An API key and its secret (send it as ``X-API-Key``)."""
    new = generate_api_key()
    api_key = ApiKey(
        name=f"test key {new.prefix}",
        prefix=new.prefix,
        key_hash=new.key_hash,
        scopes=scopes or [],
        organisation_id=organisation.id if organisation else None,
        expires_at=expires_at,
        revoked_at=revoked_at,
    )
    session.add(api_key)
    await session.flush()
    return api_key, new.key


def api_key_headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}
