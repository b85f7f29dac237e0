"""Nobody can mail-bomb an address by signing with it: fifty signatures carrying one victim's address (in
several spellings, over many pipeline batches) bring a real SMTP server one confirmation mail, until the
person confirms or a day has passed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.campaigns.models import CountPolicy, Petition
from services.core.config import Settings
from services.worker import runtime
from services.worker.settings import load_tasks
from tests.factories import drop_petition, make_petition
from tests.smtp_server import SmtpServer

SPELLINGS = ("victim.person@gmail.com", "VictimPerson@gmail.com", "victim.person+x@googlemail.com")


@pytest.fixture
async def petition(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[Petition]:
    async with factory.begin() as session:
        made = await make_petition(session, count_policy=CountPolicy.confirmed, goal=None)
    yield made
    async with factory.begin() as session:
        await drop_petition(session, made.id)


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


async def test_fifty_signatures_with_one_address_send_it_one_confirmation_mail(
    committing_client: httpx.AsyncClient,
    petition: Petition,
    factory: async_sessionmaker[AsyncSession],
    job_settings: Settings,
    database_url: str,
    redis_url: str,
    job_queue_name: str,
    smtp_server: SmtpServer,
) -> None:
    load_tasks()
    settings = job_settings.model_copy(
        update={
            "signature_pipeline_seconds": 0.05,
            "smtp_url": SecretStr(smtp_server.url),
            "mail_poll_seconds": 0.2,
        }
    )
    options: dict[str, Any] = runtime.worker_options(
        settings, database_url=database_url, redis_url=redis_url, queue_name=job_queue_name, relay=True
    )

    async def sign(n: int) -> None:
        response = await committing_client.post(
            f"/v1/petitions/{petition.slug}/signatures",
            json={"name": "Jane Doe", "email": SPELLINGS[n % len(SPELLINGS)], "country": "BD"},
        )
        assert response.status_code == 202, response.text

    async def settled() -> bool:
        """Every signature deduplicated and every confirmation job run."""
        async with factory() as session:
            waiting = await session.scalar(
                text(
                    "SELECT (SELECT count(*) FROM signatures WHERE petition_id = :p AND state = 'new') + "
                    "(SELECT count(*) FROM outbox_jobs WHERE completed_at IS NULL AND failed_at IS NULL)"
                ),
                {"p": petition.id},
            )
            mail = await session.scalar(
                text("SELECT count(*) FROM email_messages WHERE to_canonical = :e AND state = 'pending'"),
                {"e": "victimperson@gmail.com"},
            )
        return bool(waiting == 0 and mail == 0)

    def mails() -> int:
        """Messages the SMTP server took for the victim, however the address was spelled."""
        return sum(any("victim" in r.lower() for r in m.recipients) for m in smtp_server.messages)

    async with runtime.running_worker(options):
        for n in range(50):  # one at a time: the pipeline takes them in many batches
            await sign(n)
            await asyncio.sleep(0.02)
        await _eventually(settled, 30, "the signatures and their confirmation jobs")
        await _eventually(lambda: asyncio.sleep(0, mails() >= 1), 10, "the confirmation mail")
        await asyncio.sleep(1)  # any further mail would have arrived by now
        assert mails() == 1
        async with factory() as session:
            batches = await session.scalar(
                text(
                    "SELECT count(*) FROM outbox_jobs WHERE task = 'signatures.request_confirmations' "
                    "AND payload->'signature_ids' ?| (SELECT array_agg(id::text) FROM signatures "
                    "WHERE petition_id = :p)"
                ),
                {"p": petition.id},
            )
        assert (batches or 0) > 1, "the signatures should have come in several batches"

        # A day later the person may be sent a new link — once.
        async with factory.begin() as session:
            await session.execute(
                text(
                    "UPDATE petition_signers SET confirmation_mailed_at = confirmation_mailed_at - "
                    "interval '25 hours' WHERE petition_id = :p"
                ),
                {"p": petition.id},
            )
        for n in range(5):
            await sign(n)
        await _eventually(settled, 30, "the next day's signatures")
        await _eventually(lambda: asyncio.sleep(0, mails() >= 2), 10, "the next day's mail")
        await asyncio.sleep(1)
        assert mails() == 2
