"""The `loom` command, run as ops would run it: a real process against the test database."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, text
from sqlalchemy.engine import make_url

from services.core.addresses import database_address, redis_address
from services.core.config import PROJECT_ROOT, Settings
from services.core.db.engine import create_engine
from services.core.users.models import User
from tests.conftest import _create_database, _drop_database
from tests.test_run import free_port

LOOM = str(PROJECT_ROOT / ".venv" / "bin" / "loom")


def loom(*args: str, database_url: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "LOOM_LOG_JSON": "false"}
    return subprocess.run([LOOM, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def admin_email(database_url: str) -> Iterator[str]:
    email = f"cli-admin-{uuid.uuid4().hex[:8]}@example.org"
    yield email

    async def cleanup() -> None:
        engine = create_engine(Settings(), database_url)
        async with engine.begin() as conn:
            await conn.execute(delete(User).where(User.email == email))
        await engine.dispose()

    asyncio.run(cleanup())


def test_create_admin_is_idempotent_and_the_admin_can_log_in(
    admin_email: str, database_url: str, redis_url: str
) -> None:
    first = loom(
        "create-admin", "--email", admin_email, "--password", "first-password-123",
        database_url=database_url, redis_url=redis_url,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "admin created" in first.stdout
    second = loom(
        "create-admin", "--email", admin_email.upper(), "--password", "second-password-456",
        database_url=database_url, redis_url=redis_url,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert "already existed" in second.stdout
    assert admin_email not in first.stderr + second.stderr  # no personal data in logs

    async def count_and_login() -> tuple[int, int, int]:
        engine = create_engine(Settings(), database_url)
        async with engine.connect() as conn:
            count = await conn.scalar(
                text("SELECT count(*) FROM users WHERE lower(email) = :e AND role = 'admin'"),
                {"e": admin_email},
            )
        await engine.dispose()
        from asgi_lifespan import LifespanManager

        from services.api.app import create_app

        app = create_app(
            Settings(env="test", secret_key="x" * 40), database_url=database_url, redis_url=redis_url
        )
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                old = await client.post(
                    "/v1/auth/token", data={"username": admin_email, "password": "first-password-123"}
                )
                new = await client.post(
                    "/v1/auth/token", data={"username": admin_email, "password": "second-password-456"}
                )
        return int(count or 0), old.status_code, new.status_code

    assert asyncio.run(count_and_login()) == (1, 401, 200)


def test_create_admin_rejects_a_bad_email(database_url: str, redis_url: str) -> None:
    result = loom(
        "create-admin", "--email", "not-an-email", "--password", "long-enough-password",
        database_url=database_url, redis_url=redis_url,
    )  # fmt: skip
    assert result.returncode == 1
    assert "email" in result.stderr.lower()


def test_migrate_brings_an_empty_database_to_head(server_url: str, redis_url: str) -> None:
    name = f"loom_cli_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(_create_database(server_url, name))
    try:
        result = loom("migrate", database_url=url, redis_url=redis_url)
        assert result.returncode == 0, result.stderr
        assert "migrated" in result.stdout

        async def tables() -> set[str]:
            engine = create_engine(Settings(), url)
            async with engine.connect() as conn:
                rows = await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname='public'"))
                found = {row[0] for row in rows}
            await engine.dispose()
            return found

        assert {"users", "organisations", "coalitions", "outbox_jobs"} <= asyncio.run(tables())
    finally:
        asyncio.run(_drop_database(server_url, name))


def test_help_lists_the_ops_commands() -> None:
    result = subprocess.run([LOOM, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0
    for command in ("create-admin", "migrate", "serve", "worker", "run", "openapi"):
        assert command in result.stdout


def with_password(url: str, password: str) -> str:
    """The URL with a password (the test servers trust local connections and ignore it)."""
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def wait_for_text(path: Path, pattern: str, process: subprocess.Popen[bytes], seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = path.read_text()
        if re.search(pattern, text):
            return text
        if process.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"{pattern!r} not logged within {seconds} s:\n{path.read_text()[-3000:]}")


@pytest.mark.timeout(120)
def test_a_worker_without_redis_names_the_socket_it_tries_and_waits_longer_each_time(
    database_url: str, tmp_path: Path
) -> None:
    """An outage is reported with the address really used (here a Unix socket; arq's own messages
    said localhost:6379 whatever the URL), never with a password, and retried after 1 s, 2 s, 4 s …"""
    socket_path = tmp_path / "redis.sock"  # nothing listens there
    env = {
        **os.environ,
        "DATABASE_URL": with_password(database_url, "hunter2-db-password"),
        "REDIS_URL": f"unix://{socket_path}",
        "LOOM_LOG_JSON": "false",
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen([LOOM, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_text(log_path, r"lost Redis at .*starting again in 2 s", worker, 60)
    finally:
        worker.send_signal(signal.SIGTERM)  # during the wait: a clean exit
        returncode = worker.wait(timeout=30)
    output = log_path.read_text()
    assert returncode == 0, output
    assert f"worker lost Redis at {socket_path}, db 0 (ConnectionError); starting again in 1 s" in output
    assert f"worker using PostgreSQL at {database_address(database_url)} and Redis at {socket_path}" in output
    assert "localhost" not in output
    assert "6379" not in output
    assert "hunter2" not in output
    assert "Traceback" not in output


@pytest.mark.timeout(120)
def test_the_api_logs_where_it_connects_without_the_password(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": with_password(database_url, "hunter2-db-password"),
        "REDIS_URL": redis_url,
        "LOOM_LOG_JSON": "false",
        "LOOM_API_PORT": str(port),
    }
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        serve = subprocess.Popen([LOOM, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_text(log_path, "Uvicorn running", serve, 60)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
    output = log_path.read_text()
    where = f"PostgreSQL at {database_address(database_url)} and Redis at {redis_address(redis_url)}"
    assert f"API using {where}" in output
    assert "hunter2" not in output


def test_a_stopped_worker_runs_its_exit_handlers_and_skips_the_interpreters_teardown(tmp_path: Path) -> None:
    """``loom worker`` ends through ``_exit_without_finalizing`` once arq has stopped: exit handlers run
    (embedded-server sign-out, log flush), the teardown that frees every object one by one (seconds on a
    loaded machine, when `loom run` gives its worker 2 s) does not."""
    script = tmp_path / "ending.py"
    script.write_text(
        "import atexit, sys\n"
        "from pathlib import Path\n"
        "from services.cli import _exit_without_finalizing\n"
        "out = Path(sys.argv[1])\n"
        "class Torn:\n"
        "    def __del__(self):\n"
        "        with out.open('a') as f: f.write('teardown\\n')\n"
        "kept = Torn()\n"
        "atexit.register(lambda: out.open('a').write('exit handler\\n'))\n"
        "print('buffered', end='')\n"
        "_exit_without_finalizing(3)\n"
    )
    marks = tmp_path / "marks"
    done = subprocess.run(
        [str(Path(LOOM).parent / "python"), str(script), str(marks)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
        check=False,
    )
    assert done.returncode == 3
    assert done.stdout == "buffered"  # flushed before the exit
    assert marks.read_text() == "exit handler\n"
