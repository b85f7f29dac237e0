"""`loom serve --workers N` (or ``LOOM_API_WORKERS``): N API processes on one port, answering requests
side by side on the real database and Redis, each stopping on SIGTERM — the deployment that uses more than
one core per machine (docs/scaling.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SECRET
from tests.test_run import LOOM, children, free_port, running

SLOW_START_SECONDS = 7


@contextmanager
def serving(
    argv: list[str], database_url: str, redis_url: str, tmp_path: Path, **extra: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LOOM_ENV": "test",
        "LOOM_SECRET_KEY": TEST_SECRET,
        "LOOM_LOG_JSON": "false",
        "LOOM_API_HOST": "127.0.0.1",
        "LOOM_API_PORT": str(port),
        **extra,
    }
    # Each API process starts slower than uvicorn's default 5 s ping, as on a busy machine: a supervisor
    # that gives up on them replaces them forever and nothing ever answers.
    slow = tmp_path / "slow-start"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(
        "import time\n"
        "from pathlib import Path\n"
        "if b'multiprocessing' in Path('/proc/self/cmdline').read_bytes():\n"
        f"    time.sleep({SLOW_START_SECONDS})\n"
    )
    env["PYTHONPATH"] = str(slow)
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen([LOOM, "serve", *argv], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "loom serve did not become ready"
            time.sleep(0.2)
        yield process, base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def api_processes(process: subprocess.Popen[bytes]) -> set[int]:
    """The uvicorn worker processes under ``loom serve`` (multiprocessing's resource tracker left out)."""
    return {
        pid
        for pid, cmdline in children(process.pid).items()
        if "multiprocessing" in cmdline and "resource_tracker" not in cmdline
    }


def answer_concurrently(base: str, requests: int) -> list[int]:
    """``requests`` GET /healthz, 20 new connections at a time."""

    async def run() -> list[int]:
        import asyncio

        limits = httpx.Limits(max_connections=20, max_keepalive_connections=0)  # new connections: spread
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
            answers = await asyncio.gather(*(client.get("/healthz") for _ in range(requests)))
        return [answer.status_code for answer in answers]

    import asyncio

    return asyncio.run(run())


@pytest.mark.timeout(400)
@pytest.mark.parametrize("how", ["option", "environment"])
def test_two_api_processes_answer_on_one_port_and_stop_on_sigterm(
    how: str, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    argv, extra = (["--workers", "2"], {}) if how == "option" else ([], {"LOOM_API_WORKERS": "2"})
    with serving(argv, database_url, redis_url, tmp_path, **extra) as (process, base):
        workers = api_processes(process)
        assert len(workers) == 2, children(process.pid)
        assert answer_concurrently(base, 200) == [200] * 200
        everything = {process.pid, *api_processes(process)}
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        while running(everything) and time.monotonic() - started < 30:
            time.sleep(0.05)
        assert running(everything) == set(), "SIGTERM must stop every API process"
    assert process.returncode == 0, (tmp_path / "serve.log").read_text()
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_workers_is_at_least_one() -> None:
    refused = subprocess.run([LOOM, "serve", "--workers", "0"], capture_output=True, timeout=60, check=False)
    assert refused.returncode == 2
    assert b"--workers" in refused.stderr
