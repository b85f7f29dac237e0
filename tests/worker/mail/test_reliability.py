"""Delivery you can trust, with a real ``loom worker`` process: killed (SIGKILL) in the middle of a send
batch and started again, it loses no message and sends none twice; with the SMTP server down, mail waits
and drains once the server is back.

The kill lands while the server is holding a message before accepting it (the server keeps nothing
from a client that went away), so it falls outside the documented crash window — the moment between the
server's acceptance and the worker recording it (see services/worker/mail/sender.py) — which no SMTP client
can close.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.core.config import PROJECT_ROOT
from services.core.db.engine import create_sessionmaker
from tests.mail_helpers import clear_mail, enqueue_many
from tests.smtp_server import SmtpServer

LOOM = str(PROJECT_ROOT / ".venv" / "bin" / "loom")

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(engine: AsyncEngine) -> AsyncIterator[Sessions]:
    factory = create_sessionmaker(engine)
    await clear_mail(factory)
    yield factory
    await clear_mail(factory)


class Workers:
    """``loom worker`` subprocesses pointed at the test database, Redis and SMTP server."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"worker-{len(self.started)}.log").open("wb")
        process = subprocess.Popen([LOOM, "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("worker-*.log")))


@pytest.fixture
def workers(database_url: str, redis_url: str, smtp_server: SmtpServer, tmp_path: Path) -> Iterator[Workers]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LOOM_SMTP_URL": smtp_server.url,
        "LOOM_SMTP_TIMEOUT_SECONDS": "5",
        "LOOM_MAIL_LEASE_SECONDS": "15",  # after the kill, the rest of its batch waits this long
        "LOOM_MAIL_BATCH_SIZE": "50",
        "LOOM_MAIL_POLL_SECONDS": "0.5",
        "LOOM_MAIL_SERVER_BACKOFF_MAX_SECONDS": "1",
        "LOOM_MAIL_RATE_PER_SECOND": "0",
        "LOOM_MAIL_RATE_PER_DOMAIN_PER_MINUTE": "0",
        "LOOM_LOG_JSON": "false",
    }
    group = Workers(env, tmp_path)
    yield group
    group.stop_all()


async def states(sessions: Sessions) -> dict[str, int]:
    async with sessions() as session:
        result = await session.execute(text("SELECT state, count(*) FROM email_messages GROUP BY state"))
        return {row[0]: int(row[1]) for row in result}


async def wait_until_all_sent(sessions: Sessions, total: int, workers: Workers, within: float = 90) -> None:
    deadline = time.monotonic() + within
    while (await states(sessions)).get("sent", 0) < total:
        if time.monotonic() > deadline:
            pytest.fail(f"not all sent: {await states(sessions)}\n{workers.logs()[-4000:]}")
        await asyncio.sleep(0.2)


@pytest.mark.timeout(240)
async def test_a_worker_killed_mid_batch_loses_no_message_and_sends_none_twice(
    sessions: Sessions, smtp_server: SmtpServer, workers: Workers
) -> None:
    total, kill_at = 300, 80
    ids = await enqueue_many(sessions, total)
    smtp_server.delay = 0.005  # slow per message
    in_trap = threading.Event()
    tripped = False

    async def trap(number: int) -> None:
        nonlocal tripped
        if number == kill_at and not tripped:
            tripped = True
            await asyncio.sleep(0.3)  # the previous message's acceptance is recorded by now
            in_trap.set()
            await asyncio.sleep(3)  # holding message 80 when the worker dies

    smtp_server.before_accept = trap
    first = workers.start()
    assert await asyncio.to_thread(in_trap.wait, 90), workers.logs()[-4000:]
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    received_before_restart = len(smtp_server.messages)
    assert received_before_restart == kill_at - 1
    counts = await states(sessions)
    assert counts.get("sent") == kill_at - 1
    assert counts.get("pending") == total - (kill_at - 1)  # nothing lost: the rest is still to send

    workers.start()
    await wait_until_all_sent(sessions, total, workers)
    received = smtp_server.message_ids
    duplicates = [mid for mid, n in collections.Counter(received).items() if n > 1]
    assert duplicates == []
    assert sorted(received) == sorted(f"<{i}@loom.localhost>" for i in ids)
    assert await states(sessions) == {"sent": total}
    assert "@example.org" not in workers.logs()  # no addresses in the logs


@pytest.mark.timeout(240)
async def test_with_the_smtp_server_down_mail_waits_and_drains_when_it_is_back(
    sessions: Sessions, smtp_server: SmtpServer, workers: Workers
) -> None:
    smtp_server.stop()
    workers.start()
    total = 40
    ids = await enqueue_many(sessions, total)
    deadline = time.monotonic() + 90
    while workers.logs().count("sender paused") < 2:  # it tried, found the server down, backed off, again
        assert time.monotonic() < deadline, workers.logs()[-4000:]
        await asyncio.sleep(0.2)
    async with sessions() as session:
        result = await session.execute(text("SELECT state, attempts FROM email_messages"))
        assert {(row[0], row[1]) for row in result} == {("pending", 0)}  # waiting, no attempt burnt

    smtp_server.start()
    await wait_until_all_sent(sessions, total, workers)
    assert sorted(smtp_server.message_ids) == sorted(f"<{i}@loom.localhost>" for i in ids)
