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

from sqlalchemy import text
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
CONFIRMATION_JOB_SIZE = 5000


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


# One statement decides a batch's signatures with an email, set-based, and returns what the caller needs
# (the batch's paper signatures are matched in Python: their rule is a fuzzy name comparison). All its
# parts read one snapshot, so each is written against the batch as read, never against another's effect:
# - ``batch``: the oldest ``limit`` new signatures (the advisory lock keeps other pipelines out);
# - ``emailed``: each one's counted signature (``first_id``): the person's earlier one on the petition
#   (``petition_signers``) or else the batch's first of that person, oldest first as always;
# - ``carried``: what the duplicates pass on to the counted signature: an opt-in (with the highest consent
#   version) and an attestation;
# - ``decided`` writes each row's state (the batch's counted rows take on what they carry in the same
#   update), ``carried_back`` writes what earlier counted signatures take on, ``signers`` records the new
#   counted ones, ``resubscribed`` lifts one-click unsubscribes an explicit opt-in overrides;
# - ``needing``: one signature per person that gets a confirmation link: a new signer, or someone signing
#   again who has not confirmed yet (and was not asked in this batch); the latest of their signatures.
_EMAIL_BATCH = text(
    "WITH batch AS MATERIALIZED ("  # noqa: S608 - constant SQL: the resubscribe part names a CTE
    " SELECT id, petition_id, email_canonical, name_key, postal_key, country, opt_in, consent_version,"
    " created_at, attested, send_confirmation_mail, confirmed_at FROM signatures"
    " WHERE state = 'new' ORDER BY created_at, id LIMIT :limit),"
    " emailed AS MATERIALIZED ("
    " SELECT b.*, ps.signature_id IS NOT NULL AS earlier,"
    " coalesce(ps.signature_id, first_value(b.id) OVER ("
    "  PARTITION BY b.petition_id, b.email_canonical ORDER BY b.created_at, b.id)) AS first_id"
    " FROM batch b LEFT JOIN petition_signers ps"
    " ON ps.petition_id = b.petition_id AND ps.email_canonical = b.email_canonical"
    " WHERE b.email_canonical IS NOT NULL),"
    " carried AS MATERIALIZED ("
    " SELECT first_id, bool_and(earlier) AS earlier, bool_or(opt_in) AS opt_in,"
    " max(consent_version) FILTER (WHERE opt_in) AS consent_version, bool_or(attested) AS attested"
    " FROM emailed WHERE id <> first_id GROUP BY first_id),"
    " decided AS ("
    " UPDATE signatures s SET"
    " state = CASE WHEN e.first_id = s.id THEN 'unique' ELSE 'duplicate' END,"
    " duplicate_of = nullif(e.first_id, s.id),"
    " opt_in = s.opt_in OR coalesce(c.opt_in, false),"
    " consent_version = greatest(s.consent_version, c.consent_version),"
    " attested = s.attested OR coalesce(c.attested, false)"
    " FROM emailed e LEFT JOIN carried c ON c.first_id = e.id"
    " WHERE s.id = e.id),"
    " carried_back AS ("
    " UPDATE signatures f SET"
    " opt_in = f.opt_in OR c.opt_in,"
    " consent_version = greatest(f.consent_version, c.consent_version),"
    " attested = f.attested OR c.attested"
    " FROM carried c WHERE f.id = c.first_id AND c.earlier"
    " AND (c.opt_in OR (c.attested AND NOT f.attested))),"
    " signers AS ("
    " INSERT INTO petition_signers (petition_id, email_canonical, signature_id)"
    " SELECT petition_id, email_canonical, id FROM emailed WHERE id = first_id ON CONFLICT DO NOTHING),"
    f" resubscribed AS ({unsubscribe.resubscribe_sql('emailed')}),"
    " needing AS ("
    " SELECT DISTINCT ON (e.first_id) e.id FROM emailed e JOIN signatures f ON f.id = e.first_id"
    " WHERE e.send_confirmation_mail AND e.confirmed_at IS NULL AND (e.id = e.first_id OR"
    " (f.confirmed_at IS NULL AND (e.earlier OR NOT f.send_confirmation_mail)))"
    " ORDER BY e.first_id, e.created_at DESC)"
    " SELECT (SELECT count(*) FROM batch) AS processed,"
    " (SELECT array_agg(DISTINCT petition_id) FROM batch) AS petitions,"
    " (SELECT count(*) FROM emailed WHERE id <> first_id) AS duplicates,"
    " (SELECT array_agg(id) FROM needing) AS needing,"
    " (SELECT json_agg(json_build_array(id, petition_id, name_key, postal_key, country, attested)"
    "  ORDER BY created_at, id) FROM batch WHERE email_canonical IS NULL) AS paper"
)


