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
from functools import lru_cache
from typing import NoReturn

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.core.campaigns.errors import PetitionNotFound
from services.core.campaigns.policy import PUBLIC_STATUSES
from services.core.campaigns.window import ensure_open_for_signing
from services.core.config import Settings
from services.core.refs import Ref
from services.core.signatures import store
from services.core.signatures.errors import InvalidSignature
from services.core.signatures.store import PreparedSignature
from services.core.users.ratelimit import FixedWindowLimits

_IP_HASH_PURPOSE = b"signer-ip-address"


@lru_cache(maxsize=4)
def _ip_hasher(secret: str) -> hmac.HMAC:
    """The keyed HMAC, set up once per secret; each hash starts from a copy (cheaper than a new HMAC)."""
    key = hmac.new(secret.encode(), _IP_HASH_PURPOSE, hashlib.sha256).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


def ip_hash(settings: Settings, address: str | None) -> str | None:
    """A keyed hash of the client's address: the same address gives the same hash (for rate limits and
    abuse analysis), but the address cannot be recovered without the application secret."""
    if not address:
        return None
    hasher = _ip_hasher(settings.secret_key.get_secret_value()).copy()
    hasher.update(address.encode())
    return hasher.hexdigest()[:32]


async def sign(
    connection: asyncpg.Connection, petition: Ref, row: PreparedSignature, *, ip_address_hash: str | None
) -> uuid.UUID:
    """Store a signature from the public form; returns its id. ``connection`` (plain asyncpg, autocommit)
    runs the one insert, the whole unit of work; when the petition refuses, one more statement finds out
    why and the petition's problem is raised."""
    signature_id = await store.insert_web(connection, petition, row, ip_address_hash)
    if signature_id is None:
        await explain_refusal(connection, petition, row)
    return signature_id


async def explain_refusal(
    connection: asyncpg.Connection | AsyncSession | AsyncConnection, petition: Ref, row: PreparedSignature
) -> NoReturn:
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


class SigningLimits:
    """The public signing rate limits — per client address (hashed), per email domain, per petition —
    checked and counted together in one Redis round trip."""

    def __init__(self, limits: FixedWindowLimits) -> None:
        self._limits = limits

    @classmethod
    def from_settings(cls, settings: Settings, redis_url: str) -> SigningLimits:
        return cls(
            FixedWindowLimits.from_url(
                redis_url,
                {
                    "sign-ip": settings.signing_rate_limit_ip,
                    "sign-domain": settings.signing_rate_limit_email_domain,
                    "sign-petition": settings.signing_rate_limit_petition,
                },
            )
        )

    async def hit(self, *, address_hash: str | None, email_domain: str | None, petition: str) -> None:
        """Count one signature; ``RateLimited`` at the first limit it would pass (address, then email
        domain, then petition)."""
        await self._limits.hit(
            {"sign-ip": address_hash, "sign-domain": email_domain, "sign-petition": petition}
        )

    async def close(self) -> None:
        await self._limits.close()
