"""The registry's public reads (issue 11, parts 1 and 2) against ``GET /healthz`` of the same server.

Seeds ``--facilities`` (100,000) facilities in 20 countries, owned by ``--companies`` (5,000) companies,
each facility with a valid OS ID, then loads: a company by slug, a facility by OS ID, a name search over
the facilities (``q`` a word of their names, with a country) and over the companies. ``/healthz`` does no
I/O: it is the baseline (``benchmarks.api.measure``). Whether the trigram indexes exist (pg_trgm installed)
is printed: without them the searches scan.

    python -m benchmarks.registry [--facilities 100000] [--companies 5000] [--concurrency 50]
                                  [--seconds 3] [--warmup 0.5] [--repeats 2]

Uses DATABASE_URL / REDIS_URL (embedded servers when unset), in a scratch database of its own that is
dropped afterwards. Any non-2xx answer fails the benchmark (exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from benchmarks.api import Endpoint, Outcome, measure
from benchmarks.common import scratch_database, serving
from services.core.registry.identifiers import os_id_check_character, search_text

COUNTRIES = (
    "BD",
    "KH",
    "CN",
    "IN",
    "PK",
    "VN",
    "ID",
    "LK",
    "MM",
    "TR",
    "MA",
    "TN",
    "RO",
    "BG",
    "ET",
    "MX",
    "HN",
    "SV",
    "GT",
    "BR",
)
WORDS = (
    "Apparels",
    "Knitwear",
    "Garments",
    "Textiles",
    "Denim",
    "Fashions",
    "Sweaters",
    "Composite",
    "Dyeing",
    "Washing",
    "Printing",
    "Embroidery",
    "Footwear",
    "Leather",
    "Spinning",
    "Mills",
)
PREFIXES = (
    "Ananta",
    "Sunrise",
    "Golden",
    "Eastern",
    "Pacific",
    "Royal",
    "Star",
    "Delta",
    "Lotus",
    "Crystal",
    "Green",
    "Silver",
    "Ocean",
    "Evergreen",
    "Metro",
    "Unity",
    "Prime",
    "Noble",
    "Apex",
    "Harbour",
)


def _os_id(country: str, n: int) -> str:
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    tail = "".join(alphabet[(n >> (5 * k)) & 31] for k in range(4, -1, -1))
    body = f"{country}2020{(n % 366) + 1:03d}{tail}"
    return body + os_id_check_character(body)


async def _seed(database_url: str, facilities: int, companies: int) -> tuple[list[str], list[str], bool]:
    """Returns company slugs, OS IDs, and whether the trigram indexes exist."""
    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(url)
    try:
        company_rows = []
        for i in range(companies):
            name = f"{PREFIXES[i % len(PREFIXES)]} {WORDS[i % len(WORDS)]} Group {i}"
            company_rows.append((uuid.uuid4(), f"company-{i}", name, search_text(name), search_text(name)))
        await conn.copy_records_to_table(
            "companies", records=company_rows, columns=["id", "slug", "name", "name_key", "search_text"]
        )
        rng = random.Random(11)  # noqa: S311 - synthetic data
        facility_rows = []
        os_ids = []
        for i in range(facilities):
            country = COUNTRIES[i % len(COUNTRIES)]
            name = f"{rng.choice(PREFIXES)} {rng.choice(WORDS)} {rng.choice(WORDS)} Ltd {i}"
            os_id = _os_id(country, i)
            os_ids.append(os_id)
            owner = company_rows[i % companies][0]
            facility_rows.append((uuid.uuid4(), name, country, owner, os_id, search_text(name)))
        await conn.copy_records_to_table(
            "facilities",
            records=facility_rows,
            columns=["id", "name", "country", "parent_company_id", "os_id", "search_text"],
        )
        await conn.execute("ANALYZE companies; ANALYZE facilities")
        trigram = await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE indexname LIKE '%search_trgm'")
    finally:
        await conn.close()
    return [row[1] for row in company_rows], os_ids, trigram == 2


def _endpoints(slugs: list[str], os_ids: list[str]) -> list[Endpoint]:
    def health(body: Any) -> str | None:
        return None if body == {"status": "ok"} else repr(body)

    def found(body: Any) -> str | None:
        return None if body.get("id") else repr(body)[:200]

    def some(body: Any) -> str | None:
        return None if body["total"] > 0 else "nothing found"

    pick = random.Random(3)  # noqa: S311 - synthetic data
    searches = [
        f"/v1/facilities?q={p.lower()}+{w.lower()}&country=BD" for p in PREFIXES[:5] for w in WORDS[:4]
    ]
    return [
        Endpoint("GET /healthz", ["/healthz"], health),
        Endpoint("GET /v1/companies/{slug}", [f"/v1/companies/{s}" for s in pick.sample(slugs, 500)], found),
        Endpoint(
            "GET /v1/facilities/{os_id}", [f"/v1/facilities/{o}" for o in pick.sample(os_ids, 500)], found
        ),
        Endpoint("GET /v1/facilities?q=…&country=BD", searches, some),
        Endpoint("GET /v1/companies?q=…", [f"/v1/companies?q={p.lower()}" for p in PREFIXES], some),
    ]


@dataclass(frozen=True)
class Report:
    outcomes: list[Outcome]
    trigram: bool
    database: str


def run(
    *, facilities: int, companies: int, concurrency: int, seconds: float, warmup: float, repeats: int
) -> Report:
    with scratch_database() as scratch:
        slugs, os_ids, trigram = asyncio.run(_seed(scratch.database_url, facilities, companies))
        with serving(scratch.env) as base_url:
            outcomes = asyncio.run(
                measure(
                    base_url,
                    _endpoints(slugs, os_ids),
                    concurrency=concurrency,
                    seconds=seconds,
                    warmup=warmup,
                    repeats=repeats,
                )
            )
    return Report(outcomes, trigram, scratch.label)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--facilities", type=int, default=100_000)
    parser.add_argument("--companies", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    report = run(
        facilities=args.facilities,
        companies=args.companies,
        concurrency=args.concurrency,
        seconds=args.seconds,
        warmup=args.warmup,
        repeats=args.repeats,
    )
    trigram = "yes" if report.trigram else "no (pg_trgm missing)"
    print(
        f"registry: loom serve (1 uvicorn worker), {args.facilities} facilities and {args.companies} "
        f"companies in {report.database}, trigram indexes: {trigram}"
        f"\n     c={args.concurrency}, {args.seconds:g}s per endpoint, best of {args.repeats} round(s); "
        "ratio = req/s against GET /healthz in this run"
    )
    baseline = report.outcomes[0].best
    failed = False
    for outcome in report.outcomes:
        failed = failed or bool(outcome.errors)
        s = outcome.best
        if s is None or baseline is None:
            continue
        print(
            f"  {outcome.endpoint.label:<34} {s.rate:7.0f} req/s  p50 {s.percentile(0.5) * 1000:6.1f} ms  "
            f"p99 {s.percentile(0.99) * 1000:6.1f} ms  ratio {s.rate / baseline.rate:5.2f}"
        )
        if outcome.errors:
            print(f"    errors: {dict(outcome.errors)}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
