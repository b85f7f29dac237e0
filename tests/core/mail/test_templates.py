"""Loom's own email templates: every kind in English, French and Spanish, complete, rendering with the
values the message builders give them; update bodies are escaped (text) or safely rendered (Markdown)."""

from __future__ import annotations

from typing import Any

import pytest

from services.core.config import Settings
from services.core.mail import messages
from services.core.mail.rendering import TEMPLATES, render
from services.core.milestones.service import milestone_context
from services.core.updates.models import BodyFormat
from services.core.updates.service import body_html, update_context

KINDS = ("campaign_update", "confirmation", "milestone", "thank_you")
LANGUAGES = ("en", "es", "fr")


def _context(settings: Settings, kind: str) -> dict[str, Any]:
    titles = {"petition_title": "Pay <Your> Workers", "campaign_title": "Clean & Fair"}
    if kind == "confirmation":
        return messages.confirmation_context(settings, name="Ana O'Neil", token="tok-123", **titles)
    if kind == "thank_you":
        return messages.thank_you_context(settings, name=None, slug="pay-your-workers", **titles)
    if kind == "milestone":
        return milestone_context(settings, slug="pay", percent=50, count=500, goal=1000, **titles)
    return update_context(
        subject="News",
        body="We won <script>x</script>.",
        body_format=BodyFormat.text,
        campaign_title="Clean & Fair",
        unsubscribe_url="https://example.org/unsubscribe?token=abc",
    )


def test_every_kind_is_written_in_english_french_and_spanish() -> None:
    assert set(KINDS) <= set(TEMPLATES.kinds())
    for kind in KINDS:
        assert set(LANGUAGES) <= set(TEMPLATES.languages(kind)), kind
        for language in LANGUAGES:
            for part in ("subject.txt", "body.txt", "body.html"):
                assert (TEMPLATES.root / kind / language / part).is_file(), (kind, language, part)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_each_template_renders_in_its_language(settings: Settings, kind: str, language: str) -> None:
    rendered = render(kind, _context(settings, kind), language=language)
    assert rendered.language == language
    assert rendered.subject
    assert "\n" not in rendered.subject
    assert rendered.html_body is not None
    assert rendered.html_body.startswith("<!DOCTYPE html>")
    assert f'<html lang="{language}">' in rendered.html_body
    assert "<script>" not in rendered.html_body  # every value is escaped in HTML
    assert "Clean &amp; Fair" in rendered.html_body


def test_the_translations_differ(settings: Settings) -> None:
    subjects = {
        language: render("confirmation", _context(settings, "confirmation"), language=language).subject
        for language in LANGUAGES
    }
    assert len(set(subjects.values())) == 3
    assert subjects["fr"].startswith("Merci de confirmer")
    assert subjects["es"].startswith("Confirma tu firma")


def test_confirmation_carries_the_link_and_the_name(settings: Settings) -> None:
    rendered = render("confirmation", _context(settings, "confirmation"), language="en")
    assert "http://127.0.0.1:8000/confirm?token=tok-123" in rendered.text_body
    assert 'href="http://127.0.0.1:8000/confirm?token=tok-123"' in (rendered.html_body or "")
    assert "Dear Ana O'Neil," in rendered.text_body  # plain text is not HTML: nothing to escape
    assert "Dear Ana O&#39;Neil," in (rendered.html_body or "")
    # A name that is no name (markup, here) is left out: services/core/signatures/names.py.
    context = {**_context(settings, "confirmation"), "name": None}
    bare = render("confirmation", context, language="en")
    unchecked = messages.confirmation_context(
        settings,
        name="Ana <b>",
        token="tok-123",
        petition_title="Pay <Your> Workers",
        campaign_title="Clean & Fair",
    )
    assert render("confirmation", unchecked, language="en") == bare


def test_a_missing_name_greets_without_one(settings: Settings) -> None:
    rendered = render("thank_you", _context(settings, "thank_you"), language="es")
    assert rendered.text_body.startswith("Hola:")
    assert "http://127.0.0.1:8000/petitions/pay-your-workers" in rendered.text_body


def test_link_settings_fill_in_public_url_and_values(settings: Settings) -> None:
    custom = settings.model_copy(
        update={"confirm_url": "https://act.example.org/c/{token}", "public_url": "https://api.example.org/"}
    )
    assert custom.link(custom.confirm_url, token="abc") == "https://act.example.org/c/abc"
    assert custom.link(custom.petition_url, slug="x") == "https://api.example.org/petitions/x"


def test_link_settings_name_only_known_values() -> None:
    with pytest.raises(ValueError, match="only"):
        Settings(confirm_url="https://act.example.org/{lang}/confirm?t={token}")
    with pytest.raises(ValueError, match="only"):
        Settings(petition_url="https://act.example.org/{slug")


def test_plain_text_bodies_are_escaped_into_paragraphs() -> None:
    html = body_html("Hello <b>all</b> & you\nline two\n\n\nNext <script>", BodyFormat.text)
    assert html == ("<p>Hello &lt;b&gt;all&lt;/b&gt; &amp; you<br>\nline two</p>\n<p>Next &lt;script&gt;</p>")


def test_markdown_bodies_render_without_raw_html_or_unsafe_links() -> None:
    html = body_html(
        "# Title\n\n**bold** <script>alert(1)</script> [ok](https://example.org) [bad](javascript:alert(1))",
        BodyFormat.markdown,
    )
    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert '<a href="https://example.org">ok</a>' in html
    assert 'href="javascript' not in html
