"""Who signed: the pure rules that decide whether two signatures come from the same person.

Nothing here touches the database: the pipeline stores what these functions return next to each signature
and compares them in batches. A wrong merge silences a real supporter, so every rule merging two spellings
rests on the provider's documented behaviour; in doubt, spellings stay apart. docs/signatures.md.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass

import idna
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from rapidfuzz import fuzz

__all__ = [
    "AUTO_MERGE_THRESHOLD",
    "REVIEW_THRESHOLD",
    "InvalidEmail",
    "MatchDecision",
    "PaperIdentity",
    "canonical_email",
    "email_domain",
    "match_paper_signature",
    "name_similarity",
    "normalised_country",
    "normalised_name",
    "normalised_postal_code",
]


class InvalidEmail(ValueError):
    """The text is not an email address we can canonicalise. The message never repeats the address."""


# --------------------------------------------------------------------------------------------------------
# Email
# --------------------------------------------------------------------------------------------------------

# Domains that deliver to the same mailbox as another domain, for *every* user name. Only add a pair when
# the provider guarantees it: ``googlemail.com`` is the name Gmail used in Germany and the UK until 2012;
# Google delivers ``x@googlemail.com`` and ``x@gmail.com`` to the same account.
# Deliberately absent:
# - hotmail.com / outlook.com / live.com: separate namespaces; jane@hotmail.com and jane@outlook.com can be
#   two different people.
# - ymail.com / rocketmail.com / yahoo.com: separate addresses, not aliases of one mailbox.
# - icloud.com / me.com / mac.com: only accounts created before a given year own all three; a newer
#   iCloud account has no me.com address, so we cannot tell from the text alone.
# - protonmail.com / proton.me / pm.me: pm.me is a paid add-on, and not every account holds both long
#   domains; we keep them apart.
_DOMAIN_ALIASES: dict[str, str] = {
    "googlemail.com": "gmail.com",
}

# Gmail ignores dots in the user name (john.smith == johnsmith) — documented by Google ("Dots don't
# matter in Gmail addresses"). This holds for gmail.com only: Google Workspace mailboxes on an
# organisation's own domain do treat dots as significant.
_DOTS_IGNORED: frozenset[str] = frozenset({"gmail.com"})

# Providers that support sub-addressing with ``+`` (user+anything@ is delivered to user@) *and* do not
# allow ``+`` in user names, so stripping the tag can never join two accounts:
# - Gmail (gmail.com; googlemail.com is mapped to it first);
# - Microsoft consumer mail (Outlook.com and its legacy Hotmail, Live and MSN domains, plus the most common
#   country domains). User names are letters, digits, ``.``, ``-`` and ``_`` only;
# - Proton Mail and Fastmail, both of which document plus addressing.
# Yahoo is deliberately *not* here: its "disposable addresses" are ``basename-keyword@yahoo.com``, where
# the base name is a second name the user picks, not the account's address. Cutting at ``-`` would turn
# them into ``basename@yahoo.com``, which may be somebody else's real mailbox; and Yahoo does not document
# ``+`` sub-addressing at all. A custom domain
# (a union's own mail server) may or may not use ``+`` as a separator, so it is left alone.
_PLUS_TAGS: frozenset[str] = frozenset(
    {
        "gmail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "outlook.fr",
        "outlook.de",
        "outlook.es",
        "outlook.it",
        "hotmail.co.uk",
        "hotmail.fr",
        "hotmail.de",
        "hotmail.es",
        "hotmail.it",
        "hotmail.nl",
        "hotmail.be",
        "live.co.uk",
        "live.fr",
        "live.de",
        "live.nl",
        "live.be",
        "live.it",
        "proton.me",
        "protonmail.com",
        "protonmail.ch",
        "pm.me",
        "fastmail.com",
        "fastmail.fm",
    }
)


_MAX_LOCAL_OCTETS = 64  # RFC 5321 §4.5.3.1.1; email-validator only enforces the total length


# The fast path of :func:`canonical_email`: an ASCII address (already trimmed and lower-cased) whose local
# part is a dot-atom (RFC 5322 §3.2.3) and whose domain is made of plain letter-digit-hyphen labels ending in
# an all-letter top-level label. For such an address email-validator's checks reduce to these patterns and the
# length limits below, and IDNA leaves the domain as it is, so the result is the same without running
# either. Anything else (Unicode, quotes, ``xn--`` or other ``--`` labels, special-use names, the lengths
# at the limits) takes the full path; tests/test_email_fast_path.py shows that both agree.
_ATEXT = r"a-z0-9!#$%&'*+/=?^_`{|}~-"
_FAST_LOCAL = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*\Z")
_FAST_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_FAST_DOMAIN = re.compile(rf"(?:{_FAST_LABEL}\.)+[a-z]{{2,63}}\Z")
# email-validator refuses these names and every domain under them.
_SPECIAL_USE = tuple(SPECIAL_USE_DOMAIN_NAMES)
_SPECIAL_USE_SUFFIXES = tuple(f".{name}" for name in _SPECIAL_USE)  # the domain always has a dot here
_MAX_ADDRESS_OCTETS = 254  # RFC 5321 §4.5.3.1.3, as email-validator enforces it
_MAX_DOMAIN_OCTETS = 253


def _fast_parts(text: str) -> tuple[str, str] | None:
    """``(local part, domain)`` of ``text`` (NFKC, trimmed, lower case) when the fast path can decide it is
    valid; None when the full path has to decide."""
    if not text.isascii() or len(text) > _MAX_ADDRESS_OCTETS:
        return None
    local, at, domain = text.partition("@")
    if (
        not at
        or len(local) > _MAX_LOCAL_OCTETS
        or len(domain) > _MAX_DOMAIN_OCTETS
        or "--" in domain
        or not _FAST_LOCAL.match(local)
        or not _FAST_DOMAIN.match(domain)
    ):
        return None
    if domain.endswith(_SPECIAL_USE_SUFFIXES):
        return None
    return local, domain


def _full_parts(text: str) -> tuple[str, str]:
    """``(local part, IDNA-encoded domain)`` of ``text`` by email-validator and idna; InvalidEmail if it is
    not a valid address."""
    try:
        parsed = validate_email(
            text,
            check_deliverability=False,
            allow_smtputf8=True,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
        )
    except EmailNotValidError as exc:
        # email-validator's messages describe the rule that failed, not the address.
        raise InvalidEmail(f"Not a valid email address: {exc}") from None

    try:
        domain = idna.encode(parsed.domain, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError:  # pragma: no cover - email-validator already ran the same IDNA checks
        raise InvalidEmail("Not a valid email address: the domain cannot be IDNA-encoded") from None
    return parsed.local_part, domain


def canonical_email(raw: str, *, fast: bool = True) -> str:
    """The one spelling of an email address that stands for its mailbox.

    Steps: Unicode NFKC (full-width ``ｊａｎｅ＠ｅｘａｍｐｌｅ.ｏｒｇ`` becomes ASCII), surrounding whitespace
    trimmed, lower-cased; syntax checked with ``email-validator`` (no quoted local parts, no IP-literal
    domains, no DNS lookups); the domain IDNA-encoded (``bücher.example`` → ``xn--bcher-kva.example``); then
    the provider rules documented on ``_DOMAIN_ALIASES``, ``_DOTS_IGNORED`` and ``_PLUS_TAGS``.

    Lower-casing the local part is not promised by RFC 5321, but every mainstream provider treats it as
    case-insensitive and people type it in any case, so we do too. Plain ASCII addresses take a fast path
    with the same answer (``_fast_parts``; docs/signatures.md); ``fast=False`` never does (for the tests).

    The result is idempotent and a valid address itself. Raises :class:`InvalidEmail` for anything else.
    """
    if raw.isascii():
        text = raw.strip().lower()  # NFKC leaves ASCII text as it is
    else:
        text = unicodedata.normalize("NFKC", raw).strip().lower()
        # Lower-casing can in theory leave a non-NFKC sequence; normalise again so the result is stable.
        text = unicodedata.normalize("NFKC", text)
    parts = _fast_parts(text) if fast else None
    local, domain = parts if parts is not None else _full_parts(text)
    domain = _DOMAIN_ALIASES.get(domain, domain)

    if len(local.encode()) > _MAX_LOCAL_OCTETS:
        raise InvalidEmail("Not a valid email address: the part before the @-sign is too long")
    if domain in _PLUS_TAGS:
        local = local.partition("+")[0]
    if domain in _DOTS_IGNORED:
        local = local.replace(".", "")
    # "+tag@gmail.com" or "jane.+tag@outlook.com" leave no usable user name; no real mailbox looks like that.
    if not local or local.endswith("."):
        raise InvalidEmail("Not a valid email address: no user name is left once the tag is removed")
    return f"{local}@{domain}"


def email_domain(canonical: str) -> str:
    """The domain part of a canonical address (ASCII, lower case; e.g. for per-domain rate limits and
    bulk invalidation). Pass the output of :func:`canonical_email`."""
    local, at, domain = canonical.rpartition("@")
    if not at or not local or not domain:
        raise InvalidEmail("Not a canonical email address: it has no user name and domain around an @-sign")
    return domain


# --------------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------------

# Letters that carry no decomposable accent, so NFKD alone does not reduce them to an ASCII base letter.
# Applied after case folding, so only lower-case forms are needed (casefold already turns ß into ss).
_TRANSLITERATE = str.maketrans(
    {
        "ø": "o",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "ħ": "h",
        "ı": "i",
        "ŧ": "t",
        "ŀ": "l",
        "ƒ": "f",
        "þ": "th",
        "æ": "ae",
        "œ": "oe",
        "ĳ": "ij",
    }
)

# Apostrophes join what they separate (O'Brien = OBrien = O’Brien); other punctuation separates words.
_APOSTROPHES = frozenset("'’‘ʼ`´")

# Only marks from the Unicode "combining diacritical marks" blocks count as accents. Vowel signs, viramas
# and similar marks of Bengali, Khmer, Devanagari, Thai … are part of the spelling, not decoration:
# stripping them would make different names equal.
_ACCENT_RANGES = (
    (0x0300, 0x036F),  # Combining Diacritical Marks
    (0x1AB0, 0x1AFF),  # … Extended
    (0x1DC0, 0x1DFF),  # … Supplement
    (0x20D0, 0x20FF),  # … for Symbols
    (0xFE20, 0xFE2F),  # Combining Half Marks
)

_WORD_SEPARATORS = frozenset("\u200b")  # zero-width space: Khmer, Thai and Lao separate words with it
_SPACES = re.compile(r"\s+")

# Chinese, Japanese and Korean names are written family name first and usually without spaces; a space
# (王 小明, 山田 太郎) is optional typography. Names written only in these scripts are joined, not sorted.
_CJK_RANGES = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3130, 0x318F),  # Hangul Compatibility Jamo
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xAC00, 0xD7AF),  # Hangul Syllables
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x20000, 0x3FFFF),  # CJK Unified Ideographs Extensions B…
)


def _is_accent(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _ACCENT_RANGES)


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def normalised_name(raw: str) -> str:
    """A person's name reduced to what identifies it: case-folded, accents and punctuation removed,
    whitespace collapsed and the words sorted, so ``Doe, Jane`` == ``jane  DOE`` and
    ``José Núñez-García`` == ``Garcia Jose Nunez``.

    Scripts without accents or letter case (Bengali, Khmer, …) pass through with only punctuation,
    invisible formatting characters and spacing normalised; their vowel signs are kept. A name written
    only in Chinese, Japanese or Korean script is joined without spaces and keeps its order
    (``王 小明`` == ``王小明``): these names are written family name first without spaces, so each character
    is not a word. The result is idempotent and may be empty (a name of only punctuation).
    """
    text = unicodedata.normalize("NFKC", raw).casefold().translate(_TRANSLITERATE)
    out: list[str] = []
    for char in unicodedata.normalize("NFKD", text):
        if char in _APOSTROPHES or _is_accent(char):
            continue
        category = unicodedata.category(char)
        if char in _WORD_SEPARATORS:
            out.append(" ")
        elif category == "Cf":
            continue  # zero-width joiners, soft hyphens, direction marks: invisible, not part of the name
        elif category[0] in "LMN":
            out.append(char)
        else:
            out.append(" ")  # punctuation, symbols, separators, controls
    words = [word for word in _SPACES.split(unicodedata.normalize("NFC", "".join(out))) if word]
    if words and all(_is_cjk(char) for word in words for char in word):
        return "".join(words)
    return " ".join(sorted(words))


def name_similarity(a: str, b: str) -> float:
    """How alike two names are, 0 to 100, on their :func:`normalised_name` forms.

    Uses rapidfuzz's ``token_sort_ratio`` (Indel similarity of the word-sorted strings): word order does not
    matter, a typo costs a few points, and a missing or extra word costs a lot. ``token_set_ratio`` and
    ``WRatio`` were rejected: they score a name against any name containing it as 100 or close to it
    (``Ali`` vs ``Ali Khan``), which would auto-merge different people. Symmetric; a name that normalises
    to nothing scores 0 against everything.
    """
    left, right = normalised_name(a), normalised_name(b)
    if not left or not right:
        return 0.0
    return float(fuzz.token_sort_ratio(left, right, processor=None))


# --------------------------------------------------------------------------------------------------------
# Paper signatures (no email): name + postal code + country
# --------------------------------------------------------------------------------------------------------

AUTO_MERGE_THRESHOLD: float = 92.0
"""From this :func:`name_similarity` up, two paper signatures in the same postal code and country are the
same person and merged without asking: a one-letter typo in a ten-letter name (``Jon Smith`` /
``John Smith`` ≈ 95) passes, two different first names of similar shape (``Mary Smith`` / ``Mark Smith``
= 90) do not."""

REVIEW_THRESHOLD: float = 80.0
"""From this similarity up to :data:`AUTO_MERGE_THRESHOLD`, the pair goes to the staff review queue; below
it the signatures are distinct people."""

_POSTAL_NOISE = re.compile(r"[\s\-‐‑‒–—]+")  # whitespace and dashes


def normalised_postal_code(raw: str | None) -> str:
    """Postal code for comparison: NFKC (full-width digits), upper case, whitespace and dashes removed
    (``sw1a 1aa`` → ``SW1A1AA``, ``00-950`` → ``00950``, ``１００－０００１`` → ``1000001``). Dashes in
    Polish, Japanese, Brazilian and Portuguese codes are formatting only. Empty when unknown."""
    if raw is None:
        return ""
    text = _POSTAL_NOISE.sub("", unicodedata.normalize("NFKC", raw).upper())
    # Removing a space can let a combining mark join the letter before it; compose again.
    return unicodedata.normalize("NFKC", text)


def normalised_country(raw: str | None) -> str:
    """Country code for comparison: trimmed, upper case (ISO 3166-1 alpha-2 is validated elsewhere)."""
    if raw is None:
        return ""
    return unicodedata.normalize("NFKC", raw).strip().upper()


class MatchDecision(enum.StrEnum):
    AUTO_MERGE = "auto_merge"
    REVIEW = "review"
    DISTINCT = "distinct"


@dataclass(frozen=True, slots=True)
class PaperIdentity:
    """What identifies a paper signature, already normalised. Build it with :meth:`of`."""

    name: str
    postal_code: str
    country: str

    @classmethod
    def of(cls, name: str, postal_code: str | None, country: str | None) -> PaperIdentity:
        return cls(normalised_name(name), normalised_postal_code(postal_code), normalised_country(country))


def match_paper_signature(
    candidate: PaperIdentity,
    existing: PaperIdentity,
    *,
    auto: float = AUTO_MERGE_THRESHOLD,
    review: float = REVIEW_THRESHOLD,
) -> MatchDecision:
    """Whether ``candidate`` is the same person as ``existing``.

    - Different country, or different postal codes when both are known → ``DISTINCT``, whatever the name.
    - Postal code or country unknown on either side → at best ``REVIEW`` (and only for a name scoring at
      least ``auto``): a name alone within a whole country is too weak to merge without a human.
    - Otherwise the name similarity decides: ``>= auto`` → ``AUTO_MERGE``, ``>= review`` → ``REVIEW``,
      else ``DISTINCT``.
    """
    if not review <= auto:
        raise ValueError("the review threshold must not exceed the auto-merge threshold")
    if candidate.country and existing.country and candidate.country != existing.country:
        return MatchDecision.DISTINCT
    if candidate.postal_code and existing.postal_code and candidate.postal_code != existing.postal_code:
        return MatchDecision.DISTINCT
    if not candidate.name or not existing.name:
        return MatchDecision.DISTINCT
    # The names are already normalised (word-sorted), so compare them directly.
    score = float(fuzz.token_sort_ratio(candidate.name, existing.name, processor=None))
    located = all((candidate.country, existing.country, candidate.postal_code, existing.postal_code))
    if not located:
        return MatchDecision.REVIEW if score >= auto else MatchDecision.DISTINCT
    if score >= auto:
        return MatchDecision.AUTO_MERGE
    if score >= review:
        return MatchDecision.REVIEW
    return MatchDecision.DISTINCT
