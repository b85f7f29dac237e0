"""Helpers for the network API tests: callers of each role, API keys."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.network.models import Organisation
from services.core.users.models import ApiKey, Role
from services.core.users.security import generate_api_key
from tests.api.network.helpers import HeadersFor, KeyFor
from tests.factories import auth_headers, make_user


@pytest.fixture
def headers_for(db: AsyncSession, settings: Settings) -> HeadersFor:
    """``await headers_for(Role.coordinator)``: bearer headers of a new user with that role."""

    async def make(role: Role, organisation: Organisation | None = None) -> dict[str, str]:
        user = await make_user(db, role, organisation=organisation)
        return auth_headers(settings, user)

    return make


@pytest.fixture
def api_key_for(db: AsyncSession) -> KeyFor:
    """``await api_key_for(scopes, organisation)``: ``X-API-Key`` headers of a new key."""

    async def make(scopes: list[str], organisation: Organisation | None = None) -> dict[str, str]:
        new = generate_api_key()
        db.add(
            ApiKey(
                name="test key",
                prefix=new.prefix,
                key_hash=new.key_hash,
                scopes=scopes,
                organisation_id=organisation.id if organisation else None,
            )
        )
        await db.flush()
        return {"X-API-Key": new.key}

    return make
