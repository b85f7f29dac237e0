"""Campaigns and petitions: who sees and changes them, their lifecycle and their languages.

Campaigns move ``draft → published → closed → archived`` (archived ones no longer change); texts are
stored per BCP 47 language and read in one (README, "Campaigns and petitions"). Who may do what is in
``policy``. Services take the session first and never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns import policy, repository
from services.core.campaigns.errors import (
    CampaignArchived,
    CampaignNotFound,
    CampaignSlugTaken,
    DefaultLanguageMissing,
    DuplicatePartner,
    InvalidSigningWindow,
    InvalidTransition,
    PartnerOrganisationNotFound,
    PetitionNotFound,
)
from services.core.campaigns.languages import choose_language
from services.core.campaigns.models import (
    Campaign,
    CampaignPartner,
    CampaignStatus,
    Petition,
    PetitionConsentVersion,
)
from services.core.campaigns.schemas import (
    CampaignBrief,
    CampaignCreate,
    CampaignFilters,
    CampaignPage,
    CampaignRead,
    CampaignText,
    CampaignTranslationsRead,
    CampaignUpdate,
    ConsentVersionRead,
    OrganisationBrief,
    PartnerRead,
    PartnerWrite,
    PetitionCreate,
    PetitionFilters,
    PetitionPage,
    PetitionRead,
    PetitionText,
    PetitionTranslationsRead,
    PetitionUpdate,
)
from services.core.campaigns.window import signing_refusal
from services.core.db.unique import free_slug, save_unique
from services.core.network import repository as network_repository
from services.core.refs import SLUG_MAX_LENGTH, Ref
from services.core.registry import service as registry
from services.core.registry.schemas import CompanyBrief
from services.core.signatures.recount import mark_for_recount
from services.core.users.security import Principal
from services.core.webhooks.events import emit
from services.core.webhooks.models import EventType

# Allowed moves: target status → the statuses it may be reached from, and the timestamp it sets.
TRANSITIONS: dict[CampaignStatus, tuple[frozenset[CampaignStatus], str]] = {
    CampaignStatus.published: (frozenset({CampaignStatus.draft}), "published_at"),
    CampaignStatus.closed: (frozenset({CampaignStatus.published}), "closed_at"),
    CampaignStatus.archived: (frozenset({CampaignStatus.draft, CampaignStatus.closed}), "archived_at"),
}

_SLUG_ERRORS: dict[str, Callable[[], Exception]] = {
    "uq_campaigns_slug": lambda: CampaignSlugTaken("Another campaign already uses this slug."),
    "uq_petitions_slug": lambda: CampaignSlugTaken("Another petition already uses this slug."),
}

M = TypeVar("M", Campaign, Petition)


async def _save(session: AsyncSession, obj: M, apply: Callable[[], None] = lambda: None) -> M:
    return await save_unique(session, obj, _SLUG_ERRORS, apply)


async def _free_slug(session: AsyncSession, model: type[M], title: str, fallback: str) -> str:
    return await free_slug(session, model.slug, title, fallback, max_length=SLUG_MAX_LENGTH)


def _dump_translations(translations: dict[str, Any]) -> dict[str, Any]:
    return {lang: text.model_dump() for lang, text in translations.items()}


def _check_default_present(default: str, translations: dict[str, Any]) -> None:
    if default not in translations:
        raise DefaultLanguageMissing(f"The translations must include the default language {default!r}.")


# --- campaigns --------------------------------------------------------------------------------------


async def _read_campaigns(
    session: AsyncSession, campaigns: Sequence[Campaign], languages: Sequence[str]
) -> list[CampaignRead]:
    partners = await repository.partners_of(session, [c.id for c in campaigns])
    targets = await repository.targets_of(session, [c.id for c in campaigns])
    result = []
    for campaign in campaigns:
        language = choose_language(campaign.translations, languages, campaign.default_language)
        text = CampaignText.model_validate(campaign.translations[language])
        result.append(
            CampaignRead(
                id=campaign.id,
                slug=campaign.slug,
                status=campaign.status,
                language=language,
                languages=sorted(campaign.translations),
                default_language=campaign.default_language,
                title=text.title,
                summary=text.summary,
                body=text.body,
                demands=list(campaign.demands),
                targets=[CompanyBrief.model_validate(company) for company in targets[campaign.id]],
                target_companies=[company.name for company in targets[campaign.id]],
                partners=[
                    PartnerRead(
                        organisation=OrganisationBrief(
                            id=org.id, slug=org.slug, name=org.name, country=org.country
                        ),
                        role=partner.role,
                    )
                    for partner, org in partners[campaign.id]
                ],
                published_at=campaign.published_at,
                closed_at=campaign.closed_at,
                archived_at=campaign.archived_at,
                created_at=campaign.created_at,
                updated_at=campaign.updated_at,
            )
        )
    return result


async def list_campaigns(
    session: AsyncSession,
    principal: Principal | None,
    filters: CampaignFilters,
    languages: Sequence[str],
    *,
    limit: int,
    offset: int,
) -> CampaignPage:
    policy.ensure_may_list(principal, filters.statuses)
    everything = policy.sees_everything(principal, policy.CAMPAIGN_READ_SCOPES)
    items, total = await repository.list_campaigns(
        session, filters, seen_by=repository.campaign_visibility(everything), limit=limit, offset=offset
    )
    return CampaignPage(
        items=await _read_campaigns(session, items, languages), total=total, limit=limit, offset=offset
    )


async def _campaign(session: AsyncSession, ref: Ref, *, for_update: bool = False) -> Campaign:
    campaign = await repository.get_campaign(session, ref, for_update=for_update)
    if campaign is None:
        raise CampaignNotFound(f"No campaign {ref.text!r}.")
    return campaign


async def _visible_campaign(
    session: AsyncSession, principal: Principal | None, ref: Ref, read_scopes: frozenset[str]
) -> Campaign:
    campaign = await repository.get_campaign(session, ref)
    if campaign is None or not policy.may_see(principal, campaign.status, read_scopes):
        raise CampaignNotFound(f"No campaign {ref.text!r}.")
    return campaign


async def get_campaign(
    session: AsyncSession, principal: Principal | None, ref: Ref, languages: Sequence[str]
) -> CampaignRead:
    """A campaign by id or slug; drafts and archived campaigns are a 404 except to staff."""
    campaign = await _visible_campaign(session, principal, ref, policy.CAMPAIGN_READ_SCOPES)
    return (await _read_campaigns(session, [campaign], languages))[0]


async def get_campaign_translations(
    session: AsyncSession, principal: Principal | None, ref: Ref
) -> CampaignTranslationsRead:
    policy.ensure_staff(principal, policy.CAMPAIGN_READ_SCOPES)
    campaign = await _campaign(session, ref)
    return CampaignTranslationsRead.model_validate(
        {"default_language": campaign.default_language, "translations": campaign.translations}
    )


async def _partner_rows(
    session: AsyncSession, campaign_id: uuid.UUID, partners: Sequence[PartnerWrite]
) -> list[CampaignPartner]:
    rows = []
    seen: set[uuid.UUID] = set()
    for position, partner in enumerate(partners):
        organisation = await network_repository.get_organisation(session, partner.organisation)
        if organisation is None:
            raise PartnerOrganisationNotFound(f"No organisation {partner.organisation.text!r}.")
        if organisation.id in seen:
            raise DuplicatePartner(f"{organisation.slug} is listed twice.")
        seen.add(organisation.id)
        rows.append(
            CampaignPartner(
                campaign_id=campaign_id,
                organisation_id=organisation.id,
                role=partner.role,
                position=position,
            )
        )
    return rows


async def create_campaign(
    session: AsyncSession, principal: Principal, data: CampaignCreate, languages: Sequence[str] = ()
) -> CampaignRead:
    policy.ensure_editor(principal)
    slug = data.slug or await _free_slug(
        session, Campaign, data.translations[data.default_language].title, "campaign"
    )
    campaign = Campaign(
        id=uuid.uuid4(),
        slug=slug,
        default_language=data.default_language,
        translations=_dump_translations(data.translations),
        demands=list(data.demands),
        status=CampaignStatus.draft,
    )
    partners = await _partner_rows(session, campaign.id, data.partners)
    targets = await registry.target_companies(session, principal, data.targets, data.target_companies)
    await _save(session, campaign)
    if partners:
        await repository.replace_partners(session, campaign.id, partners)
    if targets:
        await repository.replace_targets(session, campaign.id, [company.id for company in targets])
    return (await _read_campaigns(session, [campaign], languages))[0]


async def update_campaign(
    session: AsyncSession,
    principal: Principal,
    ref: Ref,
    patch: CampaignUpdate,
    languages: Sequence[str] = (),
) -> CampaignRead:
    policy.ensure_editor(principal)
    campaign = await _campaign(session, ref, for_update=True)
    if campaign.status is CampaignStatus.archived:
        raise CampaignArchived(f"{campaign.slug} is archived.")
    changes = patch.changes()
    partners = changes.pop("partners", None)
    target_refs = changes.pop("targets", None)
    target_names = changes.pop("target_companies", None)
    if "translations" in changes:
        changes["translations"] = _dump_translations(changes["translations"])
    _check_default_present(
        changes.get("default_language", campaign.default_language),
        changes.get("translations", campaign.translations),
    )
    partner_rows = None if partners is None else await _partner_rows(session, campaign.id, partners)
    targets = None
    if target_refs is not None or target_names is not None:
        targets = await registry.target_companies(session, principal, target_refs or [], target_names or [])

    def apply() -> None:
        for name, value in changes.items():
            setattr(campaign, name, value)
        if partner_rows is not None or targets is not None:
            campaign.updated_at = datetime.now(UTC)

    await _save(session, campaign, apply)
    if partner_rows is not None:
        await repository.replace_partners(session, campaign.id, partner_rows)
    if targets is not None:
        await repository.replace_targets(session, campaign.id, [company.id for company in targets])
    return (await _read_campaigns(session, [campaign], languages))[0]


async def transition_campaign(
    session: AsyncSession,
    principal: Principal,
    ref: Ref,
    target: CampaignStatus,
    languages: Sequence[str] = (),
    *,
    now: datetime | None = None,
) -> CampaignRead:
    """Move a campaign along its lifecycle, recording when; a move not allowed from the current status
    is a 409 ``invalid-transition``."""
    policy.ensure_editor(principal)
    if target not in TRANSITIONS:
        raise InvalidTransition(f"A campaign cannot be moved to {target.value!r}.")
    campaign = await _campaign(session, ref, for_update=True)
    sources, stamp = TRANSITIONS[target]
    if campaign.status not in sources:
        raise InvalidTransition(
            f"A {campaign.status.value} campaign cannot become {target.value}.",
            current_status=campaign.status.value,
        )
    when = now or datetime.now(UTC)

    def apply() -> None:
        campaign.status = target
        setattr(campaign, stamp, when)

    await _save(session, campaign, apply)
    if target is CampaignStatus.published:
        await _emit_published(session, campaign)
    # Whether its petitions' counts are public changed: the cached counts follow.
    await _recount(session, await repository.petition_ids(session, campaign.id))
    return (await _read_campaigns(session, [campaign], languages))[0]


# What the cached public count of a petition shows besides the count itself (and the policy it counts by).
_COUNT_FIELDS = frozenset({"count_policy", "goal", "slug"})


async def _recount(session: AsyncSession, petition_ids: Sequence[uuid.UUID]) -> None:
    """Ask the worker to recount (and cache again) these petitions' public counts."""
    await mark_for_recount(session, list(petition_ids))


