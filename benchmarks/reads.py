"""P5 (issue 10): every public read against ``GET /healthz`` (no I/O) of the same server, in one run.

Starts ``loom serve`` (one uvicorn worker, logging at WARNING) over a scratch database holding a seeded
directory (``--organisations`` active ones, some suspended and former, the regional coalitions), published
and draft campaigns with petitions, and ``--signatures`` counted signatures on one petition; loads each
endpoint in turn (``--concurrency`` keep-alive connections, best of ``--repeats`` rounds) as
``benchmarks.api`` does. Goal: each read at least 0.5x of ``/healthz`` with p99 under 100 ms.

Then it checks the other half of the goal, invalidation: a write by plain SQL (as a migration, the CLI or
the worker would make) must show in the very next reads, and it reports how long after the commit the
server's answer changed; and ``--writes-per-second`` (default 10) reruns the organisation list while a
writer changes an organisation that often, so the figure includes the misses writes cause.

    python -m benchmarks.reads [--concurrency 50] [--seconds 3] [--repeats 2] [--organisations 500]

Uses DATABASE_URL / REDIS_URL (embedded servers when unset), in a scratch database of its own that is
dropped afterwards. Any non-2xx answer or transport error fails the benchmark (exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from benchmarks.api import PAGE, Endpoint, Outcome, measure
from benchmarks.api import _seed as seed_directory
from benchmarks.common import REQUEST_TIMEOUT, scratch_database, serving
from services.core.generations import asyncpg_dsn

RATIO_GOAL = 0.5
P99_GOAL = 0.100
CAMPAIGNS = 20  # published, each with two petitions; and as many drafts, never to be seen


@dataclass(frozen=True)
class World:
    organisations: list[str]
    campaigns: list[str]
    petitions: list[str]
    drafts: list[str]
    counted: str  # the petition holding the counted signatures


async def _seed(database_url: str, organisations: int, signatures: int) -> World:
    slugs = await seed_directory(database_url, organisations)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    campaigns: list[str] = []
    petitions: list[str] = []
    drafts: list[str] = []
    try:
        async with conn.transaction():
            for i in range(CAMPAIGNS * 2):
                published = i % 2 == 0
                cid, slug = uuid.uuid4(), f"bench-campaign-{i:03d}"
                texts = {
                    "en": {"title": f"Campaign {i}", "summary": "Pay your workers.", "body": "A body. " * 40},
                    "fr": {
                        "title": f"Campagne {i}",
                        "summary": "Payez vos ouvriers.",
                        "body": "Un texte. " * 40,
                    },
                }
                await conn.execute(
                    "INSERT INTO campaigns (id, slug, default_language, translations, status, published_at) "
                    "VALUES ($1, $2, 'en', $3::jsonb, $4::varchar, "
                    "CASE WHEN $4::varchar = 'published' THEN now() END)",
                    cid,
                    slug,
                    json.dumps(texts),
                    "published" if published else "draft",
                )
                (campaigns if published else drafts).append(slug)
                for k in range(2):
                    pid, pslug = uuid.uuid4(), f"{slug}-petition-{k}"
                    await conn.execute(
                        "INSERT INTO petitions (id, campaign_id, slug, default_language, translations, goal, "
                        "consent_text, count_policy) VALUES ($1, $2, $3, 'en', $4::jsonb, 100000, "
                        "'I agree.', 'all_unique')",
                        pid,
                        cid,
                        pslug,
                        json.dumps(
                            {"en": {"title": f"Petition {i}.{k}"}, "fr": {"title": f"Pétition {i}.{k}"}}
                        ),
                    )
                    await conn.execute(
                        "INSERT INTO petition_consent_versions (petition_id, version, text) "
                        "VALUES ($1, 1, 'I agree.')",
                        pid,
                    )
                    (petitions if published else drafts).append(pslug)
            counted = petitions[0]
            await conn.execute(
                "INSERT INTO signatures (petition_id, channel, state, name, email, email_canonical, "
                "country, consent_version, created_at) "
                "SELECT p.id, 'web', 'unique', 'Signer ' || i, 's' || i || '@example.org', "
                "'s' || i || '@example.org', (ARRAY['BD','IN','NL','DE','KH'])[1 + i % 5], 1, "
                "now() - make_interval(days => i % 30) "
                "FROM petitions p, generate_series(1, $2) AS i WHERE p.slug = $1",
                counted,
                signatures,
            )
    finally:
        await conn.close()
    return World(slugs, campaigns, petitions, drafts, counted)


def _endpoints(world: World, signatures: int) -> list[Endpoint]:
    drafts = set(world.drafts)

    def ok(body: Any) -> str | None:
        return None

    def health(body: Any) -> str | None:
        return None if body == {"status": "ok"} else f"{body!r}"

    def page_without_drafts(body: Any) -> str | None:
        slugs = {item["slug"] for item in body["items"]}
        if slugs & drafts:
            return f"drafts in a public list: {sorted(slugs & drafts)}"
        return None if body["items"] else "empty page"

    def stats(body: Any) -> str | None:
        return None if body["count"] == signatures else f"count {body['count']}, expected {signatures}"

    orgs = world.organisations
    return [
        Endpoint("GET /healthz", ["/healthz"], health),
        Endpoint(f"GET /v1/organisations?limit={PAGE}", [f"/v1/organisations?limit={PAGE}"], ok),
        Endpoint("GET /v1/organisations/{slug}", [f"/v1/organisations/{s}" for s in orgs[:50]], ok),
        Endpoint("GET /v1/coalitions", ["/v1/coalitions"], ok),
        Endpoint("GET /v1/coalitions/{slug}/members", ["/v1/coalitions/europe/members?limit=20"], ok),
        Endpoint("GET /v1/network/stats", ["/v1/network/stats"], ok),
        Endpoint("GET /v1/campaigns", ["/v1/campaigns", "/v1/campaigns?lang=fr"], page_without_drafts),
        Endpoint("GET /v1/campaigns/{slug}", [f"/v1/campaigns/{s}" for s in world.campaigns], ok),
        Endpoint("GET /v1/petitions", ["/v1/petitions", "/v1/petitions?lang=fr"], page_without_drafts),
        Endpoint("GET /v1/petitions/{slug}", [f"/v1/petitions/{s}" for s in world.petitions], ok),
        Endpoint("GET /v1/petitions/{slug}/stats", [f"/v1/petitions/{world.counted}/stats"], stats),
    ]


async def _fresh_after_write(base_url: str, database_url: str, slug: str) -> tuple[float, str]:
    """Change an organisation by plain SQL; how long until the server's answer shows it."""
    path = f"/v1/organisations/{slug}"
    city = f"Changed {uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT) as client:
        for _ in range(3):
            await client.get(path)  # kept now
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            await conn.execute("UPDATE organisations SET city = $1 WHERE slug = $2", city, slug)
        finally:
            await conn.close()
        committed = time.monotonic()
        stale = 0
        while time.monotonic() - committed < 5:
            if (await client.get(path)).json()["city"] == city:
                return time.monotonic() - committed, f"{stale} stale answer(s) after the commit"
            stale += 1
        raise RuntimeError(f"{path} still stale 5 s after a committed write ({stale} answers)")


