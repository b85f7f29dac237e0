"""The deduplication pipeline on real rows: email identity, paper signatures (auto-merge, review,
distinct), consent carried over, one confirmation job per batch, the advisory lock."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.outbox.models import OutboxJob
from services.core.signatures import pipeline
from services.core.signatures.models import Signature, SignatureReview, SignatureState
from tests.factories import make_petition, make_signature


async def _state(db: AsyncSession, signature: Signature) -> tuple[SignatureState, object]:
    await db.refresh(signature)
    return signature.state, signature.duplicate_of


async def test_paper_signatures_merge_review_or_stay_distinct(db: AsyncSession) -> None:
    petition = await make_petition(db, email_required=False)
    first = await make_signature(db, petition, email=None, name="Maria Fernanda Lopez", postal_code="1212")
    await pipeline.process_batch(db, limit=100)
    typo = await make_signature(db, petition, email=None, name="Lopez, Maria Fernanda", postal_code="12-12")
    close = await make_signature(db, petition, email=None, name="Mario Fernandes Lopez", postal_code="1212")
    elsewhere = await make_signature(
        db, petition, email=None, name="Maria Fernanda Lopez", postal_code="9999"
    )
    other = await make_signature(db, petition, email=None, name="Rahima Begum", postal_code="1212")
    result = await pipeline.process_batch(db, limit=100)
    assert (result.processed, result.duplicates, result.reviews) == (4, 1, 1)
    assert await _state(db, first) == (SignatureState.unique, None)
    assert await _state(db, typo) == (SignatureState.duplicate, first.id)
    assert await _state(db, close) == (SignatureState.review, None)
    assert await _state(db, elsewhere) == (SignatureState.unique, None)
    assert await _state(db, other) == (SignatureState.unique, None)
    review = await db.get(SignatureReview, close.id)
    assert review is not None
    assert review.candidate_id == first.id
    assert 80 <= review.score < 92


async def test_paper_signatures_without_postal_code_need_an_exact_name_and_go_to_review(
    db: AsyncSession,
) -> None:
    petition = await make_petition(db, email_required=False)
    first = await make_signature(db, petition, email=None, name="Sok Chea")
    again = await make_signature(db, petition, email=None, name="CHEA Sok")
    other = await make_signature(db, petition, email=None, name="Sok Cheat")
    await pipeline.process_batch(db, limit=100)
    assert await _state(db, first) == (SignatureState.unique, None)
    assert await _state(db, again) == (SignatureState.review, None)
    assert await _state(db, other) == (SignatureState.unique, None)


async def test_email_duplicates_across_batches_and_petitions(db: AsyncSession) -> None:
    petition = await make_petition(db)
    other_petition = await make_petition(db)
    first = await make_signature(db, petition, email="Jane.Doe+x@GMail.com")
    await pipeline.process_batch(db, limit=100)
    second = await make_signature(db, petition, email="JANEDOE@googlemail.com")
    elsewhere = await make_signature(db, other_petition, email="janedoe@gmail.com")
    await pipeline.process_batch(db, limit=100)
    assert await _state(db, first) == (SignatureState.unique, None)
    assert await _state(db, second) == (SignatureState.duplicate, first.id)
    assert await _state(db, elsewhere) == (SignatureState.unique, None)  # one signature per petition


async def test_batches_take_the_oldest_first_and_write_one_confirmation_job(db: AsyncSession) -> None:
    petition = await make_petition(db)
    signatures = [await make_signature(db, petition) for _ in range(5)]
    await db.execute(text("DELETE FROM outbox_jobs"))
    result = await pipeline.process_batch(db, limit=3)
    assert result.processed == 3
    assert [s.state for s in signatures[:3]] == [SignatureState.new] * 3  # not refreshed yet
    states = [(await _state(db, s))[0] for s in signatures]
    assert states == [SignatureState.unique] * 3 + [SignatureState.new] * 2
    await db.flush()
    jobs = (await db.scalars(select(OutboxJob).where(OutboxJob.task == pipeline.CONFIRMATION_TASK))).all()
    assert len(jobs) == 1
    assert sorted(jobs[0].payload["signature_ids"]) == sorted(str(s.id) for s in signatures[:3])


async def test_only_one_pipeline_runs_at_a_time(db: AsyncSession, engine: object) -> None:
    from sqlalchemy.ext.asyncio import AsyncEngine

    assert isinstance(engine, AsyncEngine)
    petition = await make_petition(db)
    await make_signature(db, petition)
    async with engine.connect() as other:
        await other.execute(text("SELECT pg_advisory_lock(:key)"), {"key": pipeline.PIPELINE_LOCK})
        try:
            result = await pipeline.process_batch(db, limit=10)
            assert result.locked_out
            assert result.processed == 0
        finally:
            await other.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": pipeline.PIPELINE_LOCK})
    assert (await pipeline.process_batch(db, limit=10)).processed == 1


def test_count_memo_keeps_a_body_for_its_ttl_only() -> None:
    from services.core.signatures.counts import CountMemo

    memo = CountMemo(ttl=1.0, max_entries=2)
    memo.put("petition", b"{}", now=10.0)
    assert memo.get("petition", now=10.5) == b"{}"
    assert memo.get("petition", now=11.0) is None
    assert memo.get("other", now=10.5) is None
    memo.put("a", b"1", now=10.0)
    memo.put("b", b"2", now=10.0)  # full: starts again
    assert memo.get("a", now=10.1) is None
    assert memo.get("b", now=10.1) == b"2"
    assert CountMemo(ttl=0).get("x", now=0.0) is None


async def test_count_memo_shares_one_fetch_among_the_requests_that_ask_together() -> None:
    import asyncio
    import time

    from services.core.campaigns.errors import PetitionNotFound
    from services.core.signatures.counts import CountMemo

    memo = CountMemo(ttl=60.0)
    release = asyncio.Event()
    calls = 0

    async def fetch() -> bytes:
        nonlocal calls
        calls += 1
        await release.wait()
        return b'{"count": 1}'

    waiting = [asyncio.create_task(memo.refresh("petition", fetch)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [b'{"count": 1}'] * 5
    assert calls == 1
    assert memo.get("petition", time.monotonic()) == b'{"count": 1}'

    async def refused() -> bytes:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise PetitionNotFound("No petition 'hidden'.")

    calls = 0
    results = await asyncio.gather(
        *(memo.refresh("hidden", refused) for _ in range(3)), return_exceptions=True
    )
    assert calls == 1
    assert all(isinstance(result, PetitionNotFound) for result in results)
    assert memo.get("hidden", time.monotonic()) is None  # a refusal is not kept: the next request asks again

    unshared = CountMemo(ttl=0)  # nothing kept, so nothing shared
    calls = 0
    release.set()
    await asyncio.gather(*(unshared.refresh("petition", fetch) for _ in range(3)))
    assert calls == 3


async def test_a_batch_reads_signatures_and_signers_by_index_never_whole(db: AsyncSession) -> None:
    """Each batch looks up its rows' signers and counted signatures by index: planned as a hash join over
    a sequential scan (what the planner picks for small or unanalysed tables), every batch would read the
    whole table, a cost growing with every signature ever stored. The setting that prevents it ends with
    the batch's statement."""
    petition = await make_petition(db, email_required=False)
    first = await make_signature(db, petition, email="ana@example.org")
    await pipeline.process_batch(db, limit=100)
    for email in ("ana@example.org", "ANA@example.org", "ben@example.org", None):
        await make_signature(db, petition, email=email, name="Ana Silva", postal_code="1000")
    # A batch as large as the table: what makes a hash join over a sequential scan look cheapest.
    await db.execute(
        text(
            "INSERT INTO signatures (petition_id, channel, email, email_canonical, consent_version) "
            "SELECT :petition, 'import', e, e, 1 FROM (SELECT 'p' || n || '@example.org' AS e "
            "FROM generate_series(1, 300) AS n) AS g"
        ),
        {"petition": petition.id},
    )
    await db.execute(text("ANALYZE signatures"))
    await db.execute(text("ANALYZE petition_signers"))
    scans = text(
        "SELECT relname, seq_scan FROM pg_stat_xact_user_tables "
        "WHERE relname IN ('signatures', 'petition_signers')"
    )
    before = {row[0]: row[1] for row in await db.execute(scans)}
    result = await pipeline.process_batch(db, limit=1000)
    after = {row[0]: row[1] for row in await db.execute(scans)}
    assert (result.processed, result.duplicates) == (304, 2)
    assert after == before
    assert (await db.execute(text("SHOW enable_seqscan"))).scalar_one() == "on"
    assert (await _state(db, first)) == (SignatureState.unique, None)


