"""The API served by a real uvicorn process writes exactly one access line per request (uvicorn's own
access log stays silent), no personal data and no terminal colour codes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_SECRET

EMAIL = "jane.doe@example.org"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def loom_serve(port: int) -> list[str]:
    """How deployments start the API: ``loom serve``."""
    return [str(VENV_BIN / "loom"), "serve", "--host", "127.0.0.1", "--port", str(port)]


def plain_uvicorn(port: int) -> list[str]:
    """Someone running uvicorn by hand, with its default logging and access log."""
    return [sys.executable, "-m", "uvicorn", "services.api.app:app", "--port", str(port)]


@pytest.mark.parametrize("launcher", [loom_serve, plain_uvicorn], ids=["loom-serve", "plain-uvicorn"])
def test_one_access_line_per_request_and_no_personal_data(
    launcher: Any, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LOOM_ENV": "test",
        "LOOM_SECRET_KEY": TEST_SECRET,
        "LOOM_LOG_JSON": "true",
        "LOOM_LOG_LEVEL": "INFO",
        "LOOM_API_HOST": "127.0.0.1",
        "LOOM_API_PORT": str(port),
    }
    out_path = tmp_path / "out.log"
    with out_path.open("wb") as out:
        process = subprocess.Popen(
            launcher(port), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[3]
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, out_path.read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
            first = httpx.get(f"{base}/no/such/page", params={"email": EMAIL}, timeout=5)
            second = httpx.post(f"{base}/healthz", params={"email": EMAIL}, json={"email": EMAIL}, timeout=5)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    output = out_path.read_text()
    assert EMAIL not in output
    assert "/no/such/page" not in output  # raw paths are never logged
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") in {"loom.access", "uvicorn.access"}]
    assert [(x["logger"], x["route"], x["status"]) for x in access] == [
        ("loom.access", "<unmatched>", 404),
        ("loom.access", "/healthz", 405),
    ], output
    assert [x["request_id"] for x in access] == [
        first.headers["x-request-id"],
        second.headers["x-request-id"],
    ]
    # uvicorn's plain-text access line ('"GET /no/such/page?email=… HTTP/1.1" 404') is absent
    assert "HTTP/1.1" not in output
    # uvicorn's own lines ("Uvicorn running on …") are there, without its coloured copy of the message
    assert any(line.get("logger") == "uvicorn.error" for line in lines), output
    assert "\x1b" not in output  # no ANSI escape codes in a log file, raw or JSON-escaped
    assert "\\u001b" not in output
    assert [line for line in lines if "color_message" in line] == []
