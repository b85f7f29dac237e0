"""What the benchmarks share: a scratch database, servers on free ports, a minimal keep-alive HTTP/1.1
client and the timed load loop.

- :func:`scratch_database` creates a database of its own on the configured (or embedded) PostgreSQL,
  migrates it with ``loom migrate`` and drops it afterwards, however the block ends.
- :func:`serving` runs a server command (``loom serve`` by default) on a free port until the block ends.
- :class:`RawConnection` sends requests over one keep-alive connection; :func:`run_load` has simulated
  users send one request after another for a fixed time and collects a :class:`Sample`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from services.core.config import get_settings
from services.core.db.engine import async_url
from services.core.embedded import resolve_urls

HOST = "127.0.0.1"
LOOM = Path(sys.executable).with_name("loom")  # the venv's `loom` command, next to its python
REQUEST_TIMEOUT = 30.0


# --- database -----------------------------------------------------------------------------------------


async def admin(server_url: str, sql: str) -> None:
    """Run ``sql`` on the server's ``postgres`` database (CREATE / DROP DATABASE)."""
    url = make_url(async_url(server_url)).set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def where(server_url: str, database: str) -> str:
    """The scratch database and its server (host and port, or socket directory), for display."""
    url = make_url(async_url(server_url))
    server = f"{url.host}:{url.port or 5432}" if url.host else str(url.query.get("host", "?"))
    return f"{database} on {server}"


@dataclass(frozen=True)
class Scratch:
    """A migrated scratch database: its URL, the Redis URL, an environment for ``loom`` commands that
    points at both, and a description for display."""

    database_url: str
    redis_url: str
    env: dict[str, str]
    label: str

    def with_env(self, **extra: str) -> dict[str, str]:
        return {**self.env, **extra}


@contextmanager
def scratch_database(*, migrate: bool = True) -> Iterator[Scratch]:
    """A database of its own, migrated with ``loom migrate``, dropped (with its connections) when the
    block ends, however it ends."""
    # Resolved once, here: `loom migrate` and `loom serve` get them through the environment.
    server_url, redis_url = resolve_urls(get_settings())
    name = f"loom_bench_{uuid.uuid4().hex[:8]}"
    database_url = make_url(async_url(server_url)).set(database=name).render_as_string(hide_password=False)
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "LOOM_LOG_LEVEL": "WARNING"}
    asyncio.run(admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        if migrate:
            subprocess.run([str(LOOM), "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
        yield Scratch(database_url, redis_url, env, where(server_url, name))
    finally:
        asyncio.run(admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- servers ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def stop(process: subprocess.Popen[bytes], name: str, timeout: float = 15.0) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL if it has not exited within ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.returncode not in (0, -signal.SIGTERM):
        print(f"{name} exited with status {process.returncode}", file=sys.stderr)


def loom_serve(port: int) -> list[str]:
    return [str(LOOM), "serve", "--host", HOST, "--port", str(port)]


@contextmanager
def serving(
    env: dict[str, str],
    command: Callable[[int], list[str]] = loom_serve,
    *,
    ready_path: str = "/readyz",
    name: str = "loom serve",
    timeout: float = 60.0,
) -> Iterator[str]:
    """``command(port)`` (by default ``loom serve``: uvicorn, one worker) on a free port until the block
    ends, however it ends; yields its base URL once ``ready_path`` answers 200."""
    port = free_port()
    base_url = f"http://{HOST}:{port}"
    # Its own session: a Ctrl-C reaches only this process, which then stops the server with SIGTERM.
    process = subprocess.Popen(command(port), env=env, start_new_session=True)  # noqa: S603
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with status {process.returncode} before answering")
            try:
                if httpx.get(f"{base_url}{ready_path}", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} was not ready within {timeout:.0f}s")
            time.sleep(0.1)
        yield base_url
    finally:
        stop(process, name)


# --- load ---------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """What one target answered during one timed load."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # of every response, sorted once done
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # transport errors, by exception type

    @property
    def responses(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.responses / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the latencies, in seconds."""
        if not self.latencies:
            return math.nan
        return self.latencies[min(len(self.latencies) - 1, max(0, math.ceil(q * len(self.latencies)) - 1))]

    def errors(self) -> Counter[str]:
        """Non-2xx answers by status, and transport errors by type."""
        found: Counter[str] = Counter(self.failures)
        for status, count in self.statuses.items():
            if status >= 300:
                found[f"HTTP {status}"] += count
        return found


class ProtocolError(Exception):
    """An answer the raw client cannot read."""


class RawConnection:
    """A minimal HTTP/1.1 client over one keep-alive connection (reopened after an error): a request,
    its whole answer (which must have a Content-Length, as every Loom JSON answer does), the next one.

    The load generator shares the machine with the server, so its cost per request is taken from the
    server: this costs a fraction of ``httpx``'s, whose connection pool also slows down more than
    linearly with the connections it holds.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    @classmethod
    def to(cls, base_url: str) -> RawConnection:
        url = httpx.URL(base_url)
        return cls(url.host, url.port or 80)

    async def get(self, path: str) -> int:
        return (await self.request("GET", path))[0]

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
    ) -> tuple[int, bytes]:
        """Send a request (``body`` with a Content-Length, when there is one); the answer's status and
        body."""
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            status = int(head[0].split(" ", 2)[1])
            answer_headers = dict(line.lower().split(": ", 1) for line in head[1:] if line)
            if "content-length" not in answer_headers:
                raise ProtocolError(f"no Content-Length in the answer to {method} {path}")
            answer = await reader.readexactly(int(answer_headers["content-length"]))
        except BaseException:  # timed out or unreadable: the connection's state is unknown
            self._drop()
            raise
        if answer_headers.get("connection") == "close":
            self._drop()
        return status, answer

    def _drop(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None

    async def aclose(self) -> None:
        writer = self.streams[1] if self.streams else None
        self._drop()
        if writer is not None:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


# What a request may fail with short of an answer (ValueError: an unparsable status line or header).
TRANSPORT_ERRORS = (OSError, EOFError, TimeoutError, ValueError, ProtocolError, httpx.HTTPError)

U = TypeVar("U")


async def run_load(users: Sequence[U], send: Callable[[U], Awaitable[int]], seconds: float) -> Sample:
    """Each user sends one request after another (``send(user)``, which answers the status) until
    ``seconds`` have passed."""
    sample = Sample()
    started = time.perf_counter()
    deadline = started + seconds

    async def user(client: U) -> None:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status = await send(client)
            except TRANSPORT_ERRORS as exc:  # IncompleteReadError is an EOFError
                sample.failures[type(exc).__name__] += 1
                continue
            sample.latencies.append(time.perf_counter() - sent)
            sample.statuses[status] += 1

    await asyncio.gather(*(user(client) for client in users))
    sample.seconds = time.perf_counter() - started  # until the last answer in flight at the deadline
    sample.latencies.sort()
    return sample