async def test_a_large_batch_splits_its_confirmation_requests_into_jobs_of_bounded_size(
    db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each job issues a token and renders a mail per signature: a batch of many thousands of web
    signatures asks in several jobs, each at most CONFIRMATION_JOB_SIZE, every signature in one of them."""
    monkeypatch.setattr(pipeline, "CONFIRMATION_JOB_SIZE", 2)
    petition = await make_petition(db)
    signatures = [await make_signature(db, petition) for _ in range(5)]
    await db.execute(text("DELETE FROM outbox_jobs"))
    assert (await pipeline.process_batch(db, limit=100)).processed == 5
    await db.flush()
    jobs = (await db.scalars(select(OutboxJob).where(OutboxJob.task == pipeline.CONFIRMATION_TASK))).all()
    assert sorted(len(job.payload["signature_ids"]) for job in jobs) == [1, 2, 2]
    asked = sorted(i for job in jobs for i in job.payload["signature_ids"])
    assert asked == sorted(str(s.id) for s in signatures)


async def test_paper_signatures_are_looked_up_on_all_columns_of_a_paper_index(db: AsyncSession) -> None:
    """A paper signature's candidates are read on every column of an index: with a postal code on
    (petition, country, postal code), without one on (petition, country, name). A partial use of an index
    (the country skipped, or no name in it) read every counted paper signature of the petition or country
    for each new one: quadratic over an import."""
    petition = await make_petition(db, email_required=False)
    await db.execute(
        text(
            "INSERT INTO signatures (petition_id, channel, state, name_key, postal_key, country, "
            "consent_version) SELECT :petition, 'import', 'unique', n || ' person', "
            "CASE WHEN n <> 3 THEN 'P' || n END, 'BD', 1 FROM generate_series(1, 2000) AS n"
        ),
        {"petition": petition.id},
    )
    await db.execute(text("ANALYZE signatures"))
    located = await make_signature(db, petition, email=None, name="Person 4", postal_code="P4")
    unlocated = await make_signature(db, petition, email=None, name="Person 3")
    reads = text(
        "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
        "WHERE relname = 'signatures'"
    )
    before = await db.scalar(reads)
    result = await pipeline.process_batch(db, limit=10)
    read = await db.scalar(reads) - before
    assert (result.processed, result.duplicates, result.reviews) == (2, 1, 1)
    assert (await _state(db, located))[0] == SignatureState.duplicate
    assert (await _state(db, unlocated))[0] == SignatureState.review  # no postal code: a person decides
    assert read <= 20  # the batch, the two candidates (and a few around them), not hundreds
