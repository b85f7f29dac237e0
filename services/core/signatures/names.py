"""Signers' names: the one piece of text from an unauthenticated request that Loom puts into mail.

:func:`check_name` is the rule for every path that takes a name (form, webhooks, imports): letters and
marks of any script and a little punctuation; no controls, digits, symbols, markup or domain-like text.
:func:`name_for_mail` applies it again when mail is written. docs/security.md, "Signers' names".
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Annotated

from publicsuffixlist import PublicSuffixList
from pydantic import AfterValidator, Field

MAX_NAME_LENGTH = 100

_ZERO_WIDTH_JOINERS = frozenset("\u200c\u200d")  # ZWNJ, ZWJ: part of Persian, Bengali, Sinhala … spelling
_APOSTROPHE_SYMBOLS = frozenset("`\u00b4")  # grave and acute accents typed as apostrophes (O´Brien)
# Punctuation of URLs, addresses and markup; checked on the NFKC form, so full-width look-alikes count too.
_REFUSED_PUNCTUATION = frozenset(":/\\@#?%=;!*_[]{}<>|~^+$&")
# Characters that IDNA reads as a domain's dot.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f0-9:/\\@#?%=;!*_\[\]{}<>|~^+$&]+$"
_WORD_EDGES = "'\"()[],;:!?«»‘’“”"
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=1)
def _suffixes() -> PublicSuffixList:
    # The list shipped with the package; unknown top-level domains are not suffixes.
    return PublicSuffixList(accept_unknown=False)


def _letter_or_mark(char: str) -> bool:
    return unicodedata.category(char)[0] in "LM"


def _refusal(char: str, before: str, after: str) -> str | None:
    """Why ``char`` (between ``before`` and ``after``) cannot be in a name, or None if it can."""
    category = unicodedata.category(char)
    major = category[0]
    if major in "LM" or category == "Zs":
        return None
    if char in "\n\r\v\f\x85\u2028\u2029":
        return "must be one line"
    if char in _ZERO_WIDTH_JOINERS:
        if before and after and _letter_or_mark(before) and _letter_or_mark(after):
            return None
        return "must not contain invisible characters"
    if major in "CZ":  # Cc, Cf, Cs, Co, Cn; Zl, Zp
        return "must not contain control or invisible characters"
    if major == "N":
        return "must not contain digits"
    if char in _APOSTROPHE_SYMBOLS:
        return None
    if major == "S":
        return "must not contain symbols"
    if any(c in _REFUSED_PUNCTUATION for c in unicodedata.normalize("NFKC", char)):
        return f"must not contain {char!r}"
    return None  # other punctuation: dots, commas, hyphens, apostrophes, quotes, scripts' separators


_PLAIN_NAME = re.compile(r"[A-Za-z' -]*\Z")


@lru_cache(maxsize=4096)
def _char_refusal(char: str) -> str | None:
    """:func:`_refusal` of a character whose verdict does not depend on its neighbours (all but the
    zero-width joiners), remembered: a character's Unicode data does not change."""
    return _refusal(char, "", "")


def _looks_like_a_domain(name: str) -> bool:
    """A word with a dot ending in a known top-level domain: ``evil.com``, ``pay.example.co.uk``. A single
    letter before the domain's dot is an initial (``J.Kim``), not a domain anyone can register."""
    folded = unicodedata.normalize("NFKC", name).translate(_DOTS).casefold()
    suffixes = _suffixes()
    for word in folded.split():
        candidate = word.strip(_WORD_EDGES).strip(".")
        if "." not in candidate or ".." in candidate:
            continue
        registrable = suffixes.privatesuffix(candidate)
        if registrable is not None and len(registrable.split(".", 1)[0]) > 1:
            return True
    return False


def check_name(value: str) -> str:
    """``value`` as a signer's name — trimmed, runs of spaces made one — or ValueError with the reason
    (which never repeats the name)."""
    chars = value.strip()
    # Most names are ASCII letters, spaces, hyphens and apostrophes: every one of those passes _refusal, and
    # without a dot nothing reads as a domain, so the per-character walk is skipped.
    plain = _PLAIN_NAME.match(chars) is not None
    if not plain:
        for index, char in enumerate(chars):
            if char in _ZERO_WIDTH_JOINERS:
                before = chars[index - 1] if index else ""
                after = chars[index + 1] if index + 1 < len(chars) else ""
                reason = _refusal(char, before, after)
            else:
                reason = _char_refusal(char)
            if reason:
                raise ValueError(f"a name {reason}")
    name = _SPACES.sub(" ", chars)
    if not name:
        raise ValueError("a name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"a name has at most {MAX_NAME_LENGTH} characters")
    if not any(unicodedata.category(c)[0] == "L" for c in name):
        raise ValueError("a name needs letters")
    if not plain and _looks_like_a_domain(name):
        raise ValueError("a name must not look like a web address (write initials with a space: 'J. Doe')")
    return name


def name_for_mail(value: str | None) -> str | None:
    """The name to greet a signer with in mail: the stored name if it passes :func:`check_name` today,
    else none at all (the mail then says "Hello,")."""
    if not value:
        return None
    try:
        return check_name(value)
    except ValueError:
        return None


SignerName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,  # also a cheap bound before the character checks
        # The schema says what a pattern can (no controls, digits or the punctuation of addresses); the
        # rest — symbols, emoji, text that reads as a domain — is in the description. check_name decides
        # it all, with a message that says which rule a name broke.
        json_schema_extra={"pattern": NAME_PATTERN},
        description=f"The signer's name: letters of any script, spaces, apostrophes, hyphens and dots; at "
        f"most {MAX_NAME_LENGTH} characters, one line, no digits, symbols or web addresses.",
        examples=["Jane Doe"],
    ),
    AfterValidator(check_name),
]
