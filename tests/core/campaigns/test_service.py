"""Campaign and petition rules without HTTP: signing windows, languages, lifecycle, visibility."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns import service
from services.core.campaigns.errors import (
    CampaignNotFound,
    InvalidTransition,
    PetitionClosed,
)
from services.core.campaigns.languages import choose_language, normalise_tag, parse_accept_language
from services.core.campaigns.models import Campaign, CampaignStatus, Petition, PetitionConsentVersion
from services.core.campaigns.schemas import (
    CampaignCreate,
    CampaignFilters,
    PetitionCreate,
    PetitionUpdate,
)
from services.core.errors import Forbidden
from services.core.users.models import Role
from services.core.users.security import Principal

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def principal(
    role: Role, *, kind: Literal["user", "api_key"] = "user", scopes: frozenset[str] = frozenset()
) -> Principal:
    return Principal(kind=kind, id=uuid.uuid4(), role=role, scopes=scopes)


def petition(opens_at: datetime | None = None, closes_at: datetime | None = None) -> Petition:
    return Petition(
        slug="p",
        default_language="en",
        translations={"en": {"title": "P"}},
        consent_text="ok",
        opens_at=opens_at,
        closes_at=closes_at,
    )


# --- signing window -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opens_at", "closes_at"),
    [
        (None, None),
        (NOW - timedelta(days=1), None),
        (None, NOW + timedelta(seconds=1)),
        (NOW, NOW + timedelta(days=1)),  # opens exactly now
    ],
)
def test_open_petitions_accept_signatures(opens_at: datetime | None, closes_at: datetime | None) -> None:
    service.ensure_open_for_signing(petition(opens_at, closes_at), NOW)
    assert service.is_open_for_signing(petition(opens_at, closes_at), NOW)


@pytest.mark.parametrize(
    ("opens_at", "closes_at"),
    [
        (NOW + timedelta(seconds=1), None),  # not open yet
        (None, NOW),  # closes exactly now
        (NOW - timedelta(days=2), NOW - timedelta(days=1)),
    ],
)
def test_closed_petitions_are_a_409(opens_at: datetime | None, closes_at: datetime | None) -> None:
    with pytest.raises(PetitionClosed) as raised:
        service.ensure_open_for_signing(petition(opens_at, closes_at), NOW)
    assert (raised.value.status, raised.value.code) == (409, "petition-closed")
    assert not service.is_open_for_signing(petition(opens_at, closes_at), NOW)


@pytest.mark.parametrize("status", [CampaignStatus.draft, CampaignStatus.closed, CampaignStatus.archived])
def test_only_published_campaigns_take_signatures(status: CampaignStatus) -> None:
    campaign = Campaign(status=status)
    with pytest.raises(PetitionClosed):
        service.ensure_open_for_signing(petition(), NOW, campaign)
    service.ensure_open_for_signing(petition(), NOW, Campaign(status=CampaignStatus.published))


# --- languages ----------------------------------------------------------------------------------------


def test_language_tags_are_validated_and_canonical() -> None:
    assert normalise_tag("pt-br") == "pt-BR"
    assert normalise_tag("ZH-hant-tw") == "zh-Hant-TW"
    for bad in ("en_GB", "zz", "x-private", "english", "", "e", "en-", "en--GB"):
        with pytest.raises(ValueError, match="BCP 47"):
            normalise_tag(bad)


def test_accept_language_by_q_value() -> None:
    assert parse_accept_language("fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5") == [
        "fr-CH",
        "fr",
        "en",
        "de",
    ]
    assert parse_accept_language("de;q=0.1, es, en;q=0.5") == ["es", "en", "de"]
    assert parse_accept_language("en;q=0, nl;q=bad, ??, km") == ["km"]
    assert parse_accept_language(None) == []


def test_choose_language() -> None:
    available = ["en", "fr", "pt-BR"]
    assert choose_language(available, ["fr-CA"], "en") == "fr"  # shortened
    assert choose_language(available, ["pt"], "en") == "pt-BR"  # same language, other region
    assert choose_language(available, ["de", "pt-PT"], "en") == "pt-BR"
    assert choose_language(available, ["de"], "en") == "en"  # default
    assert choose_language(available, [], "fr") == "fr"


# --- visibility and lifecycle -------------------------------------------------------------------------


def test_who_sees_drafts() -> None:
    scopes = service.CAMPAIGN_READ_SCOPES
    assert not service.sees_everything(None, scopes)
    assert not service.sees_everything(principal(Role.partner), scopes)
    for role in (Role.admin, Role.coordinator, Role.campaigner, Role.case_worker):
        assert service.sees_everything(principal(role), scopes)
    assert not service.sees_everything(principal(Role.coordinator, kind="api_key"), scopes)
    assert service.sees_everything(
        principal(Role.coordinator, kind="api_key", scopes=frozenset({"campaigns:read"})), scopes
    )
    assert not service.sees_everything(
        principal(Role.partner, kind="api_key", scopes=frozenset({"campaigns:read"})), scopes
    )


async def test_lifecycle_records_when(db: AsyncSession) -> None:
    editor = principal(Role.campaigner)
    created = await service.create_campaign(
        db,
        editor,
        CampaignCreate.model_validate({"default_language": "en", "translations": {"en": {"title": "Life"}}}),
    )
    published = await service.transition_campaign(db, editor, created.slug, CampaignStatus.published, now=NOW)
    assert (published.status, published.published_at) == (CampaignStatus.published, NOW)
    later = NOW + timedelta(days=30)
    closed = await service.transition_campaign(db, editor, created.slug, CampaignStatus.closed, now=later)
    assert (closed.closed_at, closed.published_at) == (later, NOW)
    with pytest.raises(InvalidTransition):
        await service.transition_campaign(db, editor, created.slug, CampaignStatus.draft)
    with pytest.raises(InvalidTransition):
        await service.transition_campaign(db, editor, created.slug, CampaignStatus.published)
    with pytest.raises(Forbidden):
        await service.transition_campaign(
            db, principal(Role.case_worker), created.slug, CampaignStatus.archived
        )
    with pytest.raises(CampaignNotFound):
        await service.transition_campaign(db, editor, "nope", CampaignStatus.archived)


async def test_public_listing_hides_drafts(db: AsyncSession) -> None:
    editor = principal(Role.admin)
    body = {"default_language": "en", "translations": {"en": {"title": "Hidden"}}}
    await service.create_campaign(db, editor, CampaignCreate.model_validate(body))
    public = await service.list_campaigns(db, None, CampaignFilters(), [], limit=10, offset=0)
    staff = await service.list_campaigns(db, editor, CampaignFilters(), [], limit=10, offset=0)
    assert (public.total, staff.total) == (0, 1)


async def test_consent_versions_are_kept(db: AsyncSession) -> None:
    editor = principal(Role.coordinator)
    campaign = await service.create_campaign(
        db,
        editor,
        CampaignCreate.model_validate({"default_language": "en", "translations": {"en": {"title": "C"}}}),
    )
    created = await service.create_petition(
        db,
        editor,
        PetitionCreate.model_validate(
            {
                "campaign": campaign.slug,
                "default_language": "en",
                "translations": {"en": {"title": "P"}},
                "consent_text": "v1",
            }
        ),
    )
    for text in ("v2", "v2", "v3"):
        await service.update_petition(db, editor, created.slug, PetitionUpdate(consent_text=text))
    rows = (
        await db.scalars(
            select(PetitionConsentVersion.text)
            .where(PetitionConsentVersion.petition_id == created.id)
            .order_by(PetitionConsentVersion.version)
        )
    ).all()
    assert list(rows) == ["v1", "v2", "v3"]
    current = await service.get_petition(db, editor, created.slug, [])
    assert (current.consent_version, current.consent_text) == (3, "v3")
