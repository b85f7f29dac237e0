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
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, Protocol, get_args

import httpx
from sqlalchemy import insert, select

from benchmarks.common import REQUEST_TIMEOUT, RawConnection, Sample, run_load, scratch_database, serving
from services.core.config import get_settings
from services.core.db.engine import create_engine, create_sessionmaker
from services.core.network.models import (
    Coalition,
    CoalitionMembership,
    MembershipStatus,
    Organisation,
    OrganisationKind,
)

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
class Outcome:
    endpoint: Endpoint
    best: Sample | None = None
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, sample: Sample, *, timed: bool) -> None:
        self.errors.update(sample.errors())
        if timed and (self.best is None or sample.rate > self.best.rate):
            self.best = sample


# --- database -----------------------------------------------------------------------------------------


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


# --- load ---------------------------------------------------------------------------------------------

ClientKind = Literal["raw", "httpx"]


class Client(Protocol):
    """One simulated user's way of sending requests, one after another."""

    async def get(self, path: str) -> int:
        """GET ``path`` and read the whole answer; its status."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class HttpxUser:
    """A user sending through a shared ``httpx.AsyncClient`` (``--client httpx``)."""

    client: httpx.AsyncClient

    async def get(self, path: str) -> int:
        return (await self.client.get(path)).status_code

    async def aclose(self) -> None:
        return None


async def _load(users: Sequence[Client], paths: Sequence[str], seconds: float) -> Sample:
    """Each user sends one request after another, cycling through ``paths``, until ``seconds`` have
    passed."""
    order = itertools.cycle(paths)
    return await run_load(users, lambda client: client.get(next(order)), seconds)


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
            users = [RawConnection.to(base_url) for _ in range(concurrency)]
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
    load = functools.partial(
        measure,
        concurrency=concurrency,
        seconds=seconds,
        warmup=warmup,
        repeats=repeats,
        client=client,
    )
    with scratch_database() as scratch:
        slugs = asyncio.run(_seed(scratch.database_url, organisations))
        with serving(scratch.env) as base_url:
            outcomes = asyncio.run(load(base_url, _endpoints(slugs)))
    return Report(outcomes, organisations, scratch.label)


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
