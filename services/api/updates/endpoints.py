"""Campaign updates: staff compose one (subject and body per language), send a test to themselves, then
send it to the campaign's confirmed, opted-in signers; ``GET`` shows the progress. Admins, coordinators
and campaigners (signed-in users; API keys never: a test goes to the caller's own address)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Response, status

from services.api.deps import SessionDep, SettingsDep, require_roles
from services.api.problems import problem_responses
from services.api.routing import router as make_router
from services.core.campaigns.errors import CampaignNotFound
from services.core.campaigns.schemas import LanguageTag
from services.core.errors import Forbidden, InvalidToken, Unauthenticated
from services.core.refs import Ref
from services.core.updates import policy, service
from services.core.updates.errors import (
    NoOwnEmail,
    UpdateAlreadySent,
    UpdateDefaultLanguageMissing,
    UpdateNotFound,
)
from services.core.updates.schemas import TestSent, UpdateChange, UpdateCreate, UpdateRead
from services.core.users.security import Principal

router = make_router()

UpdateEditor = Annotated[Principal, Depends(require_roles(*policy.EDITORS))]
CampaignRefParam = Annotated[Ref, Path(description="The campaign's id or slug.")]
UpdateParam = Annotated[str, Path(description="The update's id.")]

_AUTH = (Unauthenticated, InvalidToken, Forbidden)


@router.post(
    "/v1/campaigns/{campaign}/updates",
    tags=["campaign-updates"],
    summary="Compose a campaign update",
    status_code=status.HTTP_201_CREATED,
    response_model=UpdateRead,
    responses=problem_responses(*_AUTH, CampaignNotFound, UpdateDefaultLanguageMissing),
)
async def create_update(
    campaign: CampaignRefParam,
    body: UpdateCreate,
    session: SessionDep,
    principal: UpdateEditor,
    response: Response,
) -> UpdateRead:
    """A draft: subject and body per language, which must include the campaign's default language
    (recipients whose language the update lacks get that one). Nothing is sent yet."""
    update = await service.create_update(session, principal, campaign, body)
    response.headers["Location"] = f"/v1/campaigns/{update.campaign}/updates/{update.id}"
    return update


@router.get(
    "/v1/campaigns/{campaign}/updates",
    tags=["campaign-updates"],
    summary="List a campaign's updates",
    response_model=list[UpdateRead],
    responses=problem_responses(*_AUTH, CampaignNotFound),
)
async def list_updates(
    campaign: CampaignRefParam, session: SessionDep, principal: UpdateEditor
) -> list[UpdateRead]:
    """Newest first, each with its messages counted by state."""
    return await service.list_updates(session, campaign)


@router.get(
    "/v1/campaigns/{campaign}/updates/{update}",
    tags=["campaign-updates"],
    summary="Get a campaign update and its progress",
    response_model=UpdateRead,
    responses=problem_responses(*_AUTH, CampaignNotFound, UpdateNotFound),
)
async def get_update(
    campaign: CampaignRefParam, update: UpdateParam, session: SessionDep, principal: UpdateEditor
) -> UpdateRead:
    """`counts` has its messages by state: `pending` (queued, not yet accepted by the mail server),
    `sent`, `failed`, `suppressed` (unsubscribed or bounced addresses); `recipients` how many were queued
    so far, while `state` is `sending`."""
    return await service.get_update(session, campaign, update)


@router.patch(
    "/v1/campaigns/{campaign}/updates/{update}",
    tags=["campaign-updates"],
    summary="Change a draft update",
    response_model=UpdateRead,
    responses=problem_responses(
        *_AUTH, CampaignNotFound, UpdateNotFound, UpdateAlreadySent, UpdateDefaultLanguageMissing
    ),
)
async def change_update(
    campaign: CampaignRefParam,
    update: UpdateParam,
    body: UpdateChange,
    session: SessionDep,
    principal: UpdateEditor,
) -> UpdateRead:
    """Only drafts change (409 once sending); `content` is replaced whole."""
    return await service.change_update(session, campaign, update, body)


@router.post(
    "/v1/campaigns/{campaign}/updates/{update}/test",
    tags=["campaign-updates"],
    summary="Send a campaign update to yourself",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TestSent,
    responses=problem_responses(*_AUTH, CampaignNotFound, UpdateNotFound, NoOwnEmail),
)
async def send_test_update(
    campaign: CampaignRefParam,
    update: UpdateParam,
    session: SessionDep,
    settings: SettingsDep,
    principal: UpdateEditor,
    language: Annotated[
        LanguageTag | None,
        Query(
            description="Render it as a recipient with this language would get it (default: the "
            "campaign's default language)."
        ),
    ] = None,
) -> TestSent:
    """Queues one message, exactly as recipients get it (unsubscribe link and headers included), to the
    signed-in user's own email. Works in any state."""
    message, chosen = await service.send_test(session, settings, principal, campaign, update, language)
    return TestSent(message=message, language=chosen)


@router.post(
    "/v1/campaigns/{campaign}/updates/{update}/send",
    tags=["campaign-updates"],
    summary="Send a campaign update to the campaign's signers",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=UpdateRead,
    responses=problem_responses(*_AUTH, CampaignNotFound, UpdateNotFound, UpdateAlreadySent),
)
async def send_update(
    campaign: CampaignRefParam, update: UpdateParam, session: SessionDep, principal: UpdateEditor
) -> UpdateRead:
    """Starts sending: the update becomes `sending` (and immutable) and the worker queues one message
    per confirmed signer of the campaign's petitions who opted in to updates, in batches. Sending twice
    is a 409. Follow the progress with `GET`."""
    return await service.start_sending(session, principal, campaign, update)
