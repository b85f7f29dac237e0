"""Staff previews of the email templates, rendered for a sample signature.

A preview uses the same context builders as the real messages, so what staff see is what is sent; only
the signer (Jane Doe), the tokens and, without ``petition``, the petition are samples.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns import repository as campaigns
from services.core.campaigns.errors import PetitionNotFound
from services.core.config import Settings
from services.core.errors import NotFound
from services.core.mail import messages, unsubscribe
from services.core.mail.rendering import TEMPLATES, Rendered, TemplateMissing, render
from services.core.milestones.service import milestone_context
from services.core.refs import Ref
from services.core.updates.models import BodyFormat

SAMPLE_NAME = "Jane Doe"
SAMPLE_TOKEN = "sample-token"  # noqa: S105 - not a secret: a visibly fake token in previews
SAMPLE_UPDATE_SUBJECT = "Sample update: the brands are listening"
SAMPLE_UPDATE_BODY = (
    "Thanks to you, **12,000 people** signed in the first week.\n\n"
    "Next step: we hand the petition over on *Friday*. [Read more](https://example.org/news)."
)


class TemplateNotFound(NotFound):
    code = "email-template-not-found"
    title = "No email template of this kind"


class TemplateKind(BaseModel):
    kind: str = Field(description="The template's kind (`confirmation`, `thank_you`, …).")
    languages: list[str] = Field(description="The languages it is written in.")


class Preview(BaseModel):
    kind: str
    language: str = Field(description="The language rendered (after fallback).")
    subject: str
    text: str
    html: str | None


def kinds() -> list[TemplateKind]:
    return [TemplateKind(kind=kind, languages=TEMPLATES.languages(kind)) for kind in TEMPLATES.kinds()]


async def preview(
    session: AsyncSession, settings: Settings, kind: str, *, language: str | None, petition: Ref | None
) -> Preview:
    """Render ``kind`` for a sample signer in ``language`` (falling back to the petition's campaign's
    default language, then English), about ``petition`` (id or slug) or a sample one."""
    if kind not in TEMPLATES.kinds():
        raise TemplateNotFound(f"No email template {kind!r}.")
    fallback: str | None = None
    petition_translations: dict[str, Any] = {"en": {"title": "Pay Your Workers"}}
    petition_language = "en"
    campaign_translations: dict[str, Any] = {"en": {"title": "Sample campaign"}}
    campaign_language = "en"
    slug, goal = "sample-petition", 1000
    if petition is not None:
        found = await campaigns.get_petition(session, petition)
        if found is None:
            raise PetitionNotFound(f"No petition {petition.text!r}.")
        row, campaign = found
        petition_translations, petition_language = row.translations, row.default_language
        campaign_translations, campaign_language = campaign.translations, campaign.default_language
        slug, goal = row.slug, row.goal or 1000
        fallback = campaign.default_language
    try:
        chosen = TEMPLATES.choose_language(kind, language, fallback)
    except TemplateMissing as exc:  # pragma: no cover - every kind has English
        raise TemplateNotFound(str(exc)) from None
    petition_title = messages.title_in(petition_translations, chosen, petition_language)
    campaign_title = messages.title_in(campaign_translations, chosen, campaign_language)
    context: dict[str, Any]
    if kind == messages.CONFIRMATION:
        context = messages.confirmation_context(
            settings,
            name=SAMPLE_NAME,
            petition_title=petition_title,
            campaign_title=campaign_title,
            token=SAMPLE_TOKEN,
        )
    elif kind == messages.THANK_YOU:
        context = messages.thank_you_context(
            settings,
            name=SAMPLE_NAME,
            petition_title=petition_title,
            campaign_title=campaign_title,
            slug=slug,
        )
    elif kind == "milestone":
        context = milestone_context(
            settings,
            petition_title=petition_title,
            campaign_title=campaign_title,
            slug=slug,
            percent=50,
            count=goal // 2,
            goal=goal,
        )
    elif kind == "campaign_update":
        from services.core.updates.service import update_context

        context = update_context(
            subject=SAMPLE_UPDATE_SUBJECT,
            body=SAMPLE_UPDATE_BODY,
            body_format=BodyFormat.markdown,
            campaign_title=campaign_title,
            unsubscribe_url=unsubscribe.page_url(settings, SAMPLE_TOKEN),
        )
    else:  # pragma: no cover - a template folder without a sample: add one above
        raise TemplateNotFound(f"No sample for email template {kind!r}.")
    rendered: Rendered = render(kind, context, language=chosen)
    return Preview(
        kind=kind,
        language=rendered.language,
        subject=rendered.subject,
        text=rendered.text_body,
        html=rendered.html_body,
    )
