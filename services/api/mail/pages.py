"""Two tiny HTML pages the API serves itself, so the links in Loom's mail work before any campaign site
exists: ``/confirm`` and ``/unsubscribe``.

A GET only shows a button (mail scanners follow links); its plain form POST confirms or unsubscribes. No
JavaScript, not in the OpenAPI, strict headers. docs/email.md, "The confirm and unsubscribe pages".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from services.api.deps import SessionDep, SettingsDep
from services.api.headers import html_page
from services.api.routing import router as make_router
from services.core.errors import LoomError
from services.core.mail import unsubscribe
from services.core.signatures import confirmation

# The pages' only style, allowed by its hash in their Content-Security-Policy (no inline style attributes).
STYLE = (
    "body{font-family:Helvetica,Arial,sans-serif;max-width:560px;margin:48px auto;padding:0 16px;"
    "line-height:1.5;color:#1a1a1a}h1{font-size:24px}button{padding:12px 20px;background:#b3261e;color:#fff;"
    "border:none;border-radius:4px;font-size:16px;font-weight:bold;cursor:pointer}"
)
# Their URLs hold tokens: a restrictive CSP, no framing (a hidden frame could make the button click
# itself: clickjacking), no referrer, no cache (services/api/headers.py).
router = make_router(include_in_schema=False, dependencies=[html_page(styles=[STYLE])])

TokenQuery = Annotated[str, Query(min_length=1, max_length=2000)]
TokenForm = Annotated[str, Form(min_length=1, max_length=2000)]

_PAGE = Markup(
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
    "<style>{style}</style></head><body><h1>{title}</h1>{body}</body></html>\n"
)


_STYLE = Markup(STYLE)  # noqa: S704 - a constant


def _page(title: str, body: Markup, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=title, body=body, style=_STYLE), status_code=status_code)


def _form(action: str, token: str, label: str, text: str) -> Markup:
    return Markup(
        '<p>{text}</p><form method="post" action="{action}">'
        '<input type="hidden" name="token" value="{token}">'
        '<button type="submit">{label}</button></form>'
    ).format(text=text, action=action, token=token, label=label)


def _problem(error: LoomError) -> HTMLResponse:
    return _page(error.title, Markup("<p>{}</p>").format(error.detail), error.status)


@router.get("/confirm", response_class=HTMLResponse)
async def confirm_page(token: TokenQuery, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    try:
        status = await confirmation.status(session, settings, token)
    except LoomError as error:
        return _problem(error)
    if status.status == "confirmed":
        return _page("Already confirmed", Markup("<p>Your signature is confirmed. Thank you!</p>"))
    return _page(
        "Confirm your signature",
        _form("confirm", token, "Confirm my signature", "One click, and your signature counts."),
    )


@router.post("/confirm", response_class=HTMLResponse)
async def confirm_submit(token: TokenForm, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    try:
        await confirmation.confirm(session, settings, token)
    except LoomError as error:
        await session.rollback()
        return _problem(error)
    return _page(
        "Thank you!",
        Markup(
            "<p>Your signature is confirmed and counted. We have sent you a link to share the petition.</p>"
        ),
    )


@router.get("/unsubscribe", response_class=HTMLResponse)
async def unsubscribe_page(token: TokenQuery, settings: SettingsDep) -> HTMLResponse:
    try:
        unsubscribe.read(settings, token)
    except LoomError as error:
        return _problem(error)
    return _page(
        "Unsubscribe",
        _form("unsubscribe", token, "Unsubscribe", "Stop receiving campaign updates at this address?"),
    )


@router.post("/unsubscribe", response_class=HTMLResponse)
async def unsubscribe_submit(token: TokenForm, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    try:
        await unsubscribe.unsubscribe(session, settings, token)
    except LoomError as error:
        await session.rollback()
        return _problem(error)
    return _page(
        "Unsubscribed",
        Markup(
            "<p>You will receive no more campaign updates. Signing a petition again with updates ticked "
            "subscribes you again.</p>"
        ),
    )
