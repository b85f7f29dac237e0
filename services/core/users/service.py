"""Staff users, their tokens and API keys. Functions take the session first and never commit.

Signing out everywhere: every token carries the user's ``token_version``; bumping it (password change or
reset, role or organisation change, deactivation) makes every access and refresh token issued before
invalid.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.errors import Forbidden, InvalidCredentials, InvalidToken
from services.core.users import repository
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
from services.core.users.models import ApiKey, Role, User
from services.core.users.schemas import (
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    ApiKeyCreate,
    Email,
    TokenResponse,
    UserCreate,
    UserUpdate,
)
from services.core.users.security import (
    Principal,
    api_key_matches,
    api_key_prefix,
    create_access_token,
    create_refresh_token,
    decode_token,
    generate_api_key,
    hash_password,
    password_needs_rehash,
    verify_password,
)

log = logging.getLogger(__name__)

# Recording an API key's use is a write; once a minute per key is plenty.
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)

# An API key not bound to an organisation acts with a coordinator's role, narrowed by its scopes.
API_KEY_ROLE = Role.coordinator


def _now() -> datetime:
    return datetime.now(UTC)


# Argon2 is deliberately slow (tens of milliseconds of CPU): keep it off the event loop.
async def _hash(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def _verify(password_hash: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify_password, password_hash, password)


# --- tokens -------------------------------------------------------------------------------------------


def issue_tokens(settings: Settings, user: User) -> TokenResponse:
    access, access_expires = create_access_token(settings, user)
    refresh, refresh_expires = create_refresh_token(settings, user)
    now = _now()
    return TokenResponse(
        access_token=access,
        expires_in=max(0, int((access_expires - now).total_seconds())),
        refresh_token=refresh,
        refresh_expires_in=max(0, int((refresh_expires - now).total_seconds())),
    )


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    """The active user with this email and password, or ``InvalidCredentials`` (the same error whether
    the email is unknown, the password wrong or the user inactive, and in about the same time)."""
    user = await repository.get_user_by_email(session, email)
    valid = await _verify(user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        raise InvalidCredentials("Incorrect email or password.")
    if password_needs_rehash(user.password_hash):
        user.password_hash = await _hash(password)
    user.last_login_at = _now()
    await session.flush()
    return user


async def refresh_tokens(session: AsyncSession, settings: Settings, refresh_token: str) -> TokenResponse:
    """A new access and refresh token for a valid refresh token whose user is still active and has not
    been signed out everywhere since."""
    claims = decode_token(settings, refresh_token, "refresh")
    user = await _user_from_claims(session, claims)
    return issue_tokens(settings, user)


async def _user_from_claims(session: AsyncSession, claims: dict[str, object]) -> User:
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except (KeyError, ValueError) as exc:
        raise InvalidToken() from exc
    user = await repository.get_user(session, user_id)
    if user is None or not user.is_active or user.token_version != claims.get("ver"):
        raise InvalidToken()
    return user


async def principal_from_access_token(session: AsyncSession, settings: Settings, token: str) -> Principal:
    user = await _user_from_claims(session, decode_token(settings, token, "access"))
    return Principal(kind="user", id=user.id, role=user.role, organisation_id=user.organisation_id)


async def principal_from_api_key(session: AsyncSession, key: str) -> Principal:
    """The principal of a valid API key, recording its use (at most once a minute)."""
    prefix = api_key_prefix(key)
    api_key = await repository.get_api_key_by_prefix(session, prefix) if prefix else None
    now = _now()
    if (
        api_key is None
        or not api_key_matches(key, api_key.key_hash)
        or api_key.revoked_at is not None
        or (api_key.expires_at is not None and api_key.expires_at <= now)
    ):
        raise InvalidToken("The API key is invalid, revoked or expired.")
    if api_key.last_used_at is None or now - api_key.last_used_at >= API_KEY_TOUCH_INTERVAL:
        await repository.touch_api_key(session, api_key.id, now)
    return Principal(
        kind="api_key",
        id=api_key.id,
        role=Role.partner if api_key.organisation_id else API_KEY_ROLE,
        organisation_id=api_key.organisation_id,
        scopes=frozenset(api_key.scopes),
    )


def signed_in_user_id(principal: Principal) -> uuid.UUID:
    """The user behind ``principal``; API keys have no user (for endpoints about "me")."""
    if principal.kind != "user":
        raise Forbidden("This needs a user's access token, not an API key.")
    return principal.id


# --- own account --------------------------------------------------------------------------------------


async def get_active_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await repository.get_user(session, user_id)
    if user is None or not user.is_active:
        raise InvalidToken()
    return user


async def change_own_password(
    session: AsyncSession, user_id: uuid.UUID, current_password: str, new_password: str
) -> User:
    """Changes the password and signs the user out everywhere (the caller issues them new tokens)."""
    user = await get_active_user(session, user_id)
    if not await _verify(user.password_hash, current_password):
        raise IncorrectPassword()
    user.password_hash = await _hash(new_password)
    user.token_version += 1
    await session.flush()
    return user


# --- users (admins) -----------------------------------------------------------------------------------


def _field_errors(field: str, message: str, code: str) -> list[dict[str, object]]:
    """The ``errors`` member of a 422 problem, shaped like request validation errors."""
    return [{"loc": ["body", field], "msg": message, "type": code}]


def _check_role_and_organisation(role: Role, organisation_id: uuid.UUID | None) -> None:
    message = None
    if role is Role.partner and organisation_id is None:
        message = "A partner user must belong to an organisation: set organisation_id."
    elif role is not Role.partner and organisation_id is not None:
        message = f"Only partner users belong to an organisation; a {role.value} needs organisation_id null."
    if message:
        raise InvalidUserData(message, errors=_field_errors("organisation_id", message, InvalidUserData.code))


async def _check_organisation(session: AsyncSession, organisation_id: uuid.UUID | None) -> None:
    if organisation_id is not None and not await repository.organisation_exists(session, organisation_id):
        message = f"No organisation has id {organisation_id}."
        raise UnknownOrganisation(
            message, errors=_field_errors("organisation_id", message, UnknownOrganisation.code)
        )


async def _flush_user(session: AsyncSession) -> None:
    """Flush, turning a lost race on the unique email index into a 409."""
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        if "uq_users_email_lower" in str(exc.orig):
            raise EmailTaken() from exc
        raise


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await repository.get_user(session, user_id)
    if user is None:
        raise UserNotFound()
    return user


async def list_users(
    session: AsyncSession,
    *,
    limit: int,
    offset: int,
    role: Role | None = None,
    organisation_id: uuid.UUID | None = None,
    is_active: bool | None = None,
    search: str | None = None,
) -> tuple[list[User], int]:
    return await repository.list_users(
        session,
        limit=limit,
        offset=offset,
        role=role,
        organisation_id=organisation_id,
        is_active=is_active,
        search=search,
    )


async def _reauthenticate(session: AsyncSession, actor_id: uuid.UUID, current_password: str | None) -> None:
    """The acting user's own password, for changes that would make an admin's power someone's for good
    (their own email or password, another admin's, a new admin): a stolen access token is not enough."""
    if current_password is None:
        message = "Send your current password (current_password) to make this change."
        raise CurrentPasswordRequired(
            message, errors=_field_errors("current_password", message, CurrentPasswordRequired.code)
        )
    actor = await get_active_user(session, actor_id)
    if not await _verify(actor.password_hash, current_password):
        raise IncorrectPassword()


async def create_user(session: AsyncSession, actor_id: uuid.UUID, data: UserCreate) -> User:
    """Creating an admin needs the acting admin's current password."""
    if data.role is Role.admin:
        await _reauthenticate(session, actor_id, data.current_password)
    _check_role_and_organisation(data.role, data.organisation_id)
    await _check_organisation(session, data.organisation_id)
    if await repository.email_in_use(session, data.email):
        raise EmailTaken()
    user = User(
        email=data.email,
        full_name=data.full_name,
        role=data.role,
        organisation_id=data.organisation_id,
        password_hash=await _hash(data.password),
        is_active=True,
        token_version=0,
    )
    session.add(user)
    await _flush_user(session)
    await session.refresh(user)
    log.info("user created", extra={"user_id": str(user.id), "role": user.role.value})
    return user


async def update_user(
    session: AsyncSession, actor_id: uuid.UUID, user_id: uuid.UUID, data: UserUpdate
) -> User:
    user = await get_user(session, user_id)
    sent = data.model_fields_set
    role = data.role if data.role is not None else user.role
    organisation_id = data.organisation_id if "organisation_id" in sent else user.organisation_id
    _check_role_and_organisation(role, organisation_id)
    if organisation_id != user.organisation_id:
        await _check_organisation(session, organisation_id)
    if user.id == actor_id and (role is not user.role or data.is_active is False):
        raise SelfModification("You cannot change your own role or deactivate yourself; ask another admin.")
    new_email = data.email is not None and data.email.casefold() != user.email.casefold()
    credentials = new_email or data.password is not None
    admin_account = user.id == actor_id or user.role is Role.admin
    if (credentials and admin_account) or (role is Role.admin and user.role is not Role.admin):
        await _reauthenticate(session, actor_id, data.current_password)
    if data.email is not None:
        if await repository.email_in_use(session, data.email, except_user=user.id):
            raise EmailTaken()
        user.email = data.email

    sign_out = False
    if data.full_name is not None:
        user.full_name = data.full_name
    if role is not user.role or organisation_id != user.organisation_id:
        user.role, user.organisation_id = role, organisation_id
        sign_out = True
    if data.is_active is not None and data.is_active != user.is_active:
        user.is_active = data.is_active
        sign_out = sign_out or not data.is_active
    if data.password is not None:
        user.password_hash = await _hash(data.password)
        sign_out = True
    if sign_out:
        user.token_version += 1
    await _flush_user(session)
    await session.refresh(user)
    log.info("user updated", extra={"user_id": str(user.id), "fields": sorted(sent), "signed_out": sign_out})
    return user


async def deactivate_user(session: AsyncSession, actor_id: uuid.UUID, user_id: uuid.UUID) -> User:
    """Deactivates the user and signs them out everywhere. Deactivating twice is harmless."""
    user = await get_user(session, user_id)
    if user.id == actor_id:
        raise SelfModification("You cannot deactivate yourself; ask another admin.")
    if user.is_active:
        user.is_active = False
        user.token_version += 1
        await session.flush()
        await session.refresh(user)
        log.info("user deactivated", extra={"user_id": str(user.id)})
    return user


_email_adapter: TypeAdapter[str] = TypeAdapter(Email)


async def create_admin(session: AsyncSession, email: str, password: str) -> User:
    """Makes sure an active admin with this email exists and has this password (idempotent): creates
    the user, or turns the existing one into an active admin (signing them out everywhere)."""
    try:
        email = _email_adapter.validate_python(email.strip())
    except ValidationError as exc:
        raise InvalidUserData(f"Not a valid email address: {exc.errors()[0]['msg']}") from exc
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise InvalidUserData(
            f"The password must have {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters."
        )
    user = await repository.get_user_by_email(session, email)
    if user is None:
        user = User(
            email=email, full_name="", role=Role.admin, organisation_id=None, is_active=True, token_version=0
        )
        session.add(user)
    else:
        user.role, user.organisation_id, user.is_active = Role.admin, None, True
        user.token_version += 1
    user.password_hash = await _hash(password)
    await _flush_user(session)
    await session.refresh(user)
    return user


# --- API keys (admins) --------------------------------------------------------------------------------


async def create_api_key(
    session: AsyncSession, data: ApiKeyCreate, created_by_id: uuid.UUID | None
) -> tuple[ApiKey, str]:
    """A new key and its secret, which is not stored (only its hash is)."""
    await _check_organisation(session, data.organisation_id)
    new = generate_api_key()
    api_key = ApiKey(
        name=data.name,
        prefix=new.prefix,
        key_hash=new.key_hash,
        scopes=[scope.value for scope in data.scopes],
        organisation_id=data.organisation_id,
        created_by_id=created_by_id,
        expires_at=data.expires_at,
    )
    session.add(api_key)
    await session.flush()
    await session.refresh(api_key)
    log.info("api key created", extra={"api_key_id": str(api_key.id), "scopes": api_key.scopes})
    return api_key, new.key


async def get_api_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey:
    api_key = await repository.get_api_key(session, key_id)
    if api_key is None:
        raise ApiKeyNotFound()
    return api_key


async def list_api_keys(
    session: AsyncSession,
    *,
    limit: int,
    offset: int,
    organisation_id: uuid.UUID | None = None,
    include_revoked: bool = True,
) -> tuple[list[ApiKey], int]:
    return await repository.list_api_keys(
        session, limit=limit, offset=offset, organisation_id=organisation_id, include_revoked=include_revoked
    )


async def revoke_api_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey:
    """Revokes the key at once; revoking again keeps the first revocation time."""
    api_key = await get_api_key(session, key_id)
    if api_key.revoked_at is None:
        api_key.revoked_at = _now()
        await session.flush()
        await session.refresh(api_key)
        log.info("api key revoked", extra={"api_key_id": str(api_key.id)})
    return api_key
