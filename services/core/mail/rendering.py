"""Rendering email from Jinja2 templates: a subject, a plain-text part and an HTML part per language.

Templates live in ``services/core/mail/templates/<kind>/<language>/`` as ``subject.txt``, ``body.txt``
and (optionally) ``body.html``, which may extend ``_layout.html``. HTML is autoescaped; the text parts
are not (they are not HTML). A language is looked up as asked (``pt-BR``), then by its primary subtag
(``pt``), then in the fallback (the campaign's default language), then in English.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2

LAST_RESORT_LANGUAGE = "en"


@dataclass(frozen=True)
class Rendered:
    language: str  # the language actually rendered
    subject: str
    text_body: str
    html_body: str | None


class TemplateMissing(LookupError):
    """No template of that kind in any language tried."""


def candidate_languages(language: str | None, fallback: str | None) -> list[str]:
    """The languages to try, in order, without repeats."""
    tried: list[str] = []
    for tag in (language, fallback, LAST_RESORT_LANGUAGE):
        if not tag:
            continue
        for candidate in (tag, tag.split("-")[0]):
            if candidate not in tried:
                tried.append(candidate)
    return tried


class Templates:
    """The email templates under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._languages: dict[str, list[str]] = {}

    def _environment(self, *, autoescape: bool) -> jinja2.Environment:
        return jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.root),
            autoescape=autoescape,  # noqa: S701 - off only for the subject and the plain-text part
            undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty string
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    @cached_property
    def _text(self) -> jinja2.Environment:
        return self._environment(autoescape=False)

    @cached_property
    def _html(self) -> jinja2.Environment:
        return self._environment(autoescape=True)

    def kinds(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("_"))

    def languages(self, kind: str) -> list[str]:
        """The languages ``kind`` has templates in (read from the folder once: templates ship with the
        code, and listing a folder per message cost more than rendering it)."""
        known = self._languages.get(kind)
        if known is None:
            folder = self.root / kind
            known = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
            self._languages[kind] = known
        return list(known)

    def choose_language(self, kind: str, language: str | None, fallback: str | None) -> str:
        available = set(self.languages(kind))
        for candidate in candidate_languages(language, fallback):
            if candidate in available:
                return candidate
        raise TemplateMissing(f"no {kind!r} template in any of {candidate_languages(language, fallback)}")

    def render(
        self, kind: str, context: Mapping[str, Any], *, language: str | None, fallback: str | None = None
    ) -> Rendered:
        """Render the ``kind`` templates in the best available language for ``language``."""
        chosen = self.choose_language(kind, language, fallback)
        base = f"{kind}/{chosen}"
        values = {**context, "language": chosen}
        subject = self._text.get_template(f"{base}/subject.txt").render(values)
        text_body = self._text.get_template(f"{base}/body.txt").render(values)
        html_body = (
            self._html.get_template(f"{base}/body.html").render(values)
            if (self.root / kind / chosen / "body.html").exists()
            else None
        )
        return Rendered(chosen, " ".join(subject.split()), text_body, html_body)


TEMPLATES = Templates(Path(__file__).with_name("templates"))


def render(
    kind: str, context: Mapping[str, Any], *, language: str | None, fallback: str | None = None
) -> Rendered:
    """Render one of Loom's own email templates."""
    return TEMPLATES.render(kind, context, language=language, fallback=fallback)
