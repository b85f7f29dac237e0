"""The signature pipeline's batch: deduplicate new signatures, in the caller's transaction.

:func:`process_batch` makes each new signature ``unique`` or a ``duplicate`` (by canonical email, or for
paper by name and postal code, maybe via the review queue), passes consent and attestation on to the
counted signature, and asks for confirmation mails with one job per batch. The worker's loop drives it
(``services.worker.signatures.pipeline``). docs/signatures.md, "The deduplication pipeline".
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.mail import unsubscribe
from services.core.outbox import enqueue
from services.core.signatures.identity import (
    AUTO_MERGE_THRESHOLD,
    REVIEW_THRESHOLD,
    MatchDecision,
    PaperIdentity,
    match_paper_signature,
)

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key: "loom signature pipeline"
PIPELINE_LOCK = 0x6C6F6F6D_7369676E
CONFIRMATION_TASK = "signatures.request_confirmations"


@dataclass
class BatchResult:
    processed: int = 0
    petitions: set[uuid.UUID] = field(default_factory=set)
    duplicates: int = 0
    reviews: int = 0
    locked_out: bool = False  # another worker holds the pipeline


@dataclass(frozen=True, slots=True)
class _Paper:
    id: uuid.UUID
    petition_id: uuid.UUID
    identity: PaperIdentity


async def _lock(session: AsyncSession) -> bool:
    locked = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": PIPELINE_LOCK})
    return bool(locked)


async def process_batch(session: AsyncSession, *, limit: int) -> BatchResult:
    """Deduplicate up to ``limit`` new signatures, oldest first, in the caller's transaction."""
    result = BatchResult()
    if not await _lock(session):
        result.locked_out = True
        return result
    rows = (
        await session.execute(
            text(
                "SELECT id, petition_id, email_canonical, name_key, postal_key, country, opt_in, "
                "consent_version, created_at, attested, send_confirmation_mail FROM signatures "
                "WHERE state = 'new' ORDER BY created_at, id LIMIT :limit"
            ),
            {"limit": limit},
        )
    ).all()
    if not rows:
        return result
    result.processed = len(rows)
    result.petitions = {row.petition_id for row in rows}
    with_email = [row for row in rows if row.email_canonical is not None]
    paper = [
        _Paper(
            row.id,
            row.petition_id,
            PaperIdentity(row.name_key or "", row.postal_key or "", row.country or ""),
        )
        for row in rows
        if row.email_canonical is None
    ]
    if with_email:
        result.duplicates += await _dedup_by_email(session, with_email)
        # A new explicit opt-in lifts an earlier one-click unsubscribe (and nothing else does).
        opted_in = [row for row in with_email if row.opt_in]
        if opted_in:
            await unsubscribe.resubscribe(
                session, [row.email_canonical for row in opted_in], [row.created_at for row in opted_in]
            )
    if paper:
        duplicates, reviews = await _dedup_paper(session, paper)
        result.duplicates += duplicates
        result.reviews += reviews
    attested = [row.id for row in rows if row.attested]
    if attested:
        await pass_attestation(session, attested)
    await _request_confirmations(session, [row.id for row in with_email if row.send_confirmation_mail])
    return result


async def pass_attestation(session: AsyncSession, ids: list[uuid.UUID]) -> None:
    """Make the counted signature of each attested duplicate among ``ids`` attested: an organisation
    vouched for the person, so the person counts (once), whichever of their signatures came first."""
    await session.execute(
        text(
            "UPDATE signatures f SET attested = true FROM signatures d "
            "WHERE d.id = ANY(CAST(:ids AS uuid[])) AND d.state = 'duplicate' AND d.attested "
            "AND f.id = d.duplicate_of AND NOT f.attested"
        ),
        {"ids": ids},
    )


