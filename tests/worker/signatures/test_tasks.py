"""The signature pipeline in a real worker: signatures committed over HTTP are deduplicated, counted and
given confirmation tokens by the worker's periodic loop, and the public count catches up within seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.campaigns.models import CountPolicy, Petition
from services.core.config import Settings
from services.worker import runtime
from services.worker.settings import load_tasks
from tests.factories import make_petition


@pytest.fixture
async def petition(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[Petition]:
    async with factory.begin() as session:
        made = await make_petition(session, count_policy=CountPolicy.all_unique)
    yield made
    async with factory.begin() as session:
        await session.execute(
            text(
                "DELETE FROM email_messages WHERE reference_id IN "
                "(SELECT id FROM signatures WHERE petition_id = :p)"
            ),
            {"p": made.id},
        )
        for table in ("signature_reviews", "petition_signers", "petition_count_refresh", "signatures"):
            await session.execute(text(f"DELETE FROM {table} WHERE petition_id = :p"), {"p": made.id})  # noqa: S608
        await session.execute(text("DELETE FROM petitions WHERE id = :p"), {"p": made.id})
        await session.execute(text("DELETE FROM campaigns WHERE id = :c"), {"c": made.campaign_id})


async def test_the_worker_deduplicates_counts_and_requests_confirmations(
    committing_client: httpx.AsyncClient,
    petition: Petition,
    factory: async_sessionmaker[AsyncSession],
    job_settings: Settings,
    database_url: str,
    redis_url: str,
    job_queue_name: str,
) -> None:
    load_tasks()
    options: dict[str, Any] = runtime.worker_options(
        job_settings.model_copy(update={"signature_pipeline_seconds": 0.2}),
        database_url=database_url,
        redis_url=redis_url,
        queue_name=job_queue_name,
        relay=True,
    )
    emails = ["Jane.Doe+x@GMail.com", "janedoe@gmail.com", "JANEDOE@googlemail.com", "ali@example.org"]
    async with runtime.running_worker(options):
        for email in emails:
            response = await committing_client.post(
                f"/v1/petitions/{petition.slug}/signatures",
                json={"name": "Jane Doe", "email": email, "country": "BD"},
            )
            assert response.status_code == 202, response.text
        signed = time.monotonic()
        count = None
        while time.monotonic() - signed < 5:
            response = await committing_client.get(f"/v1/petitions/{petition.slug}/count")
            count = response.json()["count"]
            if count == 2:
                break
            await asyncio.sleep(0.1)
        assert count == 2, "the public count did not catch up within 5 seconds"
        # confirmation jobs (one per batch) issued tokens to both people
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            async with factory() as session:
                requested = await session.scalar(
                    text(
                        "SELECT count(DISTINCT coalesce(duplicate_of, id)) FROM signatures "
                        "WHERE petition_id = :p AND confirmation_nonce_hash IS NOT NULL"
                    ),
                    {"p": petition.id},
                )
            if requested == 2:
                break
            await asyncio.sleep(0.1)
        assert requested == 2
    async with factory() as session:
        states = (
            await session.execute(
                text(
                    "SELECT state, count(*) FROM signatures WHERE petition_id = :p "
                    "GROUP BY state ORDER BY state"
                ),
                {"p": petition.id},
            )
        ).all()
        # ... and queued the emails carrying them, in the same transactions (one per token: a person whose
        # signatures fell into two batches gets a second, newer link)
        mails = (
            await session.execute(
                text(
                    "SELECT DISTINCT m.to_canonical, m.kind FROM email_messages m "
                    "JOIN signatures s ON s.id = m.reference_id WHERE s.petition_id = :p ORDER BY 1"
                ),
                {"p": petition.id},
            )
        ).all()
    assert [tuple(row) for row in states] == [("duplicate", 2), ("unique", 2)]
    assert [tuple(row) for row in mails] == [
        ("ali@example.org", "confirmation"),
        ("janedoe@gmail.com", "confirmation"),
    ]
