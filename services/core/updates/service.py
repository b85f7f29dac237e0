"""Campaign updates: compose, test, send (in batches that resume after a crash), progress.

Who gets an update (one message per opted-in, confirmed, counted person, in their language): README,
"Campaign updates". Sending is a chain of ``updates.send`` jobs whose batches commit with the update's
``cursor``, so a crash loses at most the batch in flight. docs/email.md, "Campaign updates".
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from markdown_it import MarkdownIt
from markupsafe import Markup, escape
from sqlalchemy.ext.asyncio import AsyncSession

from services.core import outbox
from services.core.campaigns import repository as campaigns
from services.core.campaigns.errors import CampaignNotFound
from services.core.campaigns.languages import choose_language
from services.core.campaigns.models import Campaign
from services.core.config import Settings
from services.core.mail import unsubscribe
from services.core.mail.messages import title_in
from services.core.mail.models import MessageCategory
from services.core.mail.queue import NewMessage, queue_many
from services.core.mail.rendering import render
from services.core.refs import Ref
from services.core.signatures.identity import InvalidEmail, canonical_email
from services.core.updates import repository
from services.core.updates.errors import (
    NoOwnEmail,
    UpdateAlreadySent,
    UpdateDefaultLanguageMissing,
    UpdateNotFound,
)
from services.core.updates.models import BodyFormat, CampaignUpdate, UpdateState
from services.core.updates.schemas import UpdateChange, UpdateCounts, UpdateCreate, UpdateRead, UpdateText
from services.core.users import repository as users
from services.core.users.security import Principal

SEND_TASK = "updates.send"
KIND = "campaign_update"
TEST_KIND = "campaign_update_test"
# Rendered once per language and batch, then replaced by each recipient's own unsubscribe link.
_UNSUBSCRIBE_PLACEHOLDER = "https://loom.invalid/unsubscribe-placeholder"

_SAFE_SCHEMES = ("http://", "https://", "mailto:")


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False})  # raw HTML in the source is escaped, never passed on
    md.validateLink = lambda url: url.strip().lower().startswith(_SAFE_SCHEMES)  # type: ignore[method-assign]
    return md


_MD = _markdown()
_PARAGRAPHS = re.compile(r"\n\s*\n")


def body_html(body: str, body_format: BodyFormat) -> Markup:
    """The HTML of an update's body: Markdown rendered without raw HTML, or plain text escaped into
    paragraphs (blank lines) and line breaks."""
    if body_format is BodyFormat.markdown:
        return Markup(_MD.render(body))  # noqa: S704 - markdown-it output with raw HTML disabled
    paragraphs = [p.strip("\n") for p in _PARAGRAPHS.split(body.strip()) if p.strip()]
    return Markup("\n").join(
        Markup("<p>{}</p>").format(Markup("<br>\n").join(escape(line) for line in p.split("\n")))
        for p in paragraphs
    )


def update_context(
    *, subject: str, body: str, body_format: BodyFormat, campaign_title: str, unsubscribe_url: str
) -> dict[str, Any]:
    """The ``campaign_update`` template's values (also what the staff preview uses)."""
    return {
        "update_subject": subject,
        "body_text": body.strip("\n"),
        "body_html": body_html(body, body_format),
        "campaign_title": campaign_title,
        "unsubscribe_url": unsubscribe_url,
    }


# --- reading -------------------------------------------------------------------------------------------


async def _campaign(session: AsyncSession, ref: Ref) -> Campaign:
    campaign = await campaigns.get_campaign(session, ref)
    if campaign is None:
        raise CampaignNotFound(f"No campaign {ref.text!r}.")
    return campaign


async def _update(
    session: AsyncSession, campaign: Campaign, update_id: str, *, for_update: bool = False
) -> CampaignUpdate:
    try:
        parsed = uuid.UUID(update_id)
    except ValueError:
        raise UpdateNotFound(f"No update {update_id!r}.") from None
    update = await repository.get_update(session, parsed, campaign_id=campaign.id, for_update=for_update)
    if update is None:
        raise UpdateNotFound(f"No update {update_id!r}.")
    return update