async def _emit_published(session: AsyncSession, campaign: Campaign) -> None:
    """The ``campaign.published`` webhook event (a campaign is published once: draft → published)."""
    text = CampaignText.model_validate(campaign.translations[campaign.default_language])
    await emit(
        session,
        EventType.campaign_published,
        {
            "campaign_id": campaign.id,
            "slug": campaign.slug,
            "title": text.title,
            "default_language": campaign.default_language,
            "languages": sorted(campaign.translations),
            "published_at": campaign.published_at,
        },
        key=f"{EventType.campaign_published.value}:{campaign.id}",
    )


# --- petitions --------------------------------------------------------------------------------------


def _read_petition(
    petition: Petition, campaign: Campaign, languages: Sequence[str], now: datetime
) -> PetitionRead:
    language = choose_language(petition.translations, languages, petition.default_language)
    return PetitionRead(
        id=petition.id,
        slug=petition.slug,
        campaign=CampaignBrief(id=campaign.id, slug=campaign.slug, status=campaign.status),
        language=language,
        languages=sorted(petition.translations),
        default_language=petition.default_language,
        title=PetitionText.model_validate(petition.translations[language]).title,
        goal=petition.goal,
        consent_text=petition.consent_text,
        consent_version=petition.consent_version,
        email_required=petition.email_required,
        count_policy=petition.count_policy,
        opens_at=petition.opens_at,
        closes_at=petition.closes_at,
        is_open=signing_refusal(campaign.status, petition.opens_at, petition.closes_at, now) is None,
        created_at=petition.created_at,
        updated_at=petition.updated_at,
    )


