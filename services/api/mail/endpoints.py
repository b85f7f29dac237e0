"""Email endpoints: the staff template preview, and one-click unsubscribe (RFC 8058) for everyone."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from services.api.deps import SessionDep, SettingsDep, StaffOnly
from services.api.headers import html_page
from services.api.problems import problem_responses
from services.api.routing import router as make_router
from services.core.campaigns.errors import PetitionNotFound
from services.core.campaigns.schemas import LanguageTag
from services.core.errors import Forbidden, InvalidToken, Unauthenticated
from services.core.mail import preview as previews
from services.core.mail import unsubscribe
from services.core.mail.unsubscribe import UnsubscribeTokenInvalid, UnsubscribeTokenMissing
from services.core.refs import RefQuery

router = make_router()

_AUTH = (Unauthenticated, InvalidToken, Forbidden)


@router.get(
    "/v1/email-templates",
    tags=["email"],
    summary="List the email templates",
    response_model=list[previews.TemplateKind],
    responses=problem_responses(*_AUTH),
)
async def list_templates(principal: StaffOnly) -> list[previews.TemplateKind]:
    """Each kind of message Loom sends, with the languages it is written in (others fall back to the
    campaign's default language, then English). Network staff only."""
    return previews.kinds()


@router.get(
    "/v1/email-templates/{kind}/preview",
    tags=["email"],
    summary="Preview an email template",
    response_model=previews.Preview,
    responses={
        **problem_responses(*_AUTH, previews.TemplateNotFound, PetitionNotFound),
        200: {
            "content": {"text/html": {}},
            "description": "The preview (JSON), or its HTML part with `format=html`.",
        },
    },
    dependencies=[html_page(inline_styles=True, images=True)],  # the HTML part is a page on this origin
)
async def preview_template(
    kind: Annotated[str, Path(max_length=40, description="The template's kind, e.g. `confirmation`.")],
    session: SessionDep,
    settings: SettingsDep,
    principal: StaffOnly,
    language: Annotated[LanguageTag | None, Query(description="The signer's language.")] = None,
    petition: Annotated[
        RefQuery | None, Query(description="A petition (id or slug) to render it for.")
    ] = None,
    format_: Annotated[
        Literal["json", "html"],
        Query(alias="format", description="`json` (subject, text and HTML), or `html`: the HTML part alone."),
    ] = "json",
) -> previews.Preview | Response:
    """Rendered as it would be sent, for a sample signer (Jane Doe) of `petition` (or of a sample
    petition), in `language` with the usual fallback (the petition's campaign's default language, then
    English). Links carry a visibly fake token. Network staff only."""
    rendered = await previews.preview(session, settings, kind, language=language, petition=petition)
    if format_ == "html":
        return Response(rendered.html or "", media_type="text/html; charset=utf-8")
    return rendered


_UNSUBSCRIBE_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "List-Unsubscribe": {"type": "string", "enum": ["One-Click"]},
                        "token": {"type": "string"},
                    },
                }
            },
            "application/json": {"schema": {"type": "object", "properties": {"token": {"type": "string"}}}},
        },
    }
}


async def _token_from_body(request: Request) -> str | None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            data = await request.json()
        except json.JSONDecodeError as exc:
            raise RequestValidationError(
                [
                    {
                        "type": "json_invalid",
                        "loc": ("body",),
                        "msg": "JSON decode error",
                        "ctx": {"error": exc.msg},
                    }
                ]
            ) from None
        value = data.get("token") if isinstance(data, dict) else None
    elif content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}:
        form = await request.form(max_files=0, max_fields=10)
        value = form.get("token")
    else:
        return None
    return value if isinstance(value, str) and value else None


@router.post(
    "/v1/unsubscribe",
    tags=["email"],
    summary="Unsubscribe from campaign updates (one click)",
    response_model=unsubscribe.Unsubscribed,
    responses=problem_responses(UnsubscribeTokenInvalid, UnsubscribeTokenMissing),
    openapi_extra=_UNSUBSCRIBE_BODY,
)
async def one_click_unsubscribe(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[
        str | None, Query(max_length=2000, description="The token from the message's unsubscribe link.")
    ] = None,
) -> unsubscribe.Unsubscribed:
    """RFC 8058 one-click unsubscribe: mail clients POST `List-Unsubscribe=One-Click` (form-encoded) to
    the URL of the message's `List-Unsubscribe` header, which carries the token; a front end may send
    `{"token": …}` as JSON instead. No login. The address gets no more campaign updates (its pending ones
    are suppressed), but still the confirmation mail of a new signature; signing again with the opt-in
    ticked subscribes it again. Idempotent; a broken or tampered token is a 400."""
    token = token or await _token_from_body(request)
    if not token:
        raise UnsubscribeTokenMissing("Send the token in the query string or the body.")
    return await unsubscribe.unsubscribe(session, settings, token)
