"""Passwords (argon2), access/refresh tokens (JWT) and API keys, and the ``Principal`` they resolve to."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from services.core.config import Settings
from services.core.errors import Forbidden, InvalidToken
from services.core.users.models import Role, User

_hasher = PasswordHasher()
JWT_ALGORITHM = "HS256"
API_KEY_PREFIX = "loom_"

# Verifying against this keeps login time the same whether or not the email exists.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


@dataclass(frozen=True)
class Principal:
    """Who is acting: a staff user (by token) or a machine client (by API key)."""

    kind: Literal["user", "api_key"]
    id: uuid.UUID
    role: Role
    organisation_id: uuid.UUID | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    def acts_for(self, organisation_id: uuid.UUID) -> bool:
        return self.organisation_id == organisation_id

    @property
    def is_partner(self) -> bool:
        return self.role is Role.partner

    def ensure_may_act_for(self, organisation_id: uuid.UUID) -> None:
        """Partners (users and organisation-bound API keys) act only for their own organisation; the
        network's staff act for any."""
        if self.is_partner and not self.acts_for(organisation_id):
            raise Forbidden("You can act only for your own organisation.")


TokenType = Literal["access", "refresh"]


def _encode(settings: Settings, claims: dict[str, Any], lifetime: timedelta) -> tuple[str, datetime]:
    now = datetime.now(UTC)
    expires = now + lifetime
    token = jwt.encode(
        {**claims, "iat": now, "exp": expires, "jti": uuid.uuid4().hex},
        settings.secret_key.get_secret_value(),
        algorithm=JWT_ALGORITHM,
    )
    return token, expires


def create_access_token(settings: Settings, user: User) -> tuple[str, datetime]:
    claims = {
        "sub": str(user.id),
        "typ": "access",
        "role": user.role.value,
        "org": str(user.organisation_id) if user.organisation_id else None,
        "ver": user.token_version,
    }
    return _encode(settings, claims, timedelta(minutes=settings.access_token_minutes))


def create_refresh_token(settings: Settings, user: User) -> tuple[str, datetime]:
    claims = {"sub": str(user.id), "typ": "refresh", "ver": user.token_version}
    return _encode(settings, claims, timedelta(days=settings.refresh_token_days))


def decode_token(settings: Settings, token: str, expected: TokenType) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.secret_key.get_secret_value(),
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "iat", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken() from exc
    if claims.get("typ") != expected:
        raise InvalidToken(f"expected an {expected} token")
    return claims


@dataclass(frozen=True)
class NewApiKey:
    key: str  # shown once
    prefix: str
    key_hash: str


def generate_api_key() -> NewApiKey:
    prefix = secrets.token_hex(6)
    key = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return NewApiKey(key=key, prefix=prefix, key_hash=hash_api_key(key))


def hash_api_key(key: str) -> str:
    # Keys are 256-bit random values: a fast hash is enough (unlike passwords).
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_prefix(key: str) -> str | None:
    if not key.startswith(API_KEY_PREFIX):
        return None
    prefix, sep, _ = key[len(API_KEY_PREFIX) :].partition("_")
    return prefix if sep and prefix else None


def api_key_matches(key: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(key), key_hash)