def _petition_visibility(principal: Principal | None) -> ColumnElement[bool]:
    return repository.campaign_visibility(policy.sees_everything(principal, policy.PETITION_READ_SCOPES))


async def list_petitions(
    session: AsyncSession,
    principal: Principal | None,
    filters: PetitionFilters,
    languages: Sequence[str],
    *,
    limit: int,
    offset: int,
) -> PetitionPage:
    """Petitions of visible campaigns, newest first."""
    rows, total = await repository.list_petitions(
        session, filters, seen_by=_petition_visibility(principal), limit=limit, offset=offset
    )
    now = datetime.now(UTC)
    return PetitionPage(
        items=[_read_petition(p, c, languages, now) for p, c in rows], total=total, limit=limit, offset=offset
    )


async def _petition(
    session: AsyncSession, ref: Ref, *, for_update: bool = False
) -> tuple[Petition, Campaign]:
    found = await repository.get_petition(session, ref, for_update=for_update)
    if found is None:
        raise PetitionNotFound(f"No petition {ref.text!r}.")
    return found


async def _visible_petition(
    session: AsyncSession, principal: Principal | None, ref: Ref
) -> tuple[Petition, Campaign]:
    petition, campaign = await _petition(session, ref)
    if not policy.may_see(principal, campaign.status, policy.PETITION_READ_SCOPES):
        raise PetitionNotFound(f"No petition {ref.text!r}.")
    return petition, campaign