async def _with_writes(
    base_url: str, database_url: str, slug: str, per_second: float, args: argparse.Namespace
) -> Outcome:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    stop = asyncio.Event()

    async def writer() -> int:
        n = 0
        while not stop.is_set():
            n += 1
            await conn.execute("UPDATE organisations SET city = $1 WHERE slug = $2", f"City w{n}", slug)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1 / per_second)
        return n

    task = asyncio.create_task(writer())
    try:
        label = f"GET /v1/organisations?limit={PAGE} + {per_second:g} writes/s"
        (outcome,) = await measure(
            base_url,
            [Endpoint(label, [f"/v1/organisations?limit={PAGE}"], lambda body: None)],
            concurrency=args.concurrency,
            seconds=args.seconds,
            warmup=args.warmup,
            repeats=args.repeats,
        )
    finally:
        stop.set()
        await task
        await conn.close()
    return outcome


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--organisations", type=int, default=500, help="active organisations to seed")
    parser.add_argument("--signatures", type=int, default=100_000, help="counted, on one petition")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent users (connections)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed load per endpoint and round")
    parser.add_argument("--warmup", type=float, default=0.5, help="untimed load before each timed one")
    parser.add_argument("--repeats", type=int, default=2, help="rounds per endpoint; the best is kept")
    parser.add_argument("--writes-per-second", type=float, default=10.0, help="0: skip the run with writes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with scratch_database() as scratch:
        world = asyncio.run(_seed(scratch.database_url, args.organisations, args.signatures))
        with serving(scratch.env) as base_url:
            outcomes = asyncio.run(
                measure(
                    base_url,
                    _endpoints(world, args.signatures),
                    concurrency=args.concurrency,
                    seconds=args.seconds,
                    warmup=args.warmup,
                    repeats=args.repeats,
                )
            )
            delay, stale = asyncio.run(
                _fresh_after_write(base_url, scratch.database_url, world.organisations[0])
            )
            if args.writes_per_second > 0:
                outcomes.append(
                    asyncio.run(
                        _with_writes(
                            base_url,
                            scratch.database_url,
                            world.organisations[1],
                            args.writes_per_second,
                            args,
                        )
                    )
                )
    _report(outcomes, world, args, scratch.label, delay, stale)


def _report(
    outcomes: Sequence[Outcome],
    world: World,
    args: argparse.Namespace,
    database: str,
    delay: float,
    stale: str,
) -> None:
    print(
        f"P5 reads: loom serve (1 uvicorn worker), {len(world.organisations)} active organisations, "
        f"{len(world.campaigns)} published campaigns, {args.signatures:,} counted signatures in {database}\n"
        f"     c={args.concurrency}, {args.seconds:g}s per endpoint, best of {args.repeats} round(s); "
        f"ratio = req/s against GET /healthz in this run; goal >= {RATIO_GOAL}x and p99 <= "
        f"{P99_GOAL * 1000:.0f} ms"
    )
    baseline = outcomes[0].best
    missed = []
    for outcome in outcomes:
        s = outcome.best
        if s is None or baseline is None:
            continue
        ratio = s.rate / baseline.rate
        met = outcome is outcomes[0] or (ratio >= RATIO_GOAL and s.percentile(0.99) <= P99_GOAL)
        if not met:
            missed.append(outcome.endpoint.label)
        print(
            f"  {outcome.endpoint.label:<52} {s.rate:7.0f} req/s  p50 {s.percentile(0.5) * 1000:6.1f} ms  "
            f"p99 {s.percentile(0.99) * 1000:6.1f} ms  ratio {ratio:5.2f}  {'PASS' if met else 'MISS'}"
        )
    print(f"  a write by SQL showed {delay * 1000:.1f} ms after its commit ({stale})")
    failed = [
        f"{o.endpoint.label}: {', '.join(f'{n} x {e}' for e, n in o.errors.most_common())}"
        for o in outcomes
        if o.errors
    ]
    if failed:
        raise SystemExit("P5 reads: errors under load:\n  " + "\n  ".join(failed))
    print(f"  goal: {'PASS' if not missed else 'MISS (' + ', '.join(missed) + ')'}")


if __name__ == "__main__":
    main()
