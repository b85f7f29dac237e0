"""`loom run` (what `make run` starts) on a machine with no database or Redis configured: embedded servers,
migrations, the API and the worker (started again when it dies); SIGINT (Ctrl-C) stops everything it
started within 5 s, mail backlog or not."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from services.core.config import PROJECT_ROOT, SECRET_FILE, Settings
from services.core.db.engine import create_engine, create_sessionmaker
from services.core.mail.queue import queue_many
from tests.mail_helpers import new_message

LOOM = str(PROJECT_ROOT / ".venv" / "bin" / "loom")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_until_ready(base: str, deadline: float, process: subprocess.Popen[bytes]) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"loom run exited early with {process.returncode}")
        try:
            if (
                httpx.get(f"{base}/healthz", timeout=2).status_code == 200
                and httpx.get(f"{base}/readyz", timeout=5).status_code == 200
            ):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail("loom run did not become ready in time")


def processes() -> Iterator[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every running process (zombies left out)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            yield int(entry), int(fields[1]), cmdline


def processes_using(path: Path) -> list[str]:
    """Command lines of running processes that mention ``path`` (the embedded servers do)."""
    return [cmdline for _, _, cmdline in processes() if str(path) in cmdline]


def pids_using(path: Path) -> set[int]:
    return {pid for pid, _, cmdline in processes() if str(path) in cmdline}


def children(pid: int) -> dict[int, str]:
    return {child: cmdline for child, parent, cmdline in processes() if parent == pid}


def running(pids: set[int]) -> set[int]:
    alive = {pid for pid, _, _ in processes()}
    return pids & alive


def bare_machine_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of a newcomer: no servers configured, everything in ``data_dir``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "LOOM_SMTP_URL", "LOOM_SECRET_KEY"}
    }
    env.update({"LOOM_DATA_DIR": str(data_dir), "LOOM_API_PORT": str(port), **extra})
    return env


def short_data_dir() -> Path:
    data_dir = Path(tempfile.mkdtemp(prefix="loom-run-"))  # short: Unix socket paths are limited
    data_dir.chmod(0o755)  # the embedded PostgreSQL runs as its own system user when we are root
    return data_dir


class LoomRun:
    """`loom run` on a fresh data directory, in a session of its own like a terminal's foreground job."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.data_dir = short_data_dir()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = bare_machine_env(self.data_dir, self.port, **env)
        self.log_path = tmp_path / "run.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [LOOM, "run"], env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        return self.log_path.read_text()

    def child(self, command: str) -> int:
        """The pid of the `loom serve` or `loom worker` this run started."""
        found = [
            pid for pid, cmdline in children(self.process.pid).items() if f"services.cli {command}" in cmdline
        ]
        assert len(found) == 1, children(self.process.pid)
        return found[0]

    def everything(self) -> set[int]:
        """This run's processes: itself, the API, the worker and the embedded servers."""
        return {self.process.pid, *children(self.process.pid), *pids_using(self.data_dir)}

    def ctrl_c(self, within: float) -> float:
        """SIGINT to the process group, as a terminal's Ctrl-C; seconds until every process is gone."""
        pids = self.everything()
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=within + 25)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail("loom run did not stop on SIGINT")
        while running(pids) and time.monotonic() - started < within + 25:
            time.sleep(0.05)
        assert running(pids) == set(), "Ctrl-C must stop every process loom run started"
        return time.monotonic() - started

    def close(self) -> None:
        """Stop it if still running (a failed test) and remove its data."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()
        subprocess.run(["rm", "-rf", str(self.data_dir)], check=False)


@pytest.fixture
def loom_run(tmp_path: Path) -> Iterator[Callable[..., LoomRun]]:
    """Starts `loom run` on a fresh data directory; stops it (if need be) and removes it afterwards."""
    started: list[LoomRun] = []

    def start(**env: str) -> LoomRun:
        started.append(LoomRun(tmp_path, **env))
        return started[-1]

    yield start
    for run in started:
        run.close()


def wait_for_log(run: LoomRun, pattern: str, seconds: float) -> re.Match[str]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = re.search(pattern, run.output())
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"{pattern!r} not in the output of loom run within {seconds} s:\n{run.output()[-3000:]}")


CONFIRM_LINK = re.compile(r"(http://127\.0\.0\.1:\d+/confirm\?token=[A-Za-z0-9._~-]+)")


def caught(data_dir: Path, count: int, deadline: float) -> list[Path]:
    """The mail the catcher has written, once there are at least ``count`` messages."""
    while time.monotonic() < deadline:
        found = sorted((data_dir / "mail").glob("*.eml"))
        if len(found) >= count:
            return found
        time.sleep(0.2)
    pytest.fail(f"fewer than {count} messages caught in {data_dir / 'mail'}")


def readme_token_line() -> str:
    """The README's one line that puts a staff token into ``TOKEN``."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    [line] = [line for line in readme.splitlines() if line.startswith("TOKEN=$(")]
    return line


