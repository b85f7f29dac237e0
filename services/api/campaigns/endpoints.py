"""Endpoints of campaigns and petitions.

Reading is public for published and closed campaigns and their petitions; network staff also see
drafts and archived ones (API keys with a ``campaigns:*`` / ``petitions:*`` scope). Admins, coordinators
and campaigners create and change them (API keys need ``campaigns:write`` / ``petitions:write``).
Texts come in the language asked for with ``?lang=`` or ``Accept-Language``, else the default language.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Query, Response, status

from services.api.deps import OptionalPrincipal, PaginationDep, SessionDep, require_roles
from services.api.problems import problem_responses
from services.api.routing import router as make_router
from services.core.campaigns import policy, service
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
from services.core.campaigns.languages import normalise_tag, parse_accept_language
from services.core.campaigns.models import CampaignStatus
from services.core.campaigns.schemas import (
    CampaignCreate,
    CampaignFilters,
    CampaignPage,
    CampaignRead,
    CampaignTranslationsRead,
    CampaignUpdate,
    ConsentVersionRead,
    LanguageTag,
    PetitionCreate,
    PetitionFilters,
    PetitionPage,
    PetitionRead,
    PetitionTranslationsRead,
    PetitionUpdate,
)
from services.core.errors import Forbidden, InvalidToken, Unauthenticated
from services.core.network.errors import StaffOnly
from services.core.refs import Ref, RefQuery
from services.core.registry.errors import TargetCompanyNotFound
from services.core.schemas import SearchText
from services.core.users.scopes import Scope
from services.core.users.security import Principal

router = make_router()

CampaignEditor = Annotated[Principal, Depends(require_roles(*policy.EDITORS, scope=Scope.campaigns_write))]
PetitionEditor = Annotated[Principal, Depends(require_roles(*policy.EDITORS, scope=Scope.petitions_write))]
CampaignRefParam = Annotated[Ref, Path(description="The campaign's id or slug.")]
PetitionRefParam = Annotated[Ref, Path(description="The petition's id or slug.")]

_AUTH = (Unauthenticated, InvalidToken, Forbidden)


async def preferred_languages(
    lang: Annotated[
        LanguageTag | None,
        Query(description="The language wanted (BCP 47); takes precedence over `Accept-Language`."),
    ] = None,
    accept_language: Annotated[
        str | None,
        Header(max_length=1000, description="Languages wanted, with q-values (RFC 9110)."),
    ] = None,
) -> list[str]:
    """The caller's languages, most preferred first."""
    preferences = parse_accept_language(accept_language)
    return [normalise_tag(lang), *preferences] if lang else preferences


Languages = Annotated[list[str], Depends(preferred_languages)]


def _content_language(response: Response, language: str) -> None:
    response.headers["Content-Language"] = language
    response.headers["Vary"] = "Accept-Language"


# --- campaigns --------------------------------------------------------------------------------------


@router.get(
    "/v1/campaigns",
    tags=["campaigns"],
    summary="List campaigns",
    response_model=CampaignPage,
    responses=problem_responses(Unauthenticated, InvalidToken, StaffOnly),
)
async def list_campaigns(
    session: SessionDep,
    principal: OptionalPrincipal,
    languages: Languages,
    page: PaginationDep,
    response: Response,
    status_: Annotated[
        list[CampaignStatus] | None,
        Query(
            alias="status",
            description="Repeat for several. Other than `published` and `closed`: staff only.",
        ),
    ] = None,
    organisation: Annotated[
        RefQuery | None, Query(description="Only campaigns this organisation (id or slug) runs.")
    ] = None,
    q: Annotated[
        SearchText | None,
        Query(description="Case-insensitive text searched in slugs, texts (any language) and targets."),
    ] = None,
) -> CampaignPage:
    """Newest first (then by id). The public sees published and closed campaigns; staff see every
    status and may filter by it."""
    response.headers["Vary"] = "Accept-Language"
    filters = CampaignFilters(statuses=tuple(status_ or ()), organisation=organisation, q=q or None)
    return await service.list_campaigns(
        session, principal, filters, languages, limit=page.limit, offset=page.offset
    )


