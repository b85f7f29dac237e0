"""Builders for test data, written straight through the models (no HTTP) to keep tests short."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.core.campaigns.models import Campaign, CampaignStatus, Petition, PetitionConsentVersion
from services.core.config import Settings
from services.core.network.models import Organisation, OrganisationKind
from services.core.signatures.models import Channel, Signature
from services.core.users.models import ApiKey, Role, User
from services.core.users.security import create_access_token, generate_api_key, hash_password

PASSWORD = "correct horse battery staple"
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def spelled(n: int) -> str:
    """``n`` in letters (0 → "A", 26 → "Ba"): a distinct name part per number, since names hold no
    digits."""
    word = _LETTERS[n % 26]
    while n >= 26:
        n //= 26
        word = _LETTERS[n % 26] + word
    return word.capitalize()


_FAST_HASH = hash_password(PASSWORD)


async def make_organisation(session: AsyncSession, **fields: object) -> Organisation:
    suffix = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "name": f"Garment Workers Union {suffix}",
        "slug": f"gwu-{suffix}",
        "kind": OrganisationKind.trade_union,
        "country": "BD",
        "city": "Dhaka",
        "joined_on": date(2020, 1, 1),
    }
    values.update(fields)
    organisation = Organisation(**values)
    session.add(organisation)
    await session.flush()
    return organisation


async def make_user(
    session: AsyncSession,
    role: Role = Role.admin,
    *,
    organisation: Organisation | None = None,
    email: str | None = None,
) -> User:
    if role is Role.partner and organisation is None:
        organisation = await make_organisation(session)
    user = User(
        email=email or f"{role.value}-{uuid.uuid4().hex[:8]}@example.org",
        full_name=f"Test {role.value}",
        password_hash=_FAST_HASH,
        role=role,
        organisation_id=organisation.id if organisation else None,
    )
    session.add(user)
    await session.flush()
    return user


def auth_headers(settings: Settings, user: User) -> dict[str, str]:
    token, _ = create_access_token(settings, user)
    return {"Authorization": f"Bearer {token}"}


async def make_api_key(
    session: AsyncSession,
    scopes: list[str] | None = None,
    *,
    organisation: Organisation | None = None,
    expires_at: datetime | None = None,
    revoked_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """An API key and its secret (send it as ``X-API-Key``)."""
    new = generate_api_key()
    api_key = ApiKey(
        name=f"test key {new.prefix}",
        prefix=new.prefix,
        key_hash=new.key_hash,
        scopes=scopes or [],
        organisation_id=organisation.id if organisation else None,
        expires_at=expires_at,
        revoked_at=revoked_at,
    )
    session.add(api_key)
    await session.flush()
    return api_key, new.key


def api_key_headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def make_petition(
    session: AsyncSession,
    *,
    campaign_status: CampaignStatus = CampaignStatus.published,
    **fields: object,
) -> Petition:
    """A petition (of a new campaign, published unless told otherwise), open for signing."""
    suffix = uuid.uuid4().hex[:8]
    campaign = Campaign(
        slug=f"campaign-{suffix}",
        default_language="en",
        translations={"en": {"title": f"Campaign {suffix}"}},
        status=campaign_status,
    )
    session.add(campaign)
    await session.flush()
    values: dict[str, object] = {
        "campaign_id": campaign.id,
        "slug": f"petition-{suffix}",
        "default_language": "en",
        "translations": {"en": {"title": f"Petition {suffix}"}},
        "goal": 1000,
        "consent_text": "I agree.",
    }
    values.update(fields)
    petition = Petition(id=uuid.uuid4(), **values)
    session.add(petition)
    await session.flush()
    session.add(PetitionConsentVersion(petition_id=petition.id, version=1, text="I agree."))
    await session.flush()
    return petition


async def make_signature(session: AsyncSession, petition: Petition, **fields: object) -> Signature:
    """A signature written straight to the table (state ``new``, as the signing endpoint leaves it)."""
    from services.core.signatures.identity import canonical_email, normalised_name, normalised_postal_code

    values: dict[str, object] = {
        "petition_id": petition.id,
        "channel": Channel.web,
        "name": "Jane Doe",
        "email": f"jane.{uuid.uuid4().hex[:8]}@example.org",
        "country": "BD",
        "consent_version": 1,
    }
    values.update(fields)
    email = values.get("email")
    values.setdefault("email_canonical", canonical_email(str(email)) if email else None)
    if not email:
        values.setdefault("name_key", normalised_name(str(values["name"])))
    values.setdefault("postal_key", normalised_postal_code(str(values.get("postal_code") or "")) or None)
    signature = Signature(**values)
    session.add(signature)
    await session.flush()
    return signature


async def drop_petition(session: AsyncSession, petition_id: uuid.UUID) -> None:
    """Delete a petition made by a test that committed, with its signatures, their mail and webhook events,
    and its campaign."""
    from sqlalchemy import text

    params = {"p": petition_id}
    await session.execute(
        text(
            "DELETE FROM webhook_events WHERE key IN "
            "(SELECT 'signature.confirmed:' || id FROM signatures WHERE petition_id = :p)"
        ),
        params,
    )
    await session.execute(
        text(
            "DELETE FROM email_messages "
            "WHERE reference_id IN (SELECT id FROM signatures WHERE petition_id = :p)"
        ),
        params,
    )
    for table in ("signature_reviews", "petition_signers", "petition_count_refresh", "petition_milestones"):
        await session.execute(text(f"DELETE FROM {table} WHERE petition_id = :p"), params)  # noqa: S608
    await session.execute(text("UPDATE signatures SET duplicate_of = NULL WHERE petition_id = :p"), params)
    await session.execute(text("DELETE FROM signatures WHERE petition_id = :p"), params)
    await session.execute(text("DELETE FROM signature_invalidations WHERE petition_id = :p"), params)
    campaign_id = await session.scalar(
        text("DELETE FROM petitions WHERE id = :p RETURNING campaign_id"), params
    )
    await session.execute(text("DELETE FROM campaigns WHERE id = :c"), {"c": campaign_id})


async def driver_connection(connection: AsyncConnection) -> Any:
    """The asyncpg connection under ``connection``, inside its transaction (begun by a first statement):
    what the signing pool would hand out, for statements the test rolls back."""
    raw = (await connection.get_raw_connection()).driver_connection
    if not raw.is_in_transaction():  # type: ignore[union-attr]
        await connection.execute(text("SELECT 1"))
    return raw
