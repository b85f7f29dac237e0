"""Campaign and petition rules without HTTP: signing windows, languages, lifecycle, visibility."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns import policy, service, window
from services.core.campaigns.errors import (
    CampaignNotFound,
    InvalidTransition,
    PetitionClosed,
)
from services.core.campaigns.languages import choose_language, normalise_tag, parse_accept_language
from services.core.campaigns.models import CampaignStatus, PetitionConsentVersion
from services.core.campaigns.schemas import (
    CampaignCreate,
    CampaignFilters,
    PetitionCreate,
    PetitionUpdate,
)
from services.core.errors import Forbidden
from services.core.refs import Ref
from services.core.users.models import Role
from services.core.users.security import Principal

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def principal(
    role: Role, *, kind: Literal["user", "api_key"] = "user", scopes: frozenset[str] = frozenset()
) -> Principal:
    return Principal(kind=kind, id=uuid.uuid4(), role=role, scopes=scopes)


# --- signing window -----------------------------------------------------------------------------------


WINDOWS_OPEN = [
    (None, None),
    (NOW - timedelta(days=1), None),
    (None, NOW + timedelta(seconds=1)),
    (NOW, NOW + timedelta(days=1)),  # opens exactly now
]
WINDOWS_CLOSED = [
    (NOW + timedelta(seconds=1), None),  # not open yet
    (None, NOW),  # closes exactly now
    (NOW - timedelta(days=2), NOW - timedelta(days=1)),
]
PUBLISHED = CampaignStatus.published


@pytest.mark.parametrize(("opens_at", "closes_at"), WINDOWS_OPEN)
def test_open_petitions_accept_signatures(opens_at: datetime | None, closes_at: datetime | None) -> None:
    window.ensure_open_for_signing(PUBLISHED, opens_at, closes_at, NOW)
    assert window.signing_refusal(PUBLISHED, opens_at, closes_at, NOW) is None


@pytest.mark.parametrize(("opens_at", "closes_at"), WINDOWS_CLOSED)
def test_closed_petitions_are_a_409(opens_at: datetime | None, closes_at: datetime | None) -> None:
    with pytest.raises(PetitionClosed) as raised:
        window.ensure_open_for_signing(PUBLISHED, opens_at, closes_at, NOW)
    assert (raised.value.status, raised.value.code) == (409, "petition-closed")
    assert window.signing_refusal(PUBLISHED, opens_at, closes_at, NOW) is not None


@pytest.mark.parametrize("status", [CampaignStatus.draft, CampaignStatus.closed, CampaignStatus.archived])
def test_only_published_campaigns_take_signatures(status: CampaignStatus) -> None:
    with pytest.raises(PetitionClosed):
        window.ensure_open_for_signing(status, None, None, NOW)
    window.ensure_open_for_signing(PUBLISHED, None, None, NOW)


async def test_the_sql_and_the_python_signing_rule_agree(db: AsyncSession) -> None:
    """Web signing checks the rule in SQL, every other path in Python: the same petitions are open."""
    now = (await db.execute(text("SELECT now()"))).scalar_one()
    offsets = [None, timedelta(days=-1), timedelta(0), timedelta(seconds=1)]
    cases = [
        (status, None if a is None else now + a, None if b is None else now + b)
        for status in CampaignStatus
        for a in offsets
        for b in offsets
    ]
    for status, opens_at, closes_at in cases:
        in_sql = (
            await db.execute(
                text(
                    f"SELECT {window.OPEN_FOR_SIGNING_SQL} FROM (SELECT CAST(:status AS text) AS status) c, "  # noqa: S608 - a constant
                    "(SELECT CAST(:opens_at AS timestamptz) AS opens_at, "
                    "CAST(:closes_at AS timestamptz) AS closes_at) p"
                ),
                {"status": status.value, "opens_at": opens_at, "closes_at": closes_at},
            )
        ).scalar_one()
        in_python = window.signing_refusal(status, opens_at, closes_at, now) is None
        assert in_sql is in_python, (status, opens_at, closes_at)


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
    scopes = policy.CAMPAIGN_READ_SCOPES
    assert not policy.sees_everything(None, scopes)
    assert not policy.sees_everything(principal(Role.partner), scopes)
    for role in (Role.admin, Role.coordinator, Role.campaigner, Role.case_worker):
        assert policy.sees_everything(principal(role), scopes)
    assert not policy.sees_everything(principal(Role.coordinator, kind="api_key"), scopes)
    assert policy.sees_everything(
        principal(Role.coordinator, kind="api_key", scopes=frozenset({"campaigns:read"})), scopes
    )
    assert not policy.sees_everything(
        principal(Role.partner, kind="api_key", scopes=frozenset({"campaigns:read"})), scopes
    )


async def test_lifecycle_records_when(db: AsyncSession) -> None:
    editor = principal(Role.campaigner)
    created = await service.create_campaign(
        db,
        editor,
        CampaignCreate.model_validate({"default_language": "en", "translations": {"en": {"title": "Life"}}}),
    )
    published = await service.transition_campaign(
        db, editor, Ref.parse(created.slug), CampaignStatus.published, now=NOW
    )
    assert (published.status, published.published_at) == (CampaignStatus.published, NOW)
    later = NOW + timedelta(days=30)
    closed = await service.transition_campaign(
        db, editor, Ref.parse(created.slug), CampaignStatus.closed, now=later
    )
    assert (closed.closed_at, closed.published_at) == (later, NOW)
    with pytest.raises(InvalidTransition):
        await service.transition_campaign(db, editor, Ref.parse(created.slug), CampaignStatus.draft)
    with pytest.raises(InvalidTransition):
        await service.transition_campaign(db, editor, Ref.parse(created.slug), CampaignStatus.published)
    with pytest.raises(Forbidden):
        await service.transition_campaign(
            db, principal(Role.case_worker), Ref.parse(created.slug), CampaignStatus.archived
        )
    with pytest.raises(CampaignNotFound):
        await service.transition_campaign(db, editor, Ref.parse("nope"), CampaignStatus.archived)


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
    for consent in ("v2", "v2", "v3"):
        await service.update_petition(
            db, editor, Ref.parse(created.slug), PetitionUpdate(consent_text=consent)
        )
    rows = (
        await db.scalars(
            select(PetitionConsentVersion.text)
            .where(PetitionConsentVersion.petition_id == created.id)
            .order_by(PetitionConsentVersion.version)
        )
    ).all()
    assert list(rows) == ["v1", "v2", "v3"]
    current = await service.get_petition(db, editor, Ref.parse(created.slug), [])
    assert (current.consent_version, current.consent_text) == (3, "v3")
