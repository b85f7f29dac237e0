"""Endpoints: signing in (OAuth2 password flow), renewing tokens, the signed-in user."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Form
from pydantic import BaseModel, Field

from services.api.deps import ClientAddress, CurrentPrincipal, LoginLimiterDep, SessionDep, SettingsDep
from services.api.headers import NoStore
from services.api.problems import problem_responses
from services.api.routing import router as make_router
from services.core.errors import Forbidden, InvalidCredentials, InvalidToken, RateLimited, Unauthenticated
from services.core.users import service as users_service
from services.core.users.errors import IncorrectPassword
from services.core.users.schemas import PasswordChange, RefreshRequest, TokenResponse, UserRead

# Every answer holds tokens or the user's own data: none is cached (RFC 6749 §5.1 for tokens).
router = make_router(prefix="/v1", tags=["auth"], dependencies=[NoStore])


class TokenRequest(BaseModel):
    """The OAuth2 password grant's form (RFC 6749 §4.3.2); other OAuth2 fields are ignored."""

    username: str = Field(max_length=320, description="The user's email address.")
    password: str = Field(max_length=1024, repr=False, json_schema_extra={"format": "password"})
    grant_type: Literal["password"] | None = None


@router.post(
    "/auth/token",
    summary="Sign in with email and password (OAuth2 password flow)",
    response_model=TokenResponse,
    responses=problem_responses(InvalidCredentials, RateLimited),
)
async def create_token(
    address: ClientAddress,
    session: SessionDep,
    settings: SettingsDep,
    limiter: LoginLimiterDep,
    form: Annotated[TokenRequest, Form()],
) -> TokenResponse:
    """Returns a short-lived access token (send it as `Authorization: Bearer <token>`) and a refresh
    token for `POST /v1/auth/refresh`. Wrong email, wrong password and deactivated account all give the
    same `invalid-credentials` problem. Attempts are limited per email and client address
    (`LOOM_LOGIN_RATE_LIMIT`); over the limit the answer is a `rate-limited` problem with `Retry-After`."""
    await limiter.hit("login", form.username.strip().lower(), address or "unknown")
    user = await users_service.authenticate(session, form.username, form.password)
    return users_service.issue_tokens(settings, user)


@router.post(
    "/auth/refresh",
    summary="Renew the tokens with a refresh token",
    response_model=TokenResponse,
    responses=problem_responses(InvalidToken),
)
async def refresh_token(body: RefreshRequest, session: SessionDep, settings: SettingsDep) -> TokenResponse:
    """Returns a new access token and a new refresh token. A refresh token stops working when it
    expires or when its user is signed out everywhere (password change or reset, role or organisation
    change, deactivation)."""
    tokens = await users_service.refresh_tokens(session, settings, body.refresh_token)
    return tokens


@router.get(
    "/me",
    summary="The signed-in user",
    response_model=UserRead,
    responses=problem_responses(Unauthenticated, InvalidToken, Forbidden),
)
async def get_me(principal: CurrentPrincipal, session: SessionDep) -> UserRead:
    """The user whose access token is sent. API keys have no user: they get a `forbidden` problem."""
    user = await users_service.get_active_user(session, users_service.signed_in_user_id(principal))
    return UserRead.model_validate(user)


@router.post(
    "/me/password",
    summary="Change your own password",
    response_model=TokenResponse,
    responses=problem_responses(IncorrectPassword, Unauthenticated, InvalidToken, Forbidden, RateLimited),
)
async def change_my_password(
    body: PasswordChange,
    address: ClientAddress,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    limiter: LoginLimiterDep,
) -> TokenResponse:
    """Needs the current password. Signs you out everywhere else: every earlier access and refresh
    token stops working, and the response holds new ones for this client."""
    user_id = users_service.signed_in_user_id(principal)
    await limiter.hit("password", str(user_id), address or "unknown")
    user = await users_service.change_own_password(session, user_id, body.current_password, body.new_password)
    return users_service.issue_tokens(settings, user)