async def _dedup_by_email(session: AsyncSession, rows: list[Row[Any]]) -> int:
    """``rows`` (oldest first) have an email. Every statement joins on the batch's own keys passed as
    arrays (``unnest``), so PostgreSQL looks each up in an index: joining ``petition_signers`` as a table
    made the planner hash all of it, a cost that grew with every signature ever counted."""
    first_of: dict[tuple[uuid.UUID, str], uuid.UUID] = {}
    for row in rows:
        first_of.setdefault((row.petition_id, row.email_canonical), row.id)
    keys = list(first_of)
    await session.execute(
        text(
            "INSERT INTO petition_signers (petition_id, email_canonical, signature_id) "
            "SELECT * FROM unnest(CAST(:petitions AS uuid[]), CAST(:emails AS text[]), CAST(:ids AS uuid[])) "
            "ON CONFLICT DO NOTHING"
        ),
        {"petitions": [k[0] for k in keys], "emails": [k[1] for k in keys], "ids": list(first_of.values())},
    )
    signers = await session.execute(
        text(
            "SELECT ps.petition_id, ps.email_canonical, ps.signature_id FROM petition_signers ps "
            "JOIN unnest(CAST(:petitions AS uuid[]), CAST(:emails AS text[])) AS k(petition_id, email) "
            "ON ps.petition_id = k.petition_id AND ps.email_canonical = k.email"
        ),
        {"petitions": [k[0] for k in keys], "emails": [k[1] for k in keys]},
    )
    counted = {(r.petition_id, r.email_canonical): r.signature_id for r in signers}
    states: list[str] = []
    duplicate_of: list[uuid.UUID | None] = []
    consent: dict[uuid.UUID, int] = {}  # counted signature -> highest consent version a duplicate opted in to
    for row in rows:
        first = counted[(row.petition_id, row.email_canonical)]
        if first == row.id:
            states.append("unique")
            duplicate_of.append(None)
        else:
            states.append("duplicate")
            duplicate_of.append(first)
            if row.opt_in:
                consent[first] = max(consent.get(first, 0), row.consent_version)
    await session.execute(
        text(
            "UPDATE signatures s SET state = b.state, duplicate_of = b.duplicate_of "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:states AS text[]), CAST(:dups AS uuid[])) "
            "AS b(id, state, duplicate_of) WHERE s.id = b.id"
        ),
        {"ids": [row.id for row in rows], "states": states, "dups": duplicate_of},
    )
    if consent:
        # A later signature may give consent the first one did not: the counted signature takes it on.
        await session.execute(
            text(
                "UPDATE signatures first SET opt_in = true, "
                "consent_version = greatest(first.consent_version, d.version) "
                "FROM unnest(CAST(:ids AS uuid[]), CAST(:versions AS int[])) AS d(id, version) "
                "WHERE first.id = d.id"
            ),
            {"ids": list(consent), "versions": list(consent.values())},
        )
    return states.count("duplicate")


async def _dedup_paper(session: AsyncSession, batch: list[_Paper]) -> tuple[int, int]:
    """Match paper signatures against counted paper signatures of the same petition, country and postal
    code (or, when the postal code is unknown, the same normalised name in the same country)."""
    located = [p for p in batch if p.identity.postal_code]
    unlocated = [p for p in batch if not p.identity.postal_code]
    candidates: dict[tuple[uuid.UUID, str, str], list[tuple[uuid.UUID, PaperIdentity]]] = defaultdict(list)
    queries: list[tuple[str, dict[str, Any]]] = []
    if located:
        queries.append(
            (
                "SELECT s.id, s.petition_id, s.name_key, s.postal_key, s.country FROM signatures s "
                "JOIN unnest(CAST(:petitions AS uuid[]), CAST(:countries AS text[]), "
                "CAST(:postals AS text[])) "
                "AS b(petition_id, country, postal_key) "
                "ON s.petition_id = b.petition_id AND s.country = b.country "
                "AND (s.postal_key = b.postal_key OR s.postal_key IS NULL) "
                "WHERE s.email_canonical IS NULL AND s.state = 'unique'",
                {
                    "petitions": [p.petition_id for p in located],
                    "countries": [p.identity.country for p in located],
                    "postals": [p.identity.postal_code for p in located],
                },
            )
        )
    if unlocated:
        queries.append(
            (
                "SELECT s.id, s.petition_id, s.name_key, s.postal_key, s.country FROM signatures s "
                "JOIN unnest(CAST(:petitions AS uuid[]), CAST(:countries AS text[]), CAST(:names AS text[])) "
                "AS b(petition_id, country, name_key) "
                "ON s.petition_id = b.petition_id AND s.country = b.country AND s.name_key = b.name_key "
                "WHERE s.email_canonical IS NULL AND s.state = 'unique'",
                {
                    "petitions": [p.petition_id for p in unlocated],
                    "countries": [p.identity.country for p in unlocated],
                    "names": [p.identity.name for p in unlocated],
                },
            )
        )
    seen: set[uuid.UUID] = set()
    for sql, params in queries:
        for row in await session.execute(text(sql), params):
            if row.id in seen:
                continue
            seen.add(row.id)
            identity = PaperIdentity(row.name_key or "", row.postal_key or "", row.country or "")
            candidates[(row.petition_id, identity.country, identity.postal_code)].append((row.id, identity))

    ids: list[uuid.UUID] = []
    states: list[str] = []
    duplicate_of: list[uuid.UUID | None] = []
    reviews: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, float]] = []
    for item in batch:  # oldest first: a later signature is compared with earlier ones of the batch too
        pool = _pool(candidates, item)
        decision, match, score = _best_match(item.identity, pool)
        ids.append(item.id)
        if decision is MatchDecision.AUTO_MERGE and match is not None:
            states.append("duplicate")
            duplicate_of.append(match)
        elif decision is MatchDecision.REVIEW and match is not None:
            states.append("review")
            duplicate_of.append(None)
            reviews.append((item.id, item.petition_id, match, score))
        else:
            states.append("unique")
            duplicate_of.append(None)
            key = (item.petition_id, item.identity.country, item.identity.postal_code)
            candidates[key].append((item.id, item.identity))
    await session.execute(
        text(
            "UPDATE signatures s SET state = b.state, duplicate_of = b.duplicate_of "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:states AS text[]), CAST(:dups AS uuid[])) "
            "AS b(id, state, duplicate_of) WHERE s.id = b.id"
        ),
        {"ids": ids, "states": states, "dups": duplicate_of},
    )
    if reviews:
        await session.execute(
            text(
                "INSERT INTO signature_reviews (signature_id, petition_id, candidate_id, score) "
                "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:petitions AS uuid[]), "
                "CAST(:candidates AS uuid[]), CAST(:scores AS float8[])) ON CONFLICT DO NOTHING"
            ),
            {
                "ids": [r[0] for r in reviews],
                "petitions": [r[1] for r in reviews],
                "candidates": [r[2] for r in reviews],
                "scores": [r[3] for r in reviews],
            },
        )
    return states.count("duplicate"), len(reviews)


