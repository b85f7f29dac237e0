"""Public signing: the hot path. One statement, one round trip to PostgreSQL, no transaction block.

The store's web insert (:data:`services.core.signatures.store.WEB_INSERT_BY_ID`) writes the row only if
the petition accepts it; when no row comes back, :func:`explain_refusal` (the slow path, taken only by bad
requests) finds out why and raises the right problem. Everything else — deduplication, counts, the
confirmation email — happens later in the worker's pipeline, which picks up rows in ``state = 'new'``.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import NoReturn

from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.campaigns.errors import PetitionNotFound
from services.core.campaigns.policy import PUBLIC_STATUSES
from services.core.campaigns.window import ensure_open_for_signing
from services.core.config import Settings
from services.core.refs import Ref
from services.core.signatures import store
from services.core.signatures.errors import InvalidSignature
from services.core.signatures.schemas import SignatureFields
from services.core.signatures.store import PreparedSignature
from services.core.users.ratelimit import RateLimiter

_IP_HASH_PURPOSE = b"signer-ip-address"


@lru_cache(maxsize=4)
def _ip_hash_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _IP_HASH_PURPOSE, hashlib.sha256).digest()


def ip_hash(settings: Settings, address: str | None) -> str | None:
    """A keyed hash of the client's address: the same address gives the same hash (for rate limits and
    abuse analysis), but the address cannot be recovered without the application secret."""
    if not address:
        return None
    key = _ip_hash_key(settings.secret_key.get_secret_value())
    return hmac.new(key, address.encode(), hashlib.sha256).hexdigest()[:32]


async def sign(
    connection: AsyncConnection,
    settings: Settings,
    petition: Ref,
    fields: SignatureFields | PreparedSignature,
    *,
    ip_address: str | None,
) -> uuid.UUID:
    """Store a signature from the public form; returns its id. ``connection`` should be in autocommit
    mode: the insert is the whole unit of work. Raises the petition's problem when it refuses."""
    row = fields if isinstance(fields, PreparedSignature) else PreparedSignature.of(fields)
    signature_id = await store.insert_web(connection, petition, row, ip_hash(settings, ip_address))
    if signature_id is None:
        await explain_refusal(connection, petition, row)
    return signature_id


async def explain_refusal(connection: AsyncConnection, petition: Ref, row: PreparedSignature) -> NoReturn:
    """Raise the reason a petition refused ``row``: not found (or not public), closed, email missing,
    unknown partner."""
    found = await store.signing_petition(connection, petition, row.partner)
    if found is None or found.status not in PUBLIC_STATUSES:
        raise PetitionNotFound(f"No petition {petition.key!r}.")
    ensure_open_for_signing(found.status, found.opens_at, found.closes_at, found.now)
    if row.email is None and found.email_required:
        raise InvalidSignature("email", "This petition needs an email address.", "missing")
    if row.partner is not None and found.partner_id is None:
        raise InvalidSignature(
            "partner", f"No member organisation has the slug {row.partner!r}.", "unknown_partner"
        )
    # The petition changed between the two statements (it just opened, say): let the client try again.
    raise PetitionNotFound(f"No petition {petition.key!r}.")


@dataclass(frozen=True)
class SigningLimits:
    """The public signing rate limits: per client address (hashed), per email domain, per petition."""

    ip: RateLimiter
    email_domain: RateLimiter
    petition: RateLimiter

    @classmethod
    def from_settings(cls, settings: Settings, redis_url: str) -> SigningLimits:
        def limiter(rate: str, namespace: str) -> RateLimiter:
            return RateLimiter.from_url(redis_url, rate, namespace=namespace, moving_window=False)

        return cls(
            ip=limiter(settings.signing_rate_limit_ip, "sign-ip"),
            email_domain=limiter(settings.signing_rate_limit_email_domain, "sign-domain"),
            petition=limiter(settings.signing_rate_limit_petition, "sign-petition"),
        )

    async def close(self) -> None:
        for limiter in (self.ip, self.email_domain, self.petition):
            await limiter.close()
