"""BCP 47 language tags: validation, and choosing the text to serve from ``?lang=`` or
``Accept-Language`` (RFC 9110 q-values, RFC 4647 lookup), falling back to a default language."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from functools import lru_cache

import langcodes

MAX_TAG_LENGTH = 35
# language (2 or 3 letters), then script, region, variants… as hyphen-separated alphanumeric subtags.
TAG_PATTERN = r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$"
_TAG_SHAPE = re.compile(TAG_PATTERN)
_MAX_PREFERENCES = 20


def normalise_tag(value: str) -> str:
    """``value`` as a valid, canonical BCP 47 tag (``pt-br`` → ``pt-BR``); ``ValueError`` otherwise."""
    tag = value.strip()
    canonical = _canonical_tag(tag) if len(tag) <= MAX_TAG_LENGTH else None  # the cache holds short keys
    if canonical is None:
        raise ValueError(f"{value!r} is not a valid BCP 47 language tag")
    return canonical


@lru_cache(maxsize=4096)
def _canonical_tag(tag: str) -> str | None:
    # langcodes takes ~50 µs a tag; a signature batch repeats a handful of tags (none is personal data).
    if not _TAG_SHAPE.fullmatch(tag) or not langcodes.tag_is_valid(tag):
        return None
    language = langcodes.Language.get(tag)
    if not language.is_valid():
        return None
    return langcodes.standardize_tag(tag)


def parse_accept_language(header: str | None) -> list[str]:
    """The tags of an ``Accept-Language`` header, most preferred first (stable for equal q); tags that
    are malformed or have ``q=0`` are dropped, and so is ``*`` (the default language answers it)."""
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[: _MAX_PREFERENCES * 2]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        if not tag or tag == "*" or not 0 < q <= 1:
            continue
        try:
            weighted.append((-q, index, normalise_tag(tag)))
        except ValueError:
            continue
    return [tag for _, _, tag in sorted(weighted)][:_MAX_PREFERENCES]


def choose_language(available: Collection[str], preferences: Sequence[str], default: str) -> str:
    """The first preference ``available`` has, trying each preference as is, then shortened subtag by
    subtag (``de-CH`` → ``de``), then any available tag of the same language (``en`` → ``en-GB``);
    ``default`` when none matches."""
    by_lower = {tag.lower(): tag for tag in available}
    for preference in preferences:
        parts = preference.lower().split("-")
        while parts:
            found = by_lower.get("-".join(parts))
            if found is not None:
                return found
            parts.pop()
        primary = preference.lower().split("-")[0]
        for lower in sorted(by_lower):
            if lower.split("-")[0] == primary:
                return by_lower[lower]
    return default
