"""Rendering: language fallback, autoescaped HTML, plain text left alone, missing variables refused."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from services.core.mail.rendering import TemplateMissing, Templates, candidate_languages


@pytest.fixture
def templates(tmp_path: Path) -> Templates:
    (tmp_path / "_layout.html").write_text("<html>{% block content %}{% endblock %}</html>")
    for language, greeting in {"en": "Hello", "fr": "Bonjour", "pt": "Olá"}.items():
        folder = tmp_path / "hello" / language
        folder.mkdir(parents=True)
        (folder / "subject.txt").write_text(f"{greeting}\n  {{{{ name }}}}\n")
        (folder / "body.txt").write_text(f"{greeting} {{{{ name }}}}\n")
        (folder / "body.html").write_text(
            '{% extends "_layout.html" %}{% block content %}'
            f"<p>{greeting} {{{{ name }}}}</p>{{% endblock %}}"
        )
    text_only = tmp_path / "plain" / "en"
    text_only.mkdir(parents=True)
    (text_only / "subject.txt").write_text("Plain")
    (text_only / "body.txt").write_text("{{ name }}")
    return Templates(tmp_path)


def test_languages_are_tried_as_asked_then_by_primary_subtag_then_fallback_then_english() -> None:
    assert candidate_languages("pt-BR", "fr") == ["pt-BR", "pt", "fr", "en"]
    assert candidate_languages(None, None) == ["en"]
    assert candidate_languages("en-GB", "en") == ["en-GB", "en"]


def test_renders_the_best_language(templates: Templates) -> None:
    assert templates.render("hello", {"name": "Ana"}, language="pt-BR").subject == "Olá Ana"
    assert templates.render("hello", {"name": "Ana"}, language="de", fallback="fr").language == "fr"
    assert templates.render("hello", {"name": "Ana"}, language="de").language == "en"
    assert templates.kinds() == ["hello", "plain"]


def test_html_is_escaped_and_text_is_not(templates: Templates) -> None:
    rendered = templates.render("hello", {"name": "<b>Ana & Bo</b>"}, language="en")
    assert rendered.html_body == "<html><p>Hello &lt;b&gt;Ana &amp; Bo&lt;/b&gt;</p></html>"
    assert rendered.text_body == "Hello <b>Ana & Bo</b>\n"


def test_the_html_part_is_optional(templates: Templates) -> None:
    assert templates.render("plain", {"name": "x"}, language="en").html_body is None


def test_a_missing_variable_or_template_is_an_error(templates: Templates) -> None:
    with pytest.raises(jinja2.UndefinedError):
        templates.render("hello", {}, language="en")
    with pytest.raises(TemplateMissing):
        templates.render("nothing", {}, language="en")
