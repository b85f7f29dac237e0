"""How fast the real API answers: a few public read endpoints against ``GET /healthz``, in one run.

Starts ``loom serve`` (uvicorn, one worker, logging at WARNING) on a free port over a scratch database
holding a seeded directory, checks each endpoint's answer once, then loads each from this process: one
asyncio loop, ``--concurrency`` users each on a keep-alive HTTP/1.1 connection, a short warm-up, then a
fixed time. ``/healthz`` does no I/O, so it is the baseline: the load generator, the app and the
databases share the machine and its rates drift, so compare each endpoint's ratio to the baseline of
the same run.

The users send through a minimal HTTP/1.1 client of their own (``RawConnection``) by default. With
``--client httpx`` they share one ``httpx.AsyncClient`` instead, whose connection pool costs more per
request the more connections it holds: at c=50 it, not the server, sets the pace.

    python -m benchmarks.api [--concurrency 50] [--seconds 3] [--warmup 0.5] [--repeats 2]
                             [--client raw|httpx]

Uses DATABASE_URL / REDIS_URL (embedded servers when unset), in a scratch database of its own that is
dropped afterwards. Any non-2xx answer or transport error fails the benchmark (exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import asyncpg
import httpx
from sqlalchemy import insert, select
from sqlalchemy.engine import make_url

from services.core.config import get_settings
from services.core.db.engine import async_url, create_engine, create_sessionmaker
from services.core.embedded import resolve_urls
from services.core.network.models import (
    Coalition,
    CoalitionMembership,
    MembershipStatus,
    Organisation,
    OrganisationKind,
)

HOST = "127.0.0.1"
LOOM = Path(sys.executable).with_name("loom")  # the venv's `loom` command, next to its python
COUNTRIES = ("BD", "IN", "PK", "LK", "KH", "ID", "VN", "CN", "MM", "NL", "DE", "GB", "FR", "BE", "TR")
INACTIVE = {MembershipStatus.suspended: 30, MembershipStatus.former: 30}  # hidden from the public
PAGE = 20

# A JSON body's check: a description of what is wrong with it, or None.
Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class Endpoint:
    label: str
    paths: Sequence[str]  # cycled through, request by request
    check: Check  # run on one answer before the load


@dataclass
class Sample:
    """What one endpoint answered during one timed load."""

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


@dataclass
class Outcome:
    endpoint: Endpoint
    best: Sample | None = None
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, sample: Sample, *, timed: bool) -> None:
        for status, count in sample.statuses.items():
            if status >= 300:
                self.errors[f"HTTP {status}"] += count
        self.errors.update(sample.failures)
        if timed and (self.best is None or sample.rate > self.best.rate):
            self.best = sample


# --- database -----------------------------------------------------------------------------------------


async def _admin(server_url: str, sql: str) -> None:
    """Run ``sql`` on the server's ``postgres`` database (CREATE / DROP DATABASE)."""
    admin = make_url(async_url(server_url)).set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _organisation_rows(active: int) -> list[dict[str, Any]]:
    kinds = list(OrganisationKind)
    statuses = [MembershipStatus.active] * active + [
        status for status, count in INACTIVE.items() for _ in range(count)
    ]
    return [
        {
            "id": uuid.uuid4(),
            "name": f"Garment Workers Organisation {i:04d}",
            "slug": f"bench-org-{i:04d}",
            "kind": kinds[i % len(kinds)],
            "country": COUNTRIES[i % len(COUNTRIES)],
            "city": f"City {i % 40}",
            "website": f"https://org-{i:04d}.example.org" if i % 3 else None,
            "status": status,
            "joined_on": date(2010 + i % 15, 1 + i % 12, 1 + i % 28),
            "description": "A member organisation seeded by the API benchmark. " * 3,
        }
        for i, status in enumerate(statuses)
    ]


async def _seed(database_url: str, active: int) -> list[str]:
    """``active`` active organisations (and a few suspended and former ones), each in one or two of the
    regional coalitions; returns the active ones' slugs."""
    rows = _organisation_rows(active)
    engine = create_engine(get_settings(), database_url, pre_ping=False, application_name="loom-bench")
    try:
        async with create_sessionmaker(engine).begin() as session:
            coalitions = list(await session.scalars(select(Coalition.id).order_by(Coalition.slug)))
            await session.execute(insert(Organisation), rows)
            if coalitions:
                memberships = [
                    {"coalition_id": coalitions[(i + k) % len(coalitions)], "organisation_id": row["id"]}
                    for i, row in enumerate(rows)
                    for k in range(1 if i % 5 else 2)
                ]
                await session.execute(insert(CoalitionMembership), memberships)
    finally:
        await engine.dispose()
    return [row["slug"] for row in rows if row["status"] is MembershipStatus.active]


