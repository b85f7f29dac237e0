"""Three `loom worker` processes at once, on the real PostgreSQL and a Redis of the test's own: every job,
pipeline tick, mail and webhook delivery takes effect once — no mail twice at the SMTP server (aiosmtpd),
no delivery twice at a real HTTP receiver, counts exact once the work drains. This is what lets the
deployment run any number of workers (docker-compose.yml, docs/scaling.md)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.api.app import create_app
from services.core.campaigns.models import Campaign, Petition, PetitionConsentVersion
from services.core.config import Settings
from services.core.embedded import EmbeddedRedis
from services.core.mail.models import EmailMessage
from services.core.outbox.models import OutboxJob
from services.core.signatures.models import PetitionSigner, Signature
from services.core.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from tests.conftest import TEST_SECRET
from tests.core.webhooks.helpers import make_endpoint
from tests.core.webhooks.receiver import running_receiver
from tests.factories import make_petition
from tests.smtp_server import SmtpServer
from tests.test_run import LOOM

WORKERS = 3
PEOPLE = 30
TWICE = 6  # of them sign a second time: deduplicated, one mail
CONFIRM_TOKEN = re.compile(r"/confirm\?token=([A-Za-z0-9._~-]+)")


async def wait_for(condition: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
async def own_redis() -> AsyncIterator[str]:
    """A Redis of this test's own: its queue and rate limits are nobody else's."""
    directory = Path(tempfile.mkdtemp(prefix="loom-3w-"))  # short: Unix socket paths are limited
    redis = EmbeddedRedis(directory)
    try:
        yield redis.start()
    finally:
        redis.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.timeout(300)
async def test_three_workers_run_every_job_tick_mail_and_delivery_once(
    engine: AsyncEngine,
    settings: Settings,
    database_url: str,
    own_redis: str,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    emails = [f"three-{suffix}-{i}@example.org" for i in range(PEOPLE)]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": own_redis,
        "LOOM_ENV": "test",
        "LOOM_SECRET_KEY": TEST_SECRET,
        "LOOM_LOG_JSON": "false",
        "LOOM_SMTP_URL": smtp_server.url,
        "LOOM_MAIL_POLL_SECONDS": "0.5",
        "LOOM_MAIL_BATCH_SIZE": "4",  # many small batches: the workers take turns on the queue
        "LOOM_WEBHOOKS_ALLOW_PRIVATE_URLS": "true",  # the receiver is on 127.0.0.1
        "LOOM_WEBHOOK_BATCH_SIZE": "3",
        "LOOM_OUTBOX_RELAY_SECONDS": "1",
        "LOOM_WORKER_HEALTH_CHECK_SECONDS": "1",
    }
    app_settings = settings.model_copy(update={"redis_url": own_redis})
    app = create_app(app_settings, database_url=database_url, redis_url=own_redis)
    logs = [tmp_path / f"worker{n}.log" for n in range(WORKERS)]
    workers: list[asyncio.subprocess.Process] = []
    petition: Petition | None = None
    endpoint: WebhookEndpoint | None = None
    with running_receiver() as receiver:
        try:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                petition = await make_petition(session, goal=PEOPLE)
                endpoint = await make_endpoint(session, receiver.url)
                receiver.secrets = [endpoint.secret]
                await session.commit()
            for log in logs:
                with log.open("wb") as out:
                    workers.append(
                        await asyncio.create_subprocess_exec(LOOM, "worker", env=env, stdout=out, stderr=out)
                    )
            async with LifespanManager(app):
                transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
                async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                    for email in [*emails, *emails[:TWICE]]:
                        signed = await http.post(
                            f"/v1/petitions/{petition.slug}/signatures",
                            json={"name": "Three Workers", "email": email, "country": "BD"},
                        )
                        assert signed.status_code == 202, signed.text

                    async def mailed(count: int) -> Callable[[], Awaitable[bool]]:
                        async def enough() -> bool:
                            return len(smtp_server.messages) >= count

                        return enough

                    # The pipeline deduplicates, a confirmation job per batch renders the mail, the
                    # senders share the queue of mail.
                    await wait_for(await mailed(PEOPLE), 120, f"{PEOPLE} confirmation mails")
                    tokens = {}
                    for received in list(smtp_server.messages):
                        body = received.message.get_body(("plain",))
                        assert body is not None
                        found = CONFIRM_TOKEN.search(body.get_content())
                        assert found is not None
                        tokens[received.recipients[0]] = found.group(1)
                    assert sorted(tokens) == sorted(emails)
                    for token in tokens.values():
                        confirmed = await http.post("/v1/signatures/confirm", json={"token": token})
                        assert confirmed.status_code == 200, confirmed.text

                    # Each confirmation: a thank-you mail and a signature.confirmed delivery.
                    await wait_for(await mailed(2 * PEOPLE), 120, "the thank-you mails")

                    async def delivered() -> bool:
                        return len(receiver.received) >= PEOPLE

                    await wait_for(delivered, 120, "the webhook deliveries")

                    async def counted() -> bool:
                        answer = await http.get(f"/v1/petitions/{petition.slug}/count")
                        return answer.status_code == 200 and answer.json()["count"] == PEOPLE

                    await wait_for(counted, 60, f"the public count to reach {PEOPLE}")

                    async def drained() -> bool:
                        async with AsyncSession(engine) as session:
                            left = await session.scalar(
                                select(func.count())
                                .select_from(OutboxJob)
                                .where(OutboxJob.completed_at.is_(None), OutboxJob.failed_at.is_(None))
                            )
                            return left == 0

                    await wait_for(drained, 60, "every outbox job to complete")
                    await asyncio.sleep(3)  # time for a duplicate to show itself
                    assert all(worker.returncode is None for worker in workers), "a worker died"

                    # Mail: each person got exactly a confirmation and a thank-you, each message once.
                    per_person = Counter(r for m in smtp_server.messages for r in m.recipients)
                    assert per_person == Counter(dict.fromkeys(emails, 2))
                    ids = [m.message_id for m in smtp_server.messages]
                    assert len(ids) == len(set(ids)) == 2 * PEOPLE
                    # Webhooks: one delivery per confirmed signature, verified, never repeated.
                    hook_ids = [r.webhook_id for r in receiver.received]
                    assert len(hook_ids) == len(set(hook_ids)) == PEOPLE
                    assert all(r.verified_with == [endpoint.secret] for r in receiver.received)
                    assert sorted(r.json()["data"]["signature_id"] for r in receiver.received) == sorted(
                        {str(r.json()["data"]["signature_id"]) for r in receiver.received}
                    )
                    # Counts exact: the public count, one counted signer per person, in the database too.
                    answer = await http.get(f"/v1/petitions/{petition.slug}/count")
                    assert answer.json()["count"] == PEOPLE
                    async with AsyncSession(engine) as session:
                        signers = await session.scalar(
                            select(func.count())
                            .select_from(PetitionSigner)
                            .where(PetitionSigner.petition_id == petition.id)
                        )
                        assert signers == PEOPLE
                        failed = await session.scalar(
                            select(func.count())
                            .select_from(OutboxJob)
                            .where(OutboxJob.failed_at.is_not(None))
                        )
                        assert failed == 0
                        sent = await session.scalar(
                            select(func.count())
                            .select_from(EmailMessage)
                            .where(EmailMessage.to_address.in_(emails), EmailMessage.sent_at.is_not(None))
                        )
                        assert sent == 2 * PEOPLE
            # The three shared the work: each one's sender was running and each stops cleanly.
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                assert await asyncio.wait_for(worker.wait(), 60) == 0
            for log in logs:
                output = log.read_text()
                assert "mail: sender started" in output
                assert "Traceback" not in output
        finally:
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()
                    await worker.wait()
            await _clean(engine, petition, endpoint, emails)


async def _clean(
    engine: AsyncEngine, petition: Petition | None, endpoint: WebhookEndpoint | None, emails: list[str]
) -> None:
    """The test committed: remove what it wrote, so later tests in this database see none of it."""
    async with engine.begin() as conn:
        await conn.execute(delete(OutboxJob))
        await conn.execute(delete(EmailMessage).where(EmailMessage.to_address.in_(emails)))
        if endpoint is not None:
            await conn.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
            await conn.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint.id))
        if petition is not None:
            await conn.execute(
                delete(WebhookEvent).where(WebhookEvent.data["petition_id"].astext == str(petition.id))
            )
            await conn.execute(delete(Signature).where(Signature.petition_id == petition.id))
            await conn.execute(delete(PetitionSigner).where(PetitionSigner.petition_id == petition.id))
            await conn.execute(
                delete(PetitionConsentVersion).where(PetitionConsentVersion.petition_id == petition.id)
            )
            await conn.execute(delete(Petition).where(Petition.id == petition.id))
            await conn.execute(delete(Campaign).where(Campaign.id == petition.campaign_id))
