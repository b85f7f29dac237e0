"""Matching a supplier-list row to a facility: cleaned keys for the exact match, rapidfuzz for the rest.
The rules (cleaning, scores, numbers that must agree): docs/registry.md, "Disclosures"."""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process, utils

from services.core.registry.identifiers import fold

_NOT_WORD = re.compile(r"[\W_]+")
_LEGAL = frozenset(
    {
        "ltd",
        "limited",
        "pvt",
        "private",
        "co",
        "company",
        "inc",
        "llc",
        "plc",
        "corp",
        "corporation",
        "sa",
        "srl",
        "gmbh",
        "bv",
        "jsc",
        "sdn",
        "bhd",
        "tbk",
        "pt",
        "the",
    }
)


@functools.lru_cache(maxsize=262_144)  # a list's batches meet the same facilities' names again
def clean(text: str | None) -> str:
    words = _NOT_WORD.sub(" ", fold(text or "")).split()
    kept = [w for w in words if w not in _LEGAL]
    return " ".join(kept or words)


def exact_key(name: str, address: str | None, country: str) -> str:
    return f"{country}|{clean(name)}|{clean(address)}"


def row_key(name: str, address: str | None, country: str) -> str:
    """The row identity decisions are remembered by (a hash: the key column stays short)."""
    return hashlib.sha256(exact_key(name, address, country).encode()).hexdigest()


def numbers(cleaned: str) -> frozenset[str]:
    """The words of a cleaned name that hold digits ("unit 2", "factory 3"): sister sites differ only
    there, so two names whose numbers differ are never a fuzzy match."""
    return frozenset(w for w in cleaned.split() if any(c.isdigit() for c in w))


@dataclass(frozen=True)
class Candidate:
    id: uuid.UUID
    name: str  # cleaned
    address: str  # cleaned

    numbers: frozenset[str] = frozenset()

    @classmethod
    def of(cls, facility_id: uuid.UUID, name: str, address: str | None) -> Candidate:
        cleaned = clean(name)
        return cls(facility_id, cleaned, clean(address), numbers(cleaned))


@dataclass(frozen=True)
class Match:
    facility_id: uuid.UUID
    score: float


def best_match(
    name: str,
    address: str | None,
    candidates: Sequence[Candidate],
    names: Sequence[str] | None = None,
    *,
    floor: float = 0,
) -> Match | None:
    """The candidate scoring highest (0 to 100) against the row, or None without candidates."""
    if not candidates:
        return None
    cleaned, cleaned_address = clean(name), clean(address)
    names = [c.name for c in candidates] if names is None else names
    shortlist = process.extract(
        cleaned,
        names,
        scorer=fuzz.token_sort_ratio,
        processor=utils.default_process,
        limit=10,
        # a name scoring below this cannot reach ``floor`` even with a perfect address
        score_cutoff=max(0.0, (floor - 30) / 0.7),
    )
    wanted = numbers(cleaned)
    best: Match | None = None
    for _, name_score, index in shortlist:
        candidate = candidates[index]
        if candidate.numbers != wanted:
            continue
        score = float(name_score)
        if cleaned_address and candidate.address:
            address_score = fuzz.token_set_ratio(cleaned_address, candidate.address)
            score = 0.7 * score + 0.3 * address_score
        if best is None or score > best.score:
            best = Match(candidate.id, round(score, 1))
    return best
