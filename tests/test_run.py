"""`loom run` (what `make run` starts) on a machine with no database or Redis configured: embedded servers,
migrations, the API and the worker; SIGINT (Ctrl-C) stops everything it started."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from services.core.config import PROJECT_ROOT

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
    pytest.fail("loom run did not become ready within 60 s")


def processes_using(path: Path) -> list[str]:
    """Command lines of running processes that mention ``path`` (the embedded servers do)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(cmdline)
    return found


CONFIRM_LINK = re.compile(r"(http://127\.0\.0\.1:\d+/confirm\?token=[A-Za-z0-9._~-]+)")


def caught(data_dir: Path, count: int, deadline: float) -> list[Path]:
    """The mail the catcher has written, once there are at least ``count`` messages."""
    while time.monotonic() < deadline:
        found = sorted((data_dir / "mail").glob("*.eml"))
        if len(found) >= count:
            return found
        time.sleep(0.2)
    pytest.fail(f"fewer than {count} messages caught in {data_dir / 'mail'}")


def sign_and_confirm(base: str, env: dict[str, str], data_dir: Path) -> None:
    """What the README's walkthrough tells a newcomer to do: an admin, a published campaign with a
    petition, a signature; then the confirmation mail, read with `loom mail show`, and its link."""
    subprocess.run(
        [LOOM, "create-admin", "--email", "admin@example.org", "--password", "newcomer-password-1"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    token = httpx.post(
        f"{base}/v1/auth/token",
        data={"username": "admin@example.org", "password": "newcomer-password-1"},
        timeout=10,
    ).json()["access_token"]
    staff = {"Authorization": f"Bearer {token}"}
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
    shown = subprocess.run(
        [LOOM, "mail", "show"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert "To: newcomer@example.org" in shown.stdout, shown.stdout + shown.stderr
    link = CONFIRM_LINK.search(shown.stdout)
    assert link is not None, shown.stdout
    page = httpx.get(link.group(1), timeout=10)  # the built-in page: a button, nothing confirmed yet
    assert page.status_code == 200
    assert "<form" in page.text
    confirm_token = httpx.URL(link.group(1)).params["token"]
    confirmed = httpx.post(f"{base}/v1/signatures/confirm", json={"token": confirm_token}, timeout=10)
    assert confirmed.status_code == 200, confirmed.text
    caught(data_dir, 2, time.monotonic() + 30)  # and the thank-you mail follows


@pytest.mark.timeout(180)
def test_run_starts_everything_on_a_bare_machine_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="loom-run-"))  # short: Unix socket paths are limited
    data_dir.chmod(0o755)  # the embedded PostgreSQL runs as its own system user when we are root
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "LOOM_SMTP_URL"}}
    env.update({"LOOM_DATA_DIR": str(data_dir), "LOOM_API_PORT": str(port), "LOOM_LOG_JSON": "false"})
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        [LOOM, "run"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, time.monotonic() + 60, process)
        readiness = httpx.get(f"{base}/readyz", timeout=5).json()
        assert readiness["checks"] == {"database": "ok", "migrations": "ok", "redis": "ok"}
        docs = httpx.get(f"{base}/docs", timeout=5)
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
        assert processes_using(data_dir), "the embedded servers should be running"
        # No LOOM_SMTP_URL: mail goes to the catcher `loom run` started, and `loom mail` reads it.
        sign_and_confirm(base, env, data_dir)
    finally:
        os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("loom run did not stop on SIGINT")
        log.close()
    output = (tmp_path / "run.log").read_text()
    assert f"http://127.0.0.1:{port}/docs" in output
    assert f"caught in {data_dir / 'mail'}" in output
    assert "newcomer@example.org" not in output  # the catcher logs file names only
    assert "Traceback" not in output
    deadline = time.monotonic() + 15
    while processes_using(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_using(data_dir) == [], "Ctrl-C must stop the servers it started"
    assert (data_dir / "postgres" / "PG_VERSION").exists(), "data is kept across runs"
    subprocess.run(["rm", "-rf", str(data_dir)], check=False)