@router.post(
    "/v1/campaigns",
    tags=["campaigns"],
    summary="Create a campaign",
    status_code=status.HTTP_201_CREATED,
    response_model=CampaignRead,
    responses=problem_responses(
        *_AUTH, CampaignSlugTaken, PartnerOrganisationNotFound, DuplicatePartner, TargetCompanyNotFound
    ),
)
async def create_campaign(
    session: SessionDep,
    principal: CampaignEditor,
    body: CampaignCreate,
    languages: Languages,
    response: Response,
) -> CampaignRead:
    """Admins, coordinators and campaigners. A new campaign is a `draft`. The slug is generated from the
    default language's title unless given; partners are member organisations by id or slug; targets are
    companies of the registry by id or slug (or, deprecated, by name: `target_companies`, where a name no
    company has becomes a new company)."""
    campaign = await service.create_campaign(session, principal, body, languages)
    response.headers["Location"] = f"/v1/campaigns/{campaign.id}"
    _content_language(response, campaign.language)
    return campaign


@router.get(
    "/v1/campaigns/{ref}",
    tags=["campaigns"],
    summary="Get a campaign",
    response_model=CampaignRead,
    responses=problem_responses(InvalidToken, CampaignNotFound),
)
async def get_campaign(
    session: SessionDep,
    principal: OptionalPrincipal,
    ref: CampaignRefParam,
    languages: Languages,
    response: Response,
) -> CampaignRead:
    """By id or slug, in the language asked for when available (`Content-Language` says which). Drafts
    and archived campaigns are a 404 except to staff."""
    campaign = await service.get_campaign(session, principal, ref, languages)
    _content_language(response, campaign.language)
    return campaign


@router.patch(
    "/v1/campaigns/{ref}",
    tags=["campaigns"],
    summary="Change a campaign",
    response_model=CampaignRead,
    responses=problem_responses(
        *_AUTH,
        CampaignNotFound,
        CampaignSlugTaken,
        CampaignArchived,
        PartnerOrganisationNotFound,
        DuplicatePartner,
        DefaultLanguageMissing,
        TargetCompanyNotFound,
    ),
)
async def update_campaign(
    session: SessionDep,
    principal: CampaignEditor,
    ref: CampaignRefParam,
    body: CampaignUpdate,
    languages: Languages,
    response: Response,
) -> CampaignRead:
    """Only the fields sent change; `translations`, `demands`, `targets` (with the deprecated
    `target_companies`, if sent) and `partners` are replaced whole. Archived campaigns cannot change
    (409). The status changes with the lifecycle endpoints (`publish`, `close`, `archive`)."""
    campaign = await service.update_campaign(session, principal, ref, body, languages)
    _content_language(response, campaign.language)
    return campaign


@router.get(
    "/v1/campaigns/{ref}/translations",
    tags=["campaigns"],
    summary="Get a campaign's texts in every language",
    response_model=CampaignTranslationsRead,
    responses=problem_responses(Unauthenticated, InvalidToken, StaffOnly, CampaignNotFound),
)
async def get_campaign_translations(
    session: SessionDep, principal: OptionalPrincipal, ref: CampaignRefParam
) -> CampaignTranslationsRead:
    """Network staff only: every language's title, summary and body, for editing."""
    return await service.get_campaign_translations(session, principal, ref)


def _transition_endpoint(target: CampaignStatus, verb: str, doc: str) -> None:
    async def endpoint(
        session: SessionDep,
        principal: CampaignEditor,
        ref: CampaignRefParam,
        languages: Languages,
        response: Response,
    ) -> CampaignRead:
        campaign = await service.transition_campaign(session, principal, ref, target, languages)
        _content_language(response, campaign.language)
        return campaign

    endpoint.__name__ = f"{verb}_campaign"
    endpoint.__doc__ = doc
    router.add_api_route(
        f"/v1/campaigns/{{ref}}/{verb}",
        endpoint,
        methods=["POST"],
        tags=["campaigns"],
        summary=f"{verb.capitalize()} a campaign",
        response_model=CampaignRead,
        responses=problem_responses(*_AUTH, CampaignNotFound, InvalidTransition),
    )


_transition_endpoint(
    CampaignStatus.published,
    "publish",
    "A draft becomes `published` (visible to the public); records `published_at`. 409 from any other status.",
)
_transition_endpoint(
    CampaignStatus.closed,
    "close",
    "A published campaign becomes `closed` (still public, its petitions no longer take signatures); "
    "records `closed_at`. 409 from any other status.",
)
_transition_endpoint(
    CampaignStatus.archived,
    "archive",
    "A closed campaign, or an abandoned draft, becomes `archived` (hidden from the public, read-only); "
    "records `archived_at`. 409 from any other status.",
)


