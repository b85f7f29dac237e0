"""Public signing: the hot path. One statement, one round trip to PostgreSQL, no transaction block.

``INSERT … SELECT … FROM petitions JOIN campaigns LEFT JOIN organisations WHERE <open for signing>``
writes the row only if the petition accepts it; when no row comes back, :func:`explain_refusal` (the
slow path, taken only by bad requests) finds out why and raises the right problem. Everything else —
deduplication, counts, the confirmation email — happens later in the worker's pipeline, which picks up
rows in ``state = 'new'``. Plain SQL, not the ORM: on this path statement building would cost more than
the database does.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.campaigns.errors import PetitionNotFound
from services.core.campaigns.models import Campaign, CampaignStatus, Petition
from services.core.campaigns.service import ensure_open_for_signing
from services.core.config import Settings
from services.core.db.unique import is_uuid
from services.core.network.schemas import is_slug
from services.core.signatures.errors import InvalidSignature
from services.core.signatures.identity import canonical_email, normalised_name, normalised_postal_code
from services.core.signatures.schemas import CheckedEmail, SignatureFields
from services.core.users.ratelimit import RateLimiter

_IP_HASH_PURPOSE = b"signer-ip-address"

_OPEN = (
    "c.status = 'published' AND (p.opens_at IS NULL OR p.opens_at <= now()) "
    "AND (p.closes_at IS NULL OR p.closes_at > now()) "
    "AND (CAST(:email AS text) IS NOT NULL OR NOT p.email_required) "
    "AND (CAST(:partner AS text) IS NULL OR o.id IS NOT NULL)"
)
_INSERT = (
    "INSERT INTO signatures (petition_id, channel, name, email, email_canonical, postal_code, name_key, "
    "postal_key, ip_hash, country, language, opt_in, consent_version, organisation_id, source) "
    "SELECT p.id, 'web', :name, :email, :email_canonical, :postal_code, :name_key, :postal_key, :ip_hash, "
    ":country, :language, :opt_in, p.consent_version, o.id, :source "
    "FROM petitions p JOIN campaigns c ON c.id = p.campaign_id "
    "LEFT JOIN organisations o ON o.slug = CAST(:partner AS text) "
    "WHERE {petition} AND " + _OPEN + " RETURNING id"
)
INSERT_BY_ID = text(_INSERT.format(petition="p.id = CAST(:petition AS uuid)"))
INSERT_BY_SLUG = text(_INSERT.format(petition="p.slug = CAST(:petition AS text)"))


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


@dataclass(frozen=True, slots=True)
class PreparedSignature:
    """A signature's column values, normalised for deduplication."""

    name: str
    email: str | None
    email_canonical: str | None
    postal_code: str | None
    name_key: str | None
    postal_key: str | None
    country: str | None
    language: str | None
    opt_in: bool
    partner: str | None
    source: str | None

    @classmethod
    def of(cls, fields: SignatureFields) -> PreparedSignature:
        email = fields.email or None
        postal_key = normalised_postal_code(fields.postal_code) or None
        return cls(
            name=fields.name,
            email=email,
            email_canonical=(
                email.canonical
                if isinstance(email, CheckedEmail)
                else canonical_email(email)
                if email
                else None
            ),
            postal_code=fields.postal_code or None,
            # Names are compared only for signatures without an email (paper).
            name_key=None if email else normalised_name(fields.name),
            postal_key=postal_key,
            country=fields.country,
            language=fields.language,
            opt_in=fields.opt_in,
            partner=fields.partner,
            source=fields.source or None,
        )


def petition_ref(ref: str) -> tuple[str, bool] | None:
    """``(ref, is_id)`` if ``ref`` can name a petition (a UUID or a slug), else None."""
    if is_uuid(ref):
        return str(uuid.UUID(ref)), True
    if is_slug(ref):
        return ref, False
    return None


async def sign(
    connection: AsyncConnection,
    settings: Settings,
    ref: str,
    fields: SignatureFields | PreparedSignature,
    *,
    ip_address: str | None,
) -> uuid.UUID:
    """Store a signature from the public form; returns its id. ``connection`` should be in autocommit
    mode: the insert is the whole unit of work. Raises the petition's problem when it refuses."""
    parsed = petition_ref(ref)
    if parsed is None:
        raise PetitionNotFound(f"No petition {ref!r}.")
    petition, by_id = parsed
    row = fields if isinstance(fields, PreparedSignature) else PreparedSignature.of(fields)
    result = await connection.execute(
        INSERT_BY_ID if by_id else INSERT_BY_SLUG,
        {
            "petition": petition,
            "name": row.name,
            "email": row.email,
            "email_canonical": row.email_canonical,
            "postal_code": row.postal_code,
            "name_key": row.name_key,
            "postal_key": row.postal_key,
            "ip_hash": ip_hash(settings, ip_address),
            "country": row.country,
            "language": row.language,
            "opt_in": row.opt_in,
            "partner": row.partner,
            "source": row.source,
        },
    )
    signature_id = result.scalar_one_or_none()
    if signature_id is None:
        await explain_refusal(connection, petition, by_id, row, now=None)
        raise PetitionNotFound(f"No petition {ref!r}.")  # pragma: no cover - explain_refusal raises
    return signature_id  # type: ignore[no-any-return]


async def explain_refusal(
    connection: AsyncConnection, petition: str, by_id: bool, row: PreparedSignature, *, now: datetime | None
) -> None:
    """Raise the reason a petition refused ``row``: not found (or not public), closed, email missing,
    unknown partner."""
    found = (
        await connection.execute(
            text(
                "SELECT p.opens_at, p.closes_at, p.email_required, c.status, "  # noqa: S608 - constant SQL fragments; values are bound
                "(SELECT o.id FROM organisations o WHERE o.slug = CAST(:partner AS text)) AS partner_id, "
                "now() AS now FROM petitions p JOIN campaigns c ON c.id = p.campaign_id WHERE "
                + ("p.id = CAST(:petition AS uuid)" if by_id else "p.slug = CAST(:petition AS text)")
            ),
            {"petition": petition, "partner": row.partner},
        )
    ).one_or_none()
    if found is None or CampaignStatus(found.status) not in (CampaignStatus.published, CampaignStatus.closed):
        raise PetitionNotFound(f"No petition {petition!r}.")
    ensure_open_for_signing(
        Petition(opens_at=found.opens_at, closes_at=found.closes_at),
        now or found.now,
        Campaign(status=CampaignStatus(found.status)),
    )
    if row.email is None and found.email_required:
        raise InvalidSignature("email", "This petition needs an email address.", "missing")
    if row.partner is not None and found.partner_id is None:
        raise InvalidSignature(
            "partner", f"No member organisation has the slug {row.partner!r}.", "unknown_partner"
        )
    # The petition changed between the two statements (it just opened, say): let the client try again.
    raise PetitionNotFound(f"No petition {petition!r}.")


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