async def _counts(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, UpdateCounts]:
    counts: dict[uuid.UUID, UpdateCounts] = {i: UpdateCounts() for i in ids}
    for reference, state, n in await repository.message_counts(session, ids, KIND):
        entry = counts[reference]
        setattr(entry, state.value, n)
        entry.total += n
    return counts


def _read(update: CampaignUpdate, counts: UpdateCounts) -> UpdateRead:
    return UpdateRead(
        id=update.id,
        campaign=update.campaign_id,
        state=update.state,
        format=update.format,
        content={lang: UpdateText.model_validate(value) for lang, value in update.content.items()},
        created_at=update.created_at,
        updated_at=update.updated_at,
        created_by=update.created_by,
        send_requested_at=update.send_requested_at,
        finished_at=update.finished_at,
        recipients=update.recipients,
        counts=counts,
    )


async def _fresh(session: AsyncSession, update: CampaignUpdate) -> UpdateRead:
    await session.flush()
    await session.refresh(update)
    return _read(update, (await _counts(session, [update.id]))[update.id])


async def list_updates(session: AsyncSession, ref: Ref) -> list[UpdateRead]:
    """A campaign's updates, newest first."""
    campaign = await _campaign(session, ref)
    updates = await repository.list_updates(session, campaign.id)
    counts = await _counts(session, [u.id for u in updates])
    return [_read(u, counts[u.id]) for u in updates]


async def get_update(session: AsyncSession, ref: Ref, update_id: str) -> UpdateRead:
    campaign = await _campaign(session, ref)
    return await _fresh(session, await _update(session, campaign, update_id))


# --- composing -----------------------------------------------------------------------------------------


def _dump(content: Mapping[str, UpdateText], campaign: Campaign) -> dict[str, Any]:
    if campaign.default_language not in content:
        raise UpdateDefaultLanguageMissing(
            f"Give a subject and body in {campaign.default_language!r}, the campaign's default language."
        )
    return {lang: value.model_dump() for lang, value in content.items()}


async def create_update(
    session: AsyncSession, principal: Principal, ref: Ref, body: UpdateCreate
) -> UpdateRead:
    campaign = await _campaign(session, ref)
    update = CampaignUpdate(
        campaign_id=campaign.id,
        content=_dump(body.content, campaign),
        format=body.format,
        created_by=principal.id if principal.kind == "user" else None,
    )
    session.add(update)
    return await _fresh(session, update)


async def change_update(session: AsyncSession, ref: Ref, update_id: str, body: UpdateChange) -> UpdateRead:
    """Only drafts change."""
    campaign = await _campaign(session, ref)
    update = await _update(session, campaign, update_id, for_update=True)
    if update.state != UpdateState.draft:
        raise UpdateAlreadySent()
    changes = body.changes()
    if "content" in changes:
        update.content = _dump(changes["content"], campaign)
    if "format" in changes:
        update.format = changes["format"]
    return await _fresh(session, update)


# --- rendering -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    language: str
    subject: str
    text_body: str
    html_body: str | None


class _Renderer:
    """Renders an update once per language, then fills in each recipient's unsubscribe link."""

    def __init__(self, settings: Settings, update: CampaignUpdate, campaign: Campaign) -> None:
        self.settings = settings
        self.update = update
        self.campaign = campaign
        self._cache: dict[str, _Prepared] = {}

    def content_language(self, language: str | None) -> str:
        default = self.campaign.default_language
        return choose_language(list(self.update.content), [language] if language else [], default)

    def _prepared(self, language: str) -> _Prepared:
        if language not in self._cache:
            text_ = UpdateText.model_validate(self.update.content[language])
            context = update_context(
                subject=text_.subject,
                body=text_.body,
                body_format=BodyFormat(self.update.format),
                campaign_title=title_in(self.campaign.translations, language, self.campaign.default_language),
                unsubscribe_url=_UNSUBSCRIBE_PLACEHOLDER,
            )
            rendered = render(KIND, context, language=language, fallback=self.campaign.default_language)
            self._cache[language] = _Prepared(language, text_.subject, rendered.text_body, rendered.html_body)
        return self._cache[language]

    def message(
        self,
        *,
        dedup_key: str,
        kind: str,
        category: MessageCategory,
        address: str,
        canonical: str,
        language: str | None,
    ) -> NewMessage:
        chosen = self.content_language(language)
        prepared = self._prepared(chosen)
        token = unsubscribe.issue(self.settings, canonical)
        link = unsubscribe.page_url(self.settings, token)
        html = prepared.html_body
        return NewMessage(
            dedup_key=dedup_key,
            kind=kind,
            category=category,
            to_address=address,
            subject=prepared.subject,
            text_body=prepared.text_body.replace(_UNSUBSCRIBE_PLACEHOLDER, link),
            html_body=html.replace(_UNSUBSCRIBE_PLACEHOLDER, str(escape(link))) if html else None,
            headers=unsubscribe.headers(self.settings, token),
            language=chosen,
            reference_id=self.update.id,
        )