# --- server -------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM (uvicorn's graceful shutdown), then SIGKILL if it has not exited within ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.returncode not in (0, -signal.SIGTERM):
        print(f"api: the server exited with status {process.returncode}", file=sys.stderr)


@contextmanager
def serving(env: dict[str, str], *, timeout: float = 60.0) -> Iterator[str]:
    """``loom serve`` on a free port until the block ends, however it ends; yields its base URL once
    ``/readyz`` (database, migrations, Redis) answers 200."""
    port = _free_port()
    base_url = f"http://{HOST}:{port}"
    # Its own session: a Ctrl-C reaches only this process, which then stops the server with SIGTERM.
    process = subprocess.Popen(  # noqa: S603
        [str(LOOM), "serve", "--host", HOST, "--port", str(port)], env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"loom serve exited with status {process.returncode} before answering")
            try:
                if httpx.get(f"{base_url}/readyz", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"loom serve was not ready within {timeout:.0f}s")
            time.sleep(0.1)
        yield base_url
    finally:
        _stop(process)


# --- load ---------------------------------------------------------------------------------------------

REQUEST_TIMEOUT = 30.0
ClientKind = Literal["raw", "httpx"]


class ProtocolError(Exception):
    """An answer the raw client cannot read."""


class Client(Protocol):
    """One simulated user's way of sending requests, one after another."""

    async def get(self, path: str) -> int:
        """GET ``path`` and read the whole answer; its status."""
        ...

    async def aclose(self) -> None: ...


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

    async def get(self, path: str) -> int:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            status = int(head[0].split(" ", 2)[1])
            headers = dict(line.lower().split(": ", 1) for line in head[1:] if line)
            if "content-length" not in headers:
                raise ProtocolError(f"no Content-Length in the answer to GET {path}")
            await reader.readexactly(int(headers["content-length"]))
        except BaseException:  # timed out or unreadable: the connection's state is unknown
            self._drop()
            raise
        if headers.get("connection") == "close":
            self._drop()
        return status

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


@dataclass(frozen=True)
class HttpxUser:
    """A user sending through a shared ``httpx.AsyncClient`` (``--client httpx``)."""

    client: httpx.AsyncClient

    async def get(self, path: str) -> int:
        return (await self.client.get(path)).status_code

    async def aclose(self) -> None:
        return None


# What a request may fail with short of an answer (ValueError: an unparsable status line or header).
TRANSPORT_ERRORS = (OSError, EOFError, TimeoutError, ValueError, ProtocolError, httpx.HTTPError)


async def _load(users: Sequence[Client], paths: Sequence[str], seconds: float) -> Sample:
    """Each user sends one request after another until ``seconds`` have passed."""
    sample = Sample()
    order = itertools.cycle(paths)
    started = time.perf_counter()
    deadline = started + seconds

    async def user(client: Client) -> None:
        while time.perf_counter() < deadline:
            path = next(order)
            sent = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status = await client.get(path)
            except TRANSPORT_ERRORS as exc:  # IncompleteReadError is an EOFError
                sample.failures[type(exc).__name__] += 1
                continue
            sample.latencies.append(time.perf_counter() - sent)
            sample.statuses[status] += 1

    await asyncio.gather(*(user(client) for client in users))
    sample.seconds = time.perf_counter() - started  # until the last answer in flight at the deadline
    sample.latencies.sort()
    return sample


async def _check(base_url: str, endpoint: Endpoint) -> None:
    """One request, whose answer must be a 200 with the expected body: a wrong answer fast is no
    benchmark."""
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT) as client:
        response = await client.get(endpoint.paths[0])
    if response.status_code != 200:
        raise RuntimeError(f"{endpoint.label}: HTTP {response.status_code}: {response.text[:300]}")
    problem = endpoint.check(response.json())
    if problem:
        raise RuntimeError(f"{endpoint.label}: unexpected answer: {problem}")


async def measure(
    base_url: str,
    endpoints: Sequence[Endpoint],
    *,
    concurrency: int,
    seconds: float,
    warmup: float,
    repeats: int,
    client: ClientKind = "raw",
) -> list[Outcome]:
    """Each endpoint's best timed load of ``repeats``, the endpoints taking turns (the machine is shared:
    the best round is the one least disturbed), and every error seen, warm-ups included."""
    for endpoint in endpoints:
        await _check(base_url, endpoint)
    outcomes = [Outcome(endpoint) for endpoint in endpoints]
    async with contextlib.AsyncExitStack() as stack:
        users: list[Client]
        if client == "httpx":
            limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
            shared = await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, limits=limits, timeout=REQUEST_TIMEOUT)
            )
            users = [HttpxUser(shared)] * concurrency
        else:
            url = httpx.URL(base_url)
            users = [RawConnection(url.host, url.port or 80) for _ in range(concurrency)]
            for user in users:
                stack.push_async_callback(user.aclose)
        for _ in range(repeats):
            for outcome in outcomes:
                paths = outcome.endpoint.paths
                outcome.add(await _load(users, paths, warmup), timed=False)
                outcome.add(await _load(users, paths, seconds), timed=True)
    return outcomes


