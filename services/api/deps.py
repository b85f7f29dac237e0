"""Dependency aliases used by endpoints: settings, the request's session, who is acting, and what the app
opened at start-up. Endpoints get everything through these ``Annotated`` aliases, never from
``request.app.state`` themselves; the hot paths take one bundled dependency each (``SigningDep``,
``PublicCountsDep``). Authorisation (principals, ``require_roles``, ``AdminOnly``, ``StaffOnly``):
docs/architecture.md, "Dependencies and authorisation".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.errors import Forbidden, Unauthenticated
from services.core.schemas import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET
from services.core.signatures.counts import CountMemo
from services.core.signatures.signing import SigningLimits
from services.core.users import service as users_service
from services.core.users.models import Role
from services.core.users.ratelimit import RateLimiter
from services.core.users.scopes import Scope
from services.core.users.security import Principal


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


# Where get_session leaves the request's session for LoomRoute: a key of the ASGI scope, which every
# Request object of the request shares.
SESSION_SCOPE_KEY = "loom.session"


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's one session. ``LoomRoute`` commits it after the endpoint returns: it finds it with
    :func:`request_session`."""
    async with request.app.state.sessionmaker() as session:
        request.scope[SESSION_SCOPE_KEY] = session
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def request_session(request: Request) -> AsyncSession | None:
    """The session :func:`get_session` opened for this request, if the endpoint asked for one."""
    session = request.scope.get(SESSION_SCOPE_KEY)
    return session if isinstance(session, AsyncSession) else None


async def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    """For work outside the request's session: a streamed export, the count's rare database read."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessionmaker


SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]


async def client_address(request: Request) -> str | None:
    """The client's address, for per-address rate limits and the signer's address hash: the TCP peer's,
    unless the peer is one of ``LOOM_TRUSTED_PROXIES`` — then the address that proxy forwarded (the
    right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy), as worked out for the whole
    app by uvicorn's proxy-headers middleware, which ``create_app`` installs for those proxies only."""
    return request.client.host if request.client else None


ClientAddress = Annotated[str | None, Depends(client_address)]


async def get_login_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.login_limiter
    return limiter


LoginLimiterDep = Annotated[RateLimiter, Depends(get_login_limiter)]

# --- the public hot paths: what the app opened at start-up, in one dependency each -------------------------
# One dependency per endpoint, not one per resource: each dependency costs a few microseconds per request,
# which the public count (thousands of requests a second) would feel.

SigningConnect = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]

# What a pooled connection that died (a restarted server, a dropped socket) raises on its next statement.
CONNECTION_LOST = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, ConnectionError)


@dataclass(frozen=True, slots=True)
class Signing:
    """What public signing uses: the settings, the rate limits, a plain asyncpg connection of the signing
    pool (autocommit: ``async with connect() as c``) and the client's address (:func:`client_address`)."""

    settings: Settings
    limits: SigningLimits
    connect: SigningConnect
    address: str | None


async def signing(request: Request) -> Signing:
    state = request.app.state
    client = request.scope.get("client")
    return Signing(
        state.settings,
        state.signing_limits,
        state.signing_connect,
        client[0] if client else None,
    )


@dataclass(frozen=True, slots=True)
class PublicCounts:
    """What the public count uses: this process's memo, the Redis cache (calls to it fail fast), and
    the database for the rare count no cache holds."""

    settings: Settings
    memo: CountMemo
    cache: Redis
    sessionmaker: async_sessionmaker[AsyncSession]


async def public_counts(request: Request) -> PublicCounts:
    state = request.app.state
    return PublicCounts(state.settings, state.count_memo, state.cache, state.sessionmaker)


async def get_cache(request: Request) -> Redis:
    """Redis for cached public figures (counts, statistics); calls to it fail fast (1 s)."""
    cache: Redis = request.app.state.cache
    return cache


async def get_stats_cache(request: Request) -> Redis | None:
    """Redis for petition statistics kept a while (``LOOM_STATS_CACHE_SECONDS``), or None while this
    process's public read cache is on: that keeps them until a write changes them, where Redis would keep
    an older count for the rest of its time."""
    if request.app.state.public_cache.on:
        return None
    cache: Redis = request.app.state.cache
    return cache


SigningDep = Annotated[Signing, Depends(signing)]
PublicCountsDep = Annotated[PublicCounts, Depends(public_counts)]
CacheDep = Annotated[Redis, Depends(get_cache)]
StatsCacheDep = Annotated[Redis | None, Depends(get_stats_cache)]

_bearer = OAuth2PasswordBearer(
    tokenUrl="/v1/auth/token", auto_error=False, description="Staff access token (JWT)."
)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="A machine client's API key.")


async def optional_principal(
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(_bearer)],
    key: Annotated[str | None, Depends(_api_key)],
) -> Principal | None:
    if token:
        return await users_service.principal_from_access_token(session, settings, token)
    if key:
        return await users_service.principal_from_api_key(session, key)
    return None


async def current_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise Unauthenticated("Send a bearer token or an X-API-Key header.")
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(
    *roles: Role, scope: Scope | str | None = None
) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency admitting users with one of ``roles``, and API keys (whose role is partner when bound
    to an organisation, else coordinator) only if the endpoint names a ``scope`` and the key holds it."""
    if not roles:
        raise ValueError("require_roles needs at least one role")
    allowed = frozenset(roles)
    needed = Scope(scope) if scope is not None else None  # a typo fails at import, not in production

    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.kind == "api_key":
            if needed is None:
                raise Forbidden("API keys cannot use this endpoint.")
            if needed.value not in principal.scopes:
                raise Forbidden(f"This API key lacks the scope {needed.value!r}.")
        if principal.role not in allowed:
            raise Forbidden("Your role may not do this.")
        return principal

    return check


# The network's own staff: everyone but partners.
InternalStaffRoles = (Role.admin, Role.coordinator, Role.campaigner, Role.case_worker)

AdminOnly = Annotated[Principal, Depends(require_roles(Role.admin))]
StaffOnly = Annotated[Principal, Depends(require_roles(*InternalStaffRoles))]


@dataclass(frozen=True)
class Pagination:
    limit: int
    offset: int


# Every list's page parameters: bounded, so no offset reaches PostgreSQL as an out-of-range bigint.
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]


async def pagination(limit: Limit = DEFAULT_LIMIT, offset: Offset = 0) -> Pagination:
    return Pagination(limit=limit, offset=offset)


PaginationDep = Annotated[Pagination, Depends(pagination)]
