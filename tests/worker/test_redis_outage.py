"""The worker outlives Redis: when Redis goes away the worker keeps its process, starts arq again once
Redis answers, and the work written meanwhile runs — a signature taken during the outage (signing needs no
Redis: tests/api/signatures/test_rate_limits.py) is deduplicated and its confirmation mail reaches the SMTP
server once Redis is back; SIGTERM still stops the worker cleanly."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.core import jobs
from services.core.campaigns.models import Campaign, Petition, PetitionConsentVersion
from services.core.embedded import EmbeddedRedis
from services.core.mail.models import EmailMessage
from services.core.outbox import enqueue
from services.core.outbox.models import OutboxJob
from services.core.signatures.models import PetitionSigner, Signature
from services.core.signatures.pipeline import CONFIRMATION_TASK
from services.worker import runtime
from tests.factories import make_petition, make_signature
from tests.smtp_server import SmtpServer
from tests.test_run import LOOM


async def wait_for(condition: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.timeout(120)
async def test_the_worker_survives_a_redis_outage_and_runs_what_was_written_meanwhile(
    engine: AsyncEngine, database_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    redis_dir = Path(tempfile.mkdtemp(prefix="loom-redis-"))  # short: Unix socket paths are limited
    redis = EmbeddedRedis(redis_dir)
    redis_url = redis.start()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LOOM_LOG_JSON": "false",
        "LOOM_WORKER_HEALTH_CHECK_SECONDS": "1",
        "LOOM_OUTBOX_RELAY_SECONDS": "1",
        "LOOM_OUTBOX_PUBLISH_GRACE_SECONDS": "0",
        "LOOM_SMTP_URL": smtp_server.url,
    }
    log_path = tmp_path / "worker.log"
    log = log_path.open("wb")
    worker = await asyncio.create_subprocess_exec(LOOM, "worker", env=env, stdout=log, stderr=log)
    job_id: uuid.UUID | None = None
    email = f"outage-{uuid.uuid4().hex[:8]}@example.org"
    signature: Signature | None = None
    petition: Petition | None = None
    try:

        async def healthy() -> bool:
            return await runtime.check_health(redis_url, jobs.QUEUE_NAME)

        await wait_for(healthy, 30, "the worker to start")

        redis.stop()

        async def noticed() -> bool:
            return "lost Redis" in log_path.read_text()

        await wait_for(noticed, 30, "the worker to notice")
        async with AsyncSession(engine, expire_on_commit=False) as session:  # written while Redis is away
            job_id = enqueue(session, CONFIRMATION_TASK, signature_ids=[])
            petition = await make_petition(session)
            signature = await make_signature(session, petition, email=email)
            await session.commit()
        await asyncio.sleep(2)
        assert worker.returncode is None, "the worker must not exit when Redis goes away"

        redis = EmbeddedRedis(redis_dir)
        redis.start()

        async def job_done() -> bool:
            async with AsyncSession(engine) as session:
                job = await session.scalar(select(OutboxJob).where(OutboxJob.id == job_id))
                return job is not None and job.completed_at is not None

        await wait_for(job_done, 60, "the job written during the outage to run")

        async def mailed() -> bool:
            return any(email in m.recipients for m in smtp_server.messages)

        await wait_for(mailed, 60, "the confirmation mail of the signature taken during the outage")
        await wait_for(healthy, 30, "the worker to report healthy again")
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(worker.wait(), 30)
        finally:
            log.close()
            redis.stop()
            shutil.rmtree(redis_dir, ignore_errors=True)
            async with engine.begin() as conn:
                if job_id is not None:
                    await conn.execute(delete(OutboxJob).where(OutboxJob.id == job_id))
                await conn.execute(delete(EmailMessage).where(EmailMessage.to_address == email))
                if petition is not None and signature is not None:
                    await conn.execute(
                        delete(OutboxJob).where(
                            OutboxJob.task == CONFIRMATION_TASK,
                            OutboxJob.payload["signature_ids"].astext.contains(str(signature.id)),
                        )
                    )
                    await conn.execute(delete(Signature).where(Signature.petition_id == petition.id))
                    await conn.execute(
                        delete(PetitionSigner).where(PetitionSigner.petition_id == petition.id)
                    )
                    await conn.execute(
                        delete(PetitionConsentVersion).where(
                            PetitionConsentVersion.petition_id == petition.id
                        )
                    )
                    await conn.execute(delete(Petition).where(Petition.id == petition.id))
                    await conn.execute(delete(Campaign).where(Campaign.id == petition.campaign_id))
    assert worker.returncode == 0
    assert "Traceback" not in log_path.read_text()