async def process_batch(session: AsyncSession, *, limit: int) -> BatchResult:
    """Deduplicate up to ``limit`` new signatures, oldest first, in the caller's transaction."""
    result = BatchResult()
    if not await _lock(session):
        result.locked_out = True
        return result
    # Every join of the batch to signatures and petition_signers must be an index look-up per batch row:
    # planned as a hash join over a sequential scan (the planner's choice for a small or unanalysed table,
    # or a batch as large as the table), each batch would read the whole table, a second a batch at a
    # million rows. Only for the batch's statements: reset before returning (or with the transaction).
    await session.execute(text("SET LOCAL enable_seqscan = off"))
    await _process(session, limit, result)
    await session.execute(text("SET LOCAL enable_seqscan TO DEFAULT"))
    return result


async def _process(session: AsyncSession, limit: int, result: BatchResult) -> None:
    row = (await session.execute(_EMAIL_BATCH, {"limit": limit})).one()
    if not row.processed:
        return
    result.processed = row.processed
    result.petitions = set(row.petitions)
    result.duplicates = row.duplicates
    if row.paper:
        paper = [
            _Paper(
                uuid.UUID(id_), uuid.UUID(petition), PaperIdentity(name or "", postal or "", country or "")
            )
            for id_, petition, name, postal, country, _ in row.paper
        ]
        duplicates, reviews = await _dedup_paper(session, paper)
        result.duplicates += duplicates
        result.reviews += reviews
        attested = [uuid.UUID(item[0]) for item in row.paper if item[5]]
        if attested:
            await pass_attestation(session, attested)
    # One job per batch, or per CONFIRMATION_JOB_SIZE of its signatures: a job issues a token and renders
    # a mail for each, which must not hold the worker's event loop for long.
    for start in range(0, len(row.needing or ()), CONFIRMATION_JOB_SIZE):
        enqueue(session, CONFIRMATION_TASK, signature_ids=row.needing[start : start + CONFIRMATION_JOB_SIZE])


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
                # Two look-ups of the paper index, each on all its columns (the countries as char(2), the
                # column's type: as text, the index could not use them): one ``OR`` of the postal codes
                # scanned every counted paper signature of the country for each batch row, a cost growing
                # with the petition (quadratic over an import).
                "WITH b AS (SELECT DISTINCT * FROM unnest(CAST(:petitions AS uuid[]), "
                "CAST(:countries AS char(2)[]), CAST(:postals AS text[])) "
                "AS b(petition_id, country, postal_key)) "
                "SELECT s.id, s.petition_id, s.name_key, s.postal_key, s.country FROM signatures s "
                "JOIN b ON s.petition_id = b.petition_id AND s.country = b.country "
                "AND s.postal_key = b.postal_key "
                "WHERE s.email_canonical IS NULL AND s.state = 'unique' "
                "UNION ALL "
                "SELECT s.id, s.petition_id, s.name_key, s.postal_key, s.country FROM signatures s "
                "JOIN (SELECT DISTINCT petition_id, country FROM b) AS pc "
                "ON s.petition_id = pc.petition_id AND s.country = pc.country AND s.postal_key IS NULL "
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
                "JOIN unnest(CAST(:petitions AS uuid[]), CAST(:countries AS char(2)[]), "
                "CAST(:names AS text[])) "
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
