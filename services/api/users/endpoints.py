"""Endpoints: staff users and API keys, managed by admins."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, status

from services.api.deps import AdminOnly, ClientAddress, Limit, LoginLimiterDep, Offset, SessionDep
from services.api.headers import NoStore
from services.api.problems import problem_responses
from services.api.routing import router as make_router
from services.core.errors import Forbidden, InvalidToken, RateLimited, Unauthenticated
from services.core.schemas import SearchText
from services.core.users import service as users_service
from services.core.users.errors import (
    ApiKeyNotFound,
    CurrentPasswordRequired,
    EmailTaken,
    IncorrectPassword,
    InvalidUserData,
    SelfModification,
    UnknownOrganisation,
    UserNotFound,
)
from services.core.users.models import Role
from services.core.users.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPage,
    ApiKeyRead,
    UserCreate,
    UserPage,
    UserRead,
    UserUpdate,
)
from services.core.users.scopes import scopes_markdown

# Users are personal data; API keys are credentials: no answer is cached.
users_router = make_router(prefix="/v1/users", tags=["users"], dependencies=[NoStore])
api_keys_router = make_router(prefix="/v1/api-keys", tags=["api-keys"], dependencies=[NoStore])

_AUTH_ERRORS = (Unauthenticated, InvalidToken, Forbidden)
# Changes that need the caller's current password (see UserCreate/UserUpdate.current_password).
_REAUTH_ERRORS = (CurrentPasswordRequired, IncorrectPassword, RateLimited)


async def _count_password_attempt(
    body: UserCreate | UserUpdate, admin: AdminOnly, address: str | None, limiter: LoginLimiterDep
) -> None:
    """A sent current password is a guess like any other: limited as on `POST /v1/me/password`."""
    if body.current_password is not None:
        await limiter.hit("password", str(admin.id), address or "unknown")


@users_router.get(
    "",
    summary="List users",
    response_model=UserPage,
    responses=problem_responses(*_AUTH_ERRORS),
)
async def list_users(
    _: AdminOnly,
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
    role: Role | None = None,
    organisation_id: uuid.UUID | None = None,
    is_active: bool | None = None,
    q: Annotated[SearchText | None, Query(description="Part of the email or name.")] = None,
) -> UserPage:
    """Users ordered by email, with the total number matching the filters."""
    users, total = await users_service.list_users(
        session,
        limit=limit,
        offset=offset,
        role=role,
        organisation_id=organisation_id,
        is_active=is_active,
        search=q,
    )
    return UserPage(
        items=[UserRead.model_validate(u) for u in users], total=total, limit=limit, offset=offset
    )


@users_router.post(
    "",
    summary="Create a user",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=problem_responses(
        *_AUTH_ERRORS, *_REAUTH_ERRORS, EmailTaken, InvalidUserData, UnknownOrganisation
    ),
)
async def create_user(
    body: UserCreate, admin: AdminOnly, session: SessionDep, address: ClientAddress, limiter: LoginLimiterDep
) -> UserRead:
    """Emails are unique regardless of case (`email-taken`). A partner must have an `organisation_id`;
    other roles must not (`invalid-user`). Creating an admin needs your `current_password`
    (`current-password-required`, `incorrect-password`)."""
    await _count_password_attempt(body, admin, address, limiter)
    return UserRead.model_validate(await users_service.create_user(session, admin.id, body))


@users_router.get(
    "/{user_id}",
    summary="Get a user",
    response_model=UserRead,
    responses=problem_responses(*_AUTH_ERRORS, UserNotFound),
)
async def get_user(user_id: uuid.UUID, _: AdminOnly, session: SessionDep) -> UserRead:
    return UserRead.model_validate(await users_service.get_user(session, user_id))


@users_router.patch(
    "/{user_id}",
    summary="Update a user (role, organisation, name, email, active, password reset)",
    response_model=UserRead,
    responses=problem_responses(
        *_AUTH_ERRORS,
        *_REAUTH_ERRORS,
        UserNotFound,
        EmailTaken,
        SelfModification,
        InvalidUserData,
        UnknownOrganisation,
    ),
)
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    admin: AdminOnly,
    session: SessionDep,
    address: ClientAddress,
    limiter: LoginLimiterDep,
) -> UserRead:
    """Changes only the fields sent. Changing the role or organisation, resetting the password or
    deactivating signs the user out everywhere. Admins cannot change their own role or deactivate
    themselves (`self-modification`). Your own email or password, another admin's, and making someone
    an admin need your `current_password` (`current-password-required`, `incorrect-password`): a stolen
    access token alone cannot take an admin account over for good. Other users' email and password stay
    an admin's to reset without it."""
    await _count_password_attempt(body, admin, address, limiter)
    return UserRead.model_validate(await users_service.update_user(session, admin.id, user_id, body))


