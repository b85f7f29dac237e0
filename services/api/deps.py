"""Dependency aliases used by endpoints: settings, the request's session, who is acting."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.errors import Forbidden, InvalidToken, Unauthenticated
from services.core.users.models import ApiKey, Role, User
from services.core.users.security import (
    Principal,
    api_key_matches,
    api_key_prefix,
    decode_token,
)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's one session; ``LoomRoute`` commits it after the endpoint returns."""
    async with request.app.state.sessionmaker() as session:
        request.state.session = session
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]

_bearer = OAuth2PasswordBearer(
    tokenUrl="/v1/auth/token", auto_error=False, description="Staff access token (JWT)."
)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="A machine client's API key.")
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


async def _principal_from_token(session: AsyncSession, settings: Settings, token: str) -> Principal:
    claims = decode_token(settings, token, "access")
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except ValueError as exc:
        raise InvalidToken() from exc
    user = await session.get(User, user_id)
    if user is None or not user.is_active or user.token_version != claims.get("ver"):
        raise InvalidToken()
    return Principal(kind="user", id=user.id, role=user.role, organisation_id=user.organisation_id)


async def _principal_from_api_key(session: AsyncSession, key: str) -> Principal:
    prefix = api_key_prefix(key)
    if prefix is None:
        raise InvalidToken("malformed API key")
    api_key = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    now = datetime.now(UTC)
    if (
        api_key is None
        or not api_key_matches(key, api_key.key_hash)
        or api_key.revoked_at is not None
        or (api_key.expires_at is not None and api_key.expires_at <= now)
    ):
        raise InvalidToken("invalid, revoked or expired API key")
    if api_key.last_used_at is None or now - api_key.last_used_at > API_KEY_TOUCH_INTERVAL:
        await session.execute(update(ApiKey).where(ApiKey.id == api_key.id).values(last_used_at=now))
    role = Role.partner if api_key.organisation_id else Role.coordinator
    return Principal(
        kind="api_key",
        id=api_key.id,
        role=role,
        organisation_id=api_key.organisation_id,
        scopes=frozenset(api_key.scopes),
    )


async def optional_principal(
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(_bearer)],
    key: Annotated[str | None, Depends(_api_key)],
) -> Principal | None:
    if token:
        return await _principal_from_token(session, settings, token)
    if key:
        return await _principal_from_api_key(session, key)
    return None


async def current_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise Unauthenticated("Send a bearer token or an X-API-Key header.")
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: Role, scope: str | None = None) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency admitting staff with one of ``roles``; API keys also need ``scope``."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise Forbidden("Your role may not do this.")
        if principal.kind == "api_key" and (scope is None or scope not in principal.scopes):
            raise Forbidden("This API key lacks the scope for this.")
        return principal

    return check


StaffRoles = (Role.admin, Role.coordinator, Role.campaigner, Role.case_worker, Role.partner)
AdminOnly = Annotated[Principal, Depends(require_roles(Role.admin))]
