"""Identifiers of the registry and the text keys names are compared and searched by: the LEI (ISO 17442,
MOD 97-10 check digits), Open Supply Hub's OS ID (country, year and day, 5 Crockford base-32 characters and
a check character), :func:`fold` (what search compares) and :func:`name_key` (what makes two names one
company). The rules and where they come from: docs/registry.md."""

from __future__ import annotations

import re
import unicodedata

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
OS_ID_LENGTH = 15
# The stored form; hyphens and spaces between the parts are accepted on input.
OS_ID_PATTERN = (
    r"^[A-Za-z]{2}-?[0-9]{7}-?[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{5}-?[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]$"
)
_OS_ID_RE = re.compile(r"[A-Z]{2}[0-9]{7}[0-9A-HJKMNP-TV-Z]{6}")
LEI_PATTERN = r"^[0-9A-Za-z]{18}[0-9]{2}$"
_LEI_RE = re.compile(r"[0-9A-Z]{18}[0-9]{2}")
NAME_KEY_LENGTH = 200
_SPACES = re.compile(r"\s+")
_NOT_WORD = re.compile(r"[\W_]+")


def os_id_check_character(body: str) -> str:
    """The check character of an OS ID's first fourteen characters (upper case)."""
    total = ord(body[0]) + ord(body[1]) + sum(CROCKFORD.index(c) for c in body[2:])
    return CROCKFORD[total % 32]


def normalise_os_id(text: str) -> str:
    """An OS ID in its stored form (upper case, no separators), or ``ValueError`` saying what is wrong."""
    value = text.strip().upper().replace("-", "").replace(" ", "")
    if len(value) != OS_ID_LENGTH or not _OS_ID_RE.fullmatch(value):
        raise ValueError(
            "an OS ID is a country code, 7 digits (year and day) and 6 Crockford base-32 characters, "
            "e.g. BD2019189N7D07Y"
        )
    day = int(value[6:9])
    if not 1 <= day <= 366:
        raise ValueError("the OS ID's day of the year must be between 001 and 366")
    if os_id_check_character(value[:-1]) != value[-1]:
        raise ValueError("the OS ID's check character does not match: a character is mistyped")
    return value


def is_os_id(text: str) -> bool:
    try:
        normalise_os_id(text)
    except ValueError:
        return False
    return True


def lei_is_valid(lei: str) -> bool:
    """Whether ``lei`` (upper case) passes the ISO 17442 format and its MOD 97-10 check."""
    if not _LEI_RE.fullmatch(lei):
        return False
    return int("".join(str(int(c, 36)) for c in lei)) % 97 == 1


def normalise_lei(text: str) -> str:
    value = text.strip().upper()
    if not _LEI_RE.fullmatch(value):
        raise ValueError("an LEI is 18 letters or digits and 2 check digits (ISO 17442)")
    if not lei_is_valid(value):
        raise ValueError(
            "the LEI's check digits do not match (ISO 17442, MOD 97-10): a character is mistyped"
        )
    return value


def fold(text: str) -> str:
    """``text`` as search compares it: compatibility-decomposed, without combining accents, case-folded,
    spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    return _SPACES.sub(" ", stripped.casefold()).strip()


def name_key(name: str) -> str:
    """What makes two names the same company's: folded, punctuation dropped (``H&M`` = ``h & m``)."""
    key = _NOT_WORD.sub(" ", fold(name)).strip() or fold(name)
    return key[:NAME_KEY_LENGTH]  # decomposition can lengthen a name: the key keeps to its column


def search_text(*names: str | None) -> str:
    """The folded names, one per line: the column search matches ``q`` in."""
    return "\n".join(fold(name) for name in names if name)