# --- test and send -------------------------------------------------------------------------------------


async def send_test(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    ref: Ref,
    update_id: str,
    language: str | None,
) -> tuple[uuid.UUID | None, str]:
    """Queue the update to the signed-in user's own address (category ``staff``: never suppressed as an
    update would be), rendered as a recipient in ``language`` would get it."""
    campaign = await _campaign(session, ref)
    update = await _update(session, campaign, update_id)
    user = await users.get_user(session, principal.id) if principal.kind == "user" else None
    if user is None:
        raise NoOwnEmail()
    try:
        canonical = canonical_email(user.email)
    except InvalidEmail:
        raise NoOwnEmail("Your account's email cannot receive mail.") from None
    renderer = _Renderer(settings, update, campaign)
    message = renderer.message(
        dedup_key=f"update-test:{update.id}:{uuid.uuid4()}",
        kind=TEST_KIND,
        category=MessageCategory.staff,
        address=user.email,
        canonical=canonical,
        language=language,
    )
    queued = await queue_many(session, [message])
    return next(iter(queued), None), message.language or campaign.default_language


async def start_sending(
    session: AsyncSession, principal: Principal, ref: Ref, update_id: str, *, now: datetime | None = None
) -> UpdateRead:
    """Draft → sending, and the first batch's job; a second call is a 409."""
    campaign = await _campaign(session, ref)
    update = await _update(session, campaign, update_id, for_update=True)
    if update.state != UpdateState.draft:
        raise UpdateAlreadySent()
    update.state = UpdateState.sending
    update.send_requested_at = now or datetime.now(UTC)
    update.send_requested_by = principal.id if principal.kind == "user" else None
    outbox.enqueue(session, SEND_TASK, update_id=update.id)
    return await _fresh(session, update)


@dataclass(frozen=True)
class BatchResult:
    queued: int
    recipients: int
    done: bool


async def send_batch(
    session: AsyncSession, settings: Settings, update_id: uuid.UUID, *, now: datetime | None = None
) -> BatchResult:
    """Queue the next batch of the update's messages, move the cursor, and enqueue the next batch's job
    (or mark the update sent), all in the caller's transaction."""
    update = await repository.get_update(session, update_id, for_update=True)
    if update is None or update.state != UpdateState.sending:
        return BatchResult(0, 0, True)  # deleted, or finished by an earlier run of this job
    campaign = await campaigns.get_campaign(session, Ref.of_id(update.campaign_id))
    assert campaign is not None
    petitions = await campaigns.petition_ids(session, campaign.id)
    limit = settings.update_batch_size
    people = await repository.next_recipients(session, petitions, update.cursor or "", limit)
    queued = 0
    if people:
        renderer = _Renderer(settings, update, campaign)
        messages = [
            renderer.message(
                dedup_key=f"update:{update.id}:{row.email_canonical}",
                kind=KIND,
                category=MessageCategory.updates,
                address=row.email,
                canonical=row.email_canonical,
                language=row.language,
            )
            for row in await repository.addresses(session, people, petitions)
        ]
        queued = len(await queue_many(session, messages))
        update.cursor = people[-1]
        update.recipients += len(messages)
        update.batches += 1
    done = len(people) < limit
    if done:
        update.state = UpdateState.sent
        update.finished_at = now or datetime.now(UTC)
    else:
        outbox.enqueue(session, SEND_TASK, update_id=update.id)
    await session.flush()
    return BatchResult(queued, len(people), done)