async def get_petition(
    session: AsyncSession, principal: Principal | None, ref: Ref, languages: Sequence[str]
) -> PetitionRead:
    """A petition by id or slug; those of draft or archived campaigns are a 404 except to staff."""
    petition, campaign = await _visible_petition(session, principal, ref)
    return _read_petition(petition, campaign, languages, datetime.now(UTC))


async def get_petition_translations(
    session: AsyncSession, principal: Principal | None, ref: Ref
) -> PetitionTranslationsRead:
    policy.ensure_staff(principal, policy.PETITION_READ_SCOPES)
    petition, _ = await _petition(session, ref)
    return PetitionTranslationsRead.model_validate(
        {"default_language": petition.default_language, "translations": petition.translations}
    )


async def list_consent_versions(
    session: AsyncSession, principal: Principal | None, ref: Ref
) -> list[ConsentVersionRead]:
    """Every consent text the petition has had, newest first."""
    policy.ensure_staff(principal, policy.PETITION_READ_SCOPES)
    petition, _ = await _petition(session, ref)
    return [
        ConsentVersionRead.model_validate(v) for v in await repository.consent_versions(session, petition.id)
    ]


async def create_petition(
    session: AsyncSession, principal: Principal, data: PetitionCreate, languages: Sequence[str] = ()
) -> PetitionRead:
    policy.ensure_editor(principal)
    campaign = await _campaign(session, data.campaign)
    if campaign.status is CampaignStatus.archived:
        raise CampaignArchived(f"{campaign.slug} is archived.")
    slug = data.slug or await _free_slug(
        session, Petition, data.translations[data.default_language].title, "petition"
    )
    petition = Petition(
        id=uuid.uuid4(),
        campaign_id=campaign.id,
        slug=slug,
        default_language=data.default_language,
        translations=_dump_translations(data.translations),
        goal=data.goal,
        consent_text=data.consent_text,
        consent_version=1,
        email_required=data.email_required,
        count_policy=data.count_policy,
        opens_at=data.opens_at,
        closes_at=data.closes_at,
    )
    await _save(session, petition)
    session.add(PetitionConsentVersion(petition_id=petition.id, version=1, text=data.consent_text))
    await session.flush()
    return _read_petition(petition, campaign, languages, datetime.now(UTC))


async def update_petition(
    session: AsyncSession,
    principal: Principal,
    ref: Ref,
    patch: PetitionUpdate,
    languages: Sequence[str] = (),
) -> PetitionRead:
    """Only the fields sent change. A changed consent text becomes the next consent version."""
    policy.ensure_editor(principal)
    petition, campaign = await _petition(session, ref, for_update=True)
    if campaign.status is CampaignStatus.archived:
        raise CampaignArchived(f"{campaign.slug} is archived.")
    changes = patch.changes()
    if "translations" in changes:
        changes["translations"] = _dump_translations(changes["translations"])
    _check_default_present(
        changes.get("default_language", petition.default_language),
        changes.get("translations", petition.translations),
    )
    opens_at = changes.get("opens_at", petition.opens_at)
    closes_at = changes.get("closes_at", petition.closes_at)
    if opens_at is not None and closes_at is not None and closes_at <= opens_at:
        raise InvalidSigningWindow("closes_at must be after opens_at.")
    new_consent = changes.pop("consent_text", None)
    if new_consent == petition.consent_text:
        new_consent = None

    def apply() -> None:
        for name, value in changes.items():
            setattr(petition, name, value)
        if new_consent is not None:
            petition.consent_text = new_consent
            petition.consent_version += 1

    await _save(session, petition, apply)
    if _COUNT_FIELDS & changes.keys():
        await _recount(session, [petition.id])
    if new_consent is not None:
        session.add(
            PetitionConsentVersion(
                petition_id=petition.id, version=petition.consent_version, text=new_consent
            )
        )
        await session.flush()
    return _read_petition(petition, campaign, languages, datetime.now(UTC))