@users_router.post(
    "/{user_id}/deactivate",
    summary="Deactivate a user",
    response_model=UserRead,
    responses=problem_responses(*_AUTH_ERRORS, UserNotFound, SelfModification),
)
async def deactivate_user(user_id: uuid.UUID, admin: AdminOnly, session: SessionDep) -> UserRead:
    """The user can no longer sign in and is signed out everywhere. Users are never deleted; reactivate
    with `PATCH {"is_active": true}`."""
    return UserRead.model_validate(await users_service.deactivate_user(session, admin.id, user_id))


@api_keys_router.get(
    "",
    summary="List API keys (without their secrets)",
    response_model=ApiKeyPage,
    responses=problem_responses(*_AUTH_ERRORS),
)
async def list_api_keys(
    _: AdminOnly,
    session: SessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
    organisation_id: uuid.UUID | None = None,
    include_revoked: bool = True,
) -> ApiKeyPage:
    """Newest first."""
    keys, total = await users_service.list_api_keys(
        session, limit=limit, offset=offset, organisation_id=organisation_id, include_revoked=include_revoked
    )
    return ApiKeyPage(
        items=[ApiKeyRead.model_validate(k) for k in keys], total=total, limit=limit, offset=offset
    )


@api_keys_router.post(
    "",
    summary="Create an API key (its secret is shown once)",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=problem_responses(*_AUTH_ERRORS, UnknownOrganisation),
    description=(
        "The response's `key` is the secret: it is shown only in this response (Loom keeps a hash). "
        "Clients send it as the `X-API-Key` header. A key bound to an `organisation_id` acts as a partner "
        "of that organisation, and only for it; an unbound key acts as a coordinator. Either way it can "
        "use only endpoints that accept one of its scopes:\n\n" + scopes_markdown()
    ),
)
async def create_api_key(body: ApiKeyCreate, admin: AdminOnly, session: SessionDep) -> ApiKeyCreated:
    created_by = admin.id if admin.kind == "user" else None
    api_key, secret = await users_service.create_api_key(session, body, created_by)
    return ApiKeyCreated.model_validate({**ApiKeyRead.model_validate(api_key).model_dump(), "key": secret})


@api_keys_router.get(
    "/{api_key_id}",
    summary="Get an API key (without its secret)",
    response_model=ApiKeyRead,
    responses=problem_responses(*_AUTH_ERRORS, ApiKeyNotFound),
)
async def get_api_key(api_key_id: uuid.UUID, _: AdminOnly, session: SessionDep) -> ApiKeyRead:
    return ApiKeyRead.model_validate(await users_service.get_api_key(session, api_key_id))


@api_keys_router.post(
    "/{api_key_id}/revoke",
    summary="Revoke an API key",
    response_model=ApiKeyRead,
    responses=problem_responses(*_AUTH_ERRORS, ApiKeyNotFound),
)
async def revoke_api_key(api_key_id: uuid.UUID, _: AdminOnly, session: SessionDep) -> ApiKeyRead:
    """The key stops working at once. Revoking a revoked key changes nothing."""
    return ApiKeyRead.model_validate(await users_service.revoke_api_key(session, api_key_id))


# What the app includes.
router = make_router()
router.include_router(users_router)
router.include_router(api_keys_router)
