"""A worker whose database is unreachable says so once per loop and backs off, instead of logging an
ERROR for every loop every quarter of a second."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import tempfile
from collections import Counter
from pathlib import Path

import pytest

from services.core.embedded import EmbeddedRedis
from services.worker.periodic import MAX_FAILURE_DELAY_SECONDS, Outage
from tests.test_run import LOOM, free_port

WATCH_SECONDS = 6.0


@pytest.mark.timeout(90)
async def test_an_unreachable_database_is_logged_once_per_loop(tmp_path: Path) -> None:
    redis_dir = Path(tempfile.mkdtemp(prefix="loom-redis-"))  # short: Unix socket paths are limited
    redis = EmbeddedRedis(redis_dir)
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/loom",  # nothing listens there
        "REDIS_URL": redis.start(),
        "LOOM_ENV": "test",
        "LOOM_LOG_JSON": "true",
        "LOOM_LOG_LEVEL": "INFO",
        "LOOM_SIGNATURE_PIPELINE_SECONDS": "0.25",
        "LOOM_WEBHOOK_POLL_SECONDS": "0.5",
        "LOOM_MAIL_POLL_SECONDS": "0.5",
        "LOOM_SMTP_URL": f"smtp://127.0.0.1:{free_port()}",
    }
    log_path = tmp_path / "worker.log"
    try:
        with log_path.open("wb") as log:
            worker = await asyncio.create_subprocess_exec(LOOM, "worker", env=env, stdout=log, stderr=log)
            try:
                for _ in range(300):  # the loops start with arq
                    if "Starting worker" in log_path.read_text() or worker.returncode is not None:
                        break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(WATCH_SECONDS)
                assert worker.returncode is None, log_path.read_text()
            finally:
                worker.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(worker.wait(), 20)
                except TimeoutError:
                    worker.kill()
                    await worker.wait()
    finally:
        redis.stop()
        shutil.rmtree(redis_dir, ignore_errors=True)

    output = log_path.read_text()
    assert "Starting worker" in output, output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    loggers = {"services.worker.periodic", "services.worker.outbox.relay"}
    complaints = [
        line for line in lines if line["logger"] in loggers and line["level"] in {"ERROR", "WARNING"}
    ]
    # every loop that needs the database failed and said so, once, at ERROR …
    loops = ("signatures.pipeline", "webhooks.deliver", "mail.sender", "outbox.relay")
    errors = Counter(line["message"].split()[1] for line in complaints if line["level"] == "ERROR")
    assert {loop: errors[loop] for loop in loops} == dict.fromkeys(loops, 1), output
    # … and nothing more in these seconds: it backs off, and repeats are logged at most once a minute
    assert len(complaints) == len(loops), output


def test_an_outage_backs_off_to_a_cap_repeats_once_a_minute_and_says_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    outage = Outage("some.loop", clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="services.worker.periodic")
    delays = []
    for _ in range(12):
        delays.append(outage.failed(ConnectionRefusedError("Connect call failed"), 0.25))
        now[0] += 10
    # doubling from the loop's interval (jittered to 50-100 %), never above the cap
    assert 0.125 <= delays[0] <= 0.25
    assert 0.25 <= delays[1] <= 0.5
    assert all(d <= MAX_FAILURE_DELAY_SECONDS for d in delays)
    assert delays[-1] >= MAX_FAILURE_DELAY_SECONDS / 2
    outage.succeeded()
    assert outage.failed(ConnectionRefusedError(), 0.25) <= 0.25  # reset: the interval again
    levels = [(r.levelname, r.getMessage().split(" (")[0]) for r in caplog.records]
    assert levels == [
        ("ERROR", "loop some.loop failed: ConnectionRefusedError: Connect call failed"),
        ("WARNING", "loop some.loop still failing"),  # 110 s of failures: one repeat a minute
        ("INFO", "loop some.loop recovered after 12 failures in a row"),
        ("ERROR", "loop some.loop failed: ConnectionRefusedError: "),
    ]