def _endpoints(slugs: Sequence[str]) -> list[Endpoint]:
    active = len(slugs)

    def health(body: Any) -> str | None:
        return None if body == {"status": "ok"} else f"{body!r}"

    def page(body: Any) -> str | None:
        items, total = len(body["items"]), body["total"]
        return None if (items, total) == (min(PAGE, active), active) else f"{items} items of {total}"

    def stats(body: Any) -> str | None:
        n = body["organisations"]
        return None if n == active else f"{n} organisations, expected {active}"

    def detail(body: Any) -> str | None:
        return None if body["slug"] == slugs[0] and body["coalitions"] else f"{body!r}"[:300]

    return [
        Endpoint("GET /healthz", ["/healthz"], health),
        Endpoint(f"GET /v1/organisations?limit={PAGE}", [f"/v1/organisations?limit={PAGE}"], page),
        Endpoint("GET /v1/network/stats", ["/v1/network/stats"], stats),
        Endpoint("GET /v1/organisations/{slug}", [f"/v1/organisations/{slug}" for slug in slugs], detail),
    ]


# --- the run ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    outcomes: list[Outcome]
    organisations: int
    database: str


def run(
    *,
    organisations: int = 500,
    concurrency: int = 50,
    seconds: float = 3.0,
    warmup: float = 0.5,
    repeats: int = 2,
    client: ClientKind = "raw",
) -> Report:
    # Resolved once, here: `loom migrate` and `loom serve` get them through the environment.
    server_url, redis_url = resolve_urls(get_settings())
    name = f"loom_bench_{uuid.uuid4().hex[:8]}"
    database_url = make_url(async_url(server_url)).set(database=name).render_as_string(hide_password=False)
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "LOOM_LOG_LEVEL": "WARNING"}
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        subprocess.run([str(LOOM), "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
        slugs = asyncio.run(_seed(database_url, organisations))
        load = functools.partial(
            measure,
            concurrency=concurrency,
            seconds=seconds,
            warmup=warmup,
            repeats=repeats,
            client=client,
        )
        with serving(env) as base_url:
            outcomes = asyncio.run(load(base_url, _endpoints(slugs)))
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return Report(outcomes, organisations, _where(server_url, name))


def _where(server_url: str, database: str) -> str:
    """The scratch database and its server (host and port, or socket directory), for display."""
    url = make_url(async_url(server_url))
    server = f"{url.host}:{url.port or 5432}" if url.host else str(url.query.get("host", "?"))
    return f"{database} on {server}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--organisations", type=int, default=500, help="active organisations to seed")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent users (connections)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed load per endpoint and round")
    parser.add_argument("--warmup", type=float, default=0.5, help="untimed load before each timed one")
    parser.add_argument("--repeats", type=int, default=2, help="rounds per endpoint; the best is kept")
    parser.add_argument(
        "--client",
        choices=get_args(ClientKind),
        default="raw",
        help="raw: a keep-alive connection per user (default); httpx: one shared httpx.AsyncClient",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    report = run(
        organisations=args.organisations,
        concurrency=args.concurrency,
        seconds=args.seconds,
        warmup=args.warmup,
        repeats=args.repeats,
        client=args.client,
    )
    print(
        f"api: loom serve (1 uvicorn worker), {report.organisations} active organisations in "
        f"{report.database}\n     c={args.concurrency} ({args.client} client), {args.seconds:g}s per "
        f"endpoint, best of {args.repeats} round(s); ratio = req/s against GET /healthz in this run"
    )
    baseline = report.outcomes[0].best
    for outcome in report.outcomes:
        s = outcome.best
        if s is None or baseline is None:
            continue
        print(
            f"  {outcome.endpoint.label:<34} {s.rate:7.0f} req/s  p50 {s.percentile(0.5) * 1000:6.1f} ms  "
            f"p99 {s.percentile(0.99) * 1000:6.1f} ms  ratio {s.rate / baseline.rate:5.2f}"
        )
    failed = [
        f"{o.endpoint.label}: {', '.join(f'{n} x {e}' for e, n in o.errors.most_common())}"
        for o in report.outcomes
        if o.errors
    ]
    if failed:
        raise SystemExit("api: errors under load:\n  " + "\n  ".join(failed))


if __name__ == "__main__":
    main()