def sign_and_confirm(base: str, env: dict[str, str], data_dir: Path) -> None:
    """What the README's walkthrough tells a newcomer to do: an admin, a token (with the README's own
    line), a published campaign with a petition, a signature; then the confirmation mail, read with
    `loom mail show`, and its link."""
    subprocess.run(
        [LOOM, "create-admin", "--email", "admin@example.org", "--password", "newcomer-password-1"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    command = readme_token_line().replace("'…'", shlex.quote("newcomer-password-1"))
    got = subprocess.run(
        ["bash", "-c", f'{command} && printf %s "$TOKEN"'],
        env={**env, "API": base},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = got.stdout
    assert token.count(".") == 2, got  # a JWT, nothing else
    staff = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{base}/v1/me", headers=staff, timeout=10).status_code == 200
    created = httpx.post(
        f"{base}/v1/campaigns",
        json={"slug": "pay-up", "default_language": "en", "translations": {"en": {"title": "Pay Up"}}},
        headers=staff,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    assert httpx.post(f"{base}/v1/campaigns/pay-up/publish", headers=staff, timeout=10).status_code == 200
    petition = httpx.post(
        f"{base}/v1/petitions",
        json={
            "campaign": "pay-up",
            "slug": "pay-up-now",
            "default_language": "en",
            "translations": {"en": {"title": "Pay your workers now"}},
            "consent_text": "I agree.",
        },
        headers=staff,
        timeout=10,
    )
    assert petition.status_code == 201, petition.text
    signed = httpx.post(
        f"{base}/v1/petitions/pay-up-now/signatures",
        json={"name": "New Comer", "email": "newcomer@example.org", "country": "BD"},
        timeout=10,
    )
    assert signed.status_code == 202, signed.text

    caught(data_dir, 1, time.monotonic() + 30)
    shown = subprocess.run([LOOM, "mail", "show"], env=env, capture_output=True, timeout=60, check=False)
    assert b"\r" not in shown.stdout  # a link copied from the terminal must not end in a carriage return
    text = shown.stdout.decode()
    assert "To: newcomer@example.org" in text, text + shown.stderr.decode()
    link = CONFIRM_LINK.search(text)
    assert link is not None, text
    page = httpx.get(link.group(1), timeout=10)  # the built-in page: a button, nothing confirmed yet
    assert page.status_code == 200
    assert "<form" in page.text
    confirm_token = httpx.URL(link.group(1)).params["token"]
    confirmed = httpx.post(f"{base}/v1/signatures/confirm", json={"token": confirm_token}, timeout=10)
    assert confirmed.status_code == 200, confirmed.text
    caught(data_dir, 2, time.monotonic() + 30)  # and the thank-you mail follows


def assert_log_lines_are_json(output: str) -> None:
    """Every line is the banner (indented), blank, or a JSON log record: no raw warnings or tracebacks."""
    for line in output.splitlines():
        if line.strip() and not line.startswith("  "):
            assert isinstance(json.loads(line), dict), line


@pytest.mark.timeout(240)
def test_run_starts_everything_on_a_bare_machine_and_ctrl_c_stops_it(
    loom_run: Callable[..., LoomRun],
) -> None:
    run = loom_run()
    data_dir = run.data_dir
    wait_until_ready(run.base, time.monotonic() + 90, run.process)
    readiness = httpx.get(f"{run.base}/readyz", timeout=5).json()
    assert readiness["checks"] == {"database": "ok", "migrations": "ok", "redis": "ok"}
    docs = httpx.get(f"{run.base}/docs", timeout=5)
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    assert processes_using(data_dir), "the embedded servers should be running"
    # No LOOM_SMTP_URL: mail goes to the catcher `loom run` started, and `loom mail` reads it.
    sign_and_confirm(run.base, run.env, data_dir)
    took = run.ctrl_c(within=5)
    assert took <= 5, f"stopping took {took:.1f} s"
    output = run.output()
    assert f"http://127.0.0.1:{run.port}/docs" in output
    assert f"caught in {data_dir / 'mail'}" in output
    assert "newcomer@example.org" not in output  # the catcher logs file names only
    assert "Traceback" not in output
    assert "InsecureKeyLengthWarning" not in output
    assert_log_lines_are_json(output)
    # The logs name the servers actually used: the embedded ones' Unix sockets, not a default address.
    assert str(data_dir / "postgres" / ".s.PGSQL.5432") in output
    assert str(data_dir / "redis" / "redis.sock") in output
    assert "localhost" not in output
    # The development secret: made on the first start, kept for the next ones, readable by us alone.
    secret = data_dir / SECRET_FILE
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_text().strip()) >= 64
    assert (data_dir / "postgres" / "PG_VERSION").exists(), "data is kept across runs"


@pytest.mark.timeout(240)
def test_a_dead_worker_is_started_again_with_a_growing_delay_and_the_api_stays_up(
    loom_run: Callable[..., LoomRun],
) -> None:
    run = loom_run(LOOM_LOG_JSON="false")
    wait_until_ready(run.base, time.monotonic() + 90, run.process)
    api = run.child("serve")
    first = run.child("worker")
    os.kill(first, signal.SIGKILL)
    wait_for_log(run, r"worker exited \(signal 9\); starting it again in 1 s", 10)
    assert httpx.get(f"{run.base}/healthz", timeout=5).status_code == 200
    second = wait_for_new_worker(run, {first})
    os.kill(second, signal.SIGKILL)
    wait_for_log(run, r"worker exited \(signal 9\); starting it again in 2 s", 10)
    third = wait_for_new_worker(run, {first, second})
    assert run.child("serve") == api, "the API was never restarted: it stayed up"
    assert run.process.poll() is None
    readiness = httpx.get(f"{run.base}/readyz", timeout=5)
    assert readiness.status_code == 200, readiness.text
    assert third in run.everything()
    took = run.ctrl_c(within=5)
    assert took <= 5, f"stopping took {took:.1f} s"
    assert "Traceback" not in run.output()


def wait_for_new_worker(run: LoomRun, old: set[int]) -> int:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        workers = [p for p, cmd in children(run.process.pid).items() if "services.cli worker" in cmd]
        if workers and workers[0] not in old:
            return workers[0]
        time.sleep(0.1)
    pytest.fail(f"no new worker within 15 s:\n{run.output()[-3000:]}")


async def queue_mail(data_dir: Path, count: int) -> None:
    """``count`` messages queued in the run's own (embedded) database, as signatures would queue them."""
    url = f"postgresql+asyncpg://postgres@/loom?host={data_dir / 'postgres'}"
    engine = create_engine(Settings(env="test", secret_key="s" * 40, data_dir=data_dir), url)
    try:
        async with create_sessionmaker(engine).begin() as session:
            await queue_many(session, [new_message(f"backlog{i}@example.org") for i in range(count)])
    finally:
        await engine.dispose()


@pytest.fixture
def silent_smtp_server() -> Iterator[str]:
    """An SMTP server that accepts connections and never says a word (a hung relay)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(100)
        yield f"smtp://127.0.0.1:{sock.getsockname()[1]}?starttls=off"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("smtp", ["catcher", "silent server"])
def test_ctrl_c_stops_everything_within_5_s_with_a_mail_backlog(
    loom_run: Callable[..., LoomRun], smtp: str, request: pytest.FixtureRequest
) -> None:
    extra = {"LOOM_SMTP_URL": request.getfixturevalue("silent_smtp_server")} if smtp != "catcher" else {}
    run = loom_run(LOOM_LOG_JSON="false", **extra)
    wait_until_ready(run.base, time.monotonic() + 90, run.process)
    asyncio.run(queue_mail(run.data_dir, 3000))
    if smtp == "catcher":
        caught(run.data_dir, 100, time.monotonic() + 60)  # the sender is in the middle of the backlog
    else:
        time.sleep(2)  # the sender waits for the server's greeting
    took = run.ctrl_c(within=5)
    assert took <= 5, f"stopping took {took:.1f} s:\n{run.output()[-3000:]}"
    # Stopped, not killed: a killed sender leaves mail it handed to the server unrecorded, to be sent again.
    assert "did not stop" not in run.output(), run.output()[-3000:]
    if smtp == "catcher":
        assert len(list((run.data_dir / "mail").glob("*.eml"))) < 3000, "Ctrl-C came after the backlog"
    assert "Traceback" not in run.output()