def _pool(
    candidates: dict[tuple[uuid.UUID, str, str], list[tuple[uuid.UUID, PaperIdentity]]], item: _Paper
) -> list[tuple[uuid.UUID, PaperIdentity]]:
    """The counted paper signatures ``item`` may be: same petition and country; same postal code, or
    either postal code unknown."""
    country = item.identity.country
    if item.identity.postal_code:
        return candidates.get((item.petition_id, country, item.identity.postal_code), []) + candidates.get(
            (item.petition_id, country, ""), []
        )
    return [
        entry
        for (petition, c, _), entries in candidates.items()
        if petition == item.petition_id and c == country
        for entry in entries
        if entry[1].name == item.identity.name
    ]


def _best_match(
    identity: PaperIdentity, pool: list[tuple[uuid.UUID, PaperIdentity]]
) -> tuple[MatchDecision, uuid.UUID | None, float]:
    from rapidfuzz import fuzz

    best: tuple[MatchDecision, uuid.UUID | None, float] = (MatchDecision.DISTINCT, None, 0.0)
    rank = {MatchDecision.DISTINCT: 0, MatchDecision.REVIEW: 1, MatchDecision.AUTO_MERGE: 2}
    for candidate_id, candidate in pool:
        decision = match_paper_signature(
            identity, candidate, auto=AUTO_MERGE_THRESHOLD, review=REVIEW_THRESHOLD
        )
        if decision is MatchDecision.DISTINCT:
            continue
        score = float(fuzz.token_sort_ratio(identity.name, candidate.name, processor=None))
        if (rank[decision], score) > (rank[best[0]], best[2]):
            best = (decision, candidate_id, score)
    return best


async def _request_confirmations(session: AsyncSession, ids: list[uuid.UUID]) -> None:
    """One outbox job for the batch: the confirmation emails it calls for."""
    if not ids:
        return
    # One email per person and batch: a new signer, or someone signing again (in a later batch) who has
    # not confirmed yet; the latest of their signatures gets the link.
    needing = (
        await session.scalars(
            text(
                "SELECT DISTINCT ON (coalesce(s.duplicate_of, s.id)) s.id "
                "FROM unnest(CAST(:ids AS uuid[])) AS b(id) JOIN signatures s ON s.id = b.id "
                "LEFT JOIN signatures first ON first.id = s.duplicate_of "
                "WHERE s.confirmed_at IS NULL AND (s.state = 'unique' OR "
                "(s.state = 'duplicate' AND first.confirmed_at IS NULL AND NOT first.id = ANY(:ids))) "
                "ORDER BY coalesce(s.duplicate_of, s.id), s.created_at DESC"
            ),
            {"ids": ids},
        )
    ).all()
    if needing:
        enqueue(session, CONFIRMATION_TASK, signature_ids=list(needing))
