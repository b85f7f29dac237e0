"""Double opt-in confirmation tokens: signed, expiring, one per signature.

A JWT on a key derived from ``LOOM_SECRET_KEY`` for this purpose alone, naming the signature and petition,
with a nonce whose hash the signature keeps: used (409), never issued or replaced (400) and expired tokens
are told apart. docs/signatures.md, "Double opt-in".
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from services.core.config import Settings
from services.core.errors import BadRequest, Conflict, LoomError

ALGORITHM = "HS256"
PURPOSE = "signature-confirmation"
DEFAULT_LIFETIME = timedelta(days=7)


class ConfirmationTokenExpired(LoomError):
    status = 410
    code = "confirmation-token-expired"
    title = "This confirmation link has expired"


class ConfirmationTokenInvalid(BadRequest):
    code = "confirmation-token-invalid"
    title = "This confirmation link is not valid"


class ConfirmationTokenUsed(Conflict):
    code = "confirmation-token-used"
    title = "This signature is already confirmed"


@dataclass(frozen=True)
class ConfirmationClaims:
    signature_id: uuid.UUID
    petition_id: uuid.UUID
    nonce: str
    expires_at: datetime

    @property
    def nonce_hash(self) -> str:
        return nonce_hash(self.nonce)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    nonce_hash: str  # store on the signature; compare when the token comes back
    expires_at: datetime


@dataclass(frozen=True)
class ConfirmationRequest:
    """A token issued for a signature, for its confirmation mail."""

    signature_id: uuid.UUID
    petition_id: uuid.UUID
    token: str
    nonce_hash: str  # names this token in the confirmation mail's dedup key


def _key(settings: Settings) -> bytes:
    return settings.derived_key(PURPOSE)


def nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def issue(
    settings: Settings,
    *,
    signature_id: uuid.UUID,
    petition_id: uuid.UUID,
    now: datetime,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> IssuedToken:
    nonce = secrets.token_urlsafe(16)
    expires_at = now + lifetime
    token = jwt.encode(
        {
            "typ": PURPOSE,
            "sub": str(signature_id),
            "pet": str(petition_id),
            "non": nonce,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
        },
        _key(settings),
        algorithm=ALGORITHM,
    )
    return IssuedToken(token=token, nonce_hash=nonce_hash(nonce), expires_at=expires_at)


def read(settings: Settings, token: str, *, now: datetime) -> ConfirmationClaims:
    """The token's claims, if it is genuine and unexpired; raises a distinct problem otherwise.

    Whether it was already used is for the caller to decide against the signature row (see
    :func:`ensure_unused`)."""
    try:
        claims = jwt.decode(
            token,
            _key(settings),
            algorithms=[ALGORITHM],
            # Times are checked below against the caller's clock, not the system clock.
            options={"require": ["exp", "iat", "sub"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise ConfirmationTokenInvalid() from exc
    if claims.get("typ") != PURPOSE:
        raise ConfirmationTokenInvalid()
    try:
        signature_id = uuid.UUID(str(claims["sub"]))
        petition_id = uuid.UUID(str(claims["pet"]))
        nonce = str(claims["non"])
        expires_at = datetime.fromtimestamp(int(claims["exp"]), tz=now.tzinfo)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfirmationTokenInvalid() from exc
    # Checked here, against the caller's clock, rather than by PyJWT against the system clock.
    if now >= expires_at:
        raise ConfirmationTokenExpired()
    return ConfirmationClaims(signature_id, petition_id, nonce, expires_at)


def ensure_unused(
    claims: ConfirmationClaims, *, stored_nonce_hash: str | None, confirmed_at: datetime | None
) -> None:
    """Raise unless this token is the signature's current, unconfirmed one."""
    if confirmed_at is not None:
        raise ConfirmationTokenUsed()
    if stored_nonce_hash is None or not hmac.compare_digest(stored_nonce_hash, claims.nonce_hash):
        raise ConfirmationTokenInvalid("This link was replaced by a newer one.")
