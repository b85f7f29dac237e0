"""Recount bookkeeping across transactions that really commit: a recount request made while the pipeline
is taking earlier ones is never lost, and a count computed on request never overwrites a fresher one."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.core import jobs
from services.core.campaigns.models import CountPolicy, Petition
from services.core.config import Settings
from services.core.db.engine import create_sessionmaker
from services.core.refs import Ref
from services.core.signatures import confirmation, counts, tokens
from services.core.signatures.models import SignatureState
from services.worker.signatures import pipeline
from tests.factories import drop_petition, make_petition, make_signature
from tests.worker.fixtures import job_queue_name, queue

__all__ = ["job_queue_name", "queue"]


@pytest.fixture
def committed(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
async def petition(committed: async_sessionmaker[AsyncSession]) -> AsyncIterator[Petition]:
    async with committed.begin() as session:
        made = await make_petition(session, count_policy=CountPolicy.confirmed)
    yield made
    async with committed.begin() as session:
        await drop_petition(session, made.id)


async def _unconfirmed(
    committed: async_sessionmaker[AsyncSession], settings: Settings, petition: Petition, n: int
) -> list[str]:
    """``n`` deduplicated, unconfirmed signatures; their confirmation tokens."""
    issued: list[str] = []
    async with committed.begin() as session:
        for _ in range(n):
            signature_id = uuid.uuid4()
            token = tokens.issue(
                settings, signature_id=signature_id, petition_id=petition.id, now=datetime.now(UTC)
            )
            await make_signature(
                session,
                petition,
                id=signature_id,
                state=SignatureState.unique,
                confirmation_nonce_hash=token.nonce_hash,
            )
            issued.append(token.token)
    return issued


async def _cached_count(queue: jobs.JobQueue, petition: Petition) -> int | None:
    body = await counts.cached_body(queue.redis, str(petition.id))
    return None if body is None else int(json.loads(body)["count"])


async def test_a_confirmation_committing_while_the_pipeline_takes_an_earlier_request_is_counted(
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    petition: Petition,
    queue: jobs.JobQueue,
) -> None:
    first, second = await _unconfirmed(committed, settings, petition, 2)
    async with committed.begin() as session:
        await confirmation.confirm(session, settings, first)  # its recount request is committed
    async with committed() as late:
        await confirmation.confirm(late, settings, second)  # asks for a recount too, not committed yet
        tick = await pipeline.run_once(committed, queue, settings)  # takes the first request
        assert petition.id in tick.refreshed
        assert await _cached_count(queue, petition) == 1
        await late.commit()
    await pipeline.run_once(committed, queue, settings)
    assert await _cached_count(queue, petition) == 2


async def test_a_count_computed_on_request_never_overwrites_a_fresher_one(
    committed: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    settings: Settings,
    petition: Petition,
    queue: jobs.JobQueue,
) -> None:
    [token] = await _unconfirmed(committed, settings, petition, 1)
    await queue.redis.delete(counts.COUNT_KEY + str(petition.id))
    # A request that found no cached count and read the database before the confirmation committed …
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        async with AsyncSession(bind=conn) as stale:
            await stale.connection()
            assert (await counts.compute_one(stale, Ref.of_id(petition.id))) is not None
            async with committed.begin() as session:
                await confirmation.confirm(session, settings, token)
            await pipeline.run_once(committed, queue, settings)
            assert await _cached_count(queue, petition) == 1
            # … caches what it counted only after the worker cached the fresher count.
            await counts.load(stale, queue.redis, settings, Ref.of_id(petition.id))
    assert await _cached_count(queue, petition) == 1