# --- petitions --------------------------------------------------------------------------------------


@router.get(
    "/v1/petitions",
    tags=["petitions"],
    summary="List petitions",
    response_model=PetitionPage,
    responses=problem_responses(InvalidToken),
)
async def list_petitions(
    session: SessionDep,
    principal: OptionalPrincipal,
    languages: Languages,
    page: PaginationDep,
    response: Response,
    campaign: Annotated[
        RefQuery | None, Query(description="Only this campaign's petitions (id or slug).")
    ] = None,
    q: Annotated[
        SearchText | None, Query(description="Case-insensitive text searched in slugs and titles.")
    ] = None,
) -> PetitionPage:
    """Newest first (then by id). The public sees petitions of published and closed campaigns; staff
    see all."""
    response.headers["Vary"] = "Accept-Language"
    return await service.list_petitions(
        session,
        principal,
        PetitionFilters(campaign=campaign, q=q or None),
        languages,
        limit=page.limit,
        offset=page.offset,
    )


@router.post(
    "/v1/petitions",
    tags=["petitions"],
    summary="Create a petition",
    status_code=status.HTTP_201_CREATED,
    response_model=PetitionRead,
    responses=problem_responses(*_AUTH, CampaignNotFound, CampaignSlugTaken, CampaignArchived),
)
async def create_petition(
    session: SessionDep,
    principal: PetitionEditor,
    body: PetitionCreate,
    languages: Languages,
    response: Response,
) -> PetitionRead:
    """Admins, coordinators and campaigners. The petition belongs to `campaign` (id or slug); its
    consent text is version 1."""
    petition = await service.create_petition(session, principal, body, languages)
    response.headers["Location"] = f"/v1/petitions/{petition.id}"
    _content_language(response, petition.language)
    return petition


@router.get(
    "/v1/petitions/{ref}",
    tags=["petitions"],
    summary="Get a petition",
    response_model=PetitionRead,
    responses=problem_responses(InvalidToken, PetitionNotFound),
)
async def get_petition(
    session: SessionDep,
    principal: OptionalPrincipal,
    ref: PetitionRefParam,
    languages: Languages,
    response: Response,
) -> PetitionRead:
    """By id or slug, in the language asked for when available. Petitions of draft or archived
    campaigns are a 404 except to staff."""
    petition = await service.get_petition(session, principal, ref, languages)
    _content_language(response, petition.language)
    return petition


@router.patch(
    "/v1/petitions/{ref}",
    tags=["petitions"],
    summary="Change a petition",
    response_model=PetitionRead,
    responses=problem_responses(
        *_AUTH,
        PetitionNotFound,
        CampaignSlugTaken,
        CampaignArchived,
        DefaultLanguageMissing,
        InvalidSigningWindow,
    ),
)
async def update_petition(
    session: SessionDep,
    principal: PetitionEditor,
    ref: PetitionRefParam,
    body: PetitionUpdate,
    languages: Languages,
    response: Response,
) -> PetitionRead:
    """Only the fields sent change; `null` clears `goal`, `opens_at` or `closes_at`. A different
    `consent_text` becomes the next `consent_version`; earlier versions are kept."""
    petition = await service.update_petition(session, principal, ref, body, languages)
    _content_language(response, petition.language)
    return petition


@router.get(
    "/v1/petitions/{ref}/translations",
    tags=["petitions"],
    summary="Get a petition's texts in every language",
    response_model=PetitionTranslationsRead,
    responses=problem_responses(Unauthenticated, InvalidToken, StaffOnly, PetitionNotFound),
)
async def get_petition_translations(
    session: SessionDep, principal: OptionalPrincipal, ref: PetitionRefParam
) -> PetitionTranslationsRead:
    """Network staff only."""
    return await service.get_petition_translations(session, principal, ref)


@router.get(
    "/v1/petitions/{ref}/consent-versions",
    tags=["petitions"],
    summary="List a petition's consent texts",
    response_model=list[ConsentVersionRead],
    responses=problem_responses(Unauthenticated, InvalidToken, StaffOnly, PetitionNotFound),
)
async def list_consent_versions(
    session: SessionDep, principal: OptionalPrincipal, ref: PetitionRefParam
) -> list[ConsentVersionRead]:
    """Network staff only: every consent text the petition has had, newest first."""
    return await service.list_consent_versions(session, principal, ref)
