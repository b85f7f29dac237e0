"""From signing to the confirmation mail being accepted by the SMTP server, at a steady signing rate.

Black-box, end to end: ``loom serve`` and ``loom worker`` run as they do in production (one process
each) over a scratch database, with ``LOOM_SMTP_URL`` pointing at an SMTP sink in a process of its own
(aiosmtpd) that records when each recipient's message was accepted. This process signs a petition at
``--rate`` signatures a second for ``--seconds`` (open loop: requests leave on schedule whatever the
answers), each from its own address and client address (``X-Forwarded-For``), then waits for the mail.
Latency is the sink's acceptance time minus the time the signing request left (both clocks are this
machine's). Goal (issue 4 §7): p99 ≤ 2 s at 100 signatures/s.

    python -m benchmarks.mail_latency [--rate 100] [--seconds 20] [--warmup 3] [--wait 30]

The worker starts with the API, so a warm-up signs at the same rate until its mail has arrived; only the
signatures after it are timed.

Uses DATABASE_URL / REDIS_URL (embedded servers when unset), in a scratch database that is dropped
afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from benchmarks.common import LOOM, RawConnection, scratch_database, serving, stop
from benchmarks.smtp_sink import smtp_sink
from services.core.db.engine import async_url

GOAL_P99_SECONDS = 2.0
CONNECTIONS = 50  # keep-alive connections the signing requests share
# Signers' mail domains, a few big providers and many small ones, as on a real petition.
DOMAINS = (
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "gmail.com",
    *(f"union-{n}.example.org" for n in range(16)),
)


@dataclass(frozen=True)
class Result:
    sent: int
    accepted: int  # signing requests answered 202
    delivered: int  # confirmation mails accepted by the sink
    latencies: list[float]  # seconds, sorted
    stages: dict[str, tuple[float, float]]  # stage -> (p50, p99) seconds, from the database's clock

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return math.nan
        return self.latencies[min(len(self.latencies) - 1, math.ceil(q * len(self.latencies)) - 1)]


@contextmanager
def working(env: dict[str, str]) -> Iterator[None]:
    process = subprocess.Popen([str(LOOM), "worker"], env=env, start_new_session=True)  # noqa: S603
    try:
        yield
    finally:
        stop(process, "loom worker")


async def _petition(database_url: str) -> str:
    """A published campaign with an open petition (written straight to the database); its slug."""
    import asyncpg

    suffix = uuid.uuid4().hex[:8]
    url = make_url(async_url(database_url)).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(url)
    try:
        campaign = uuid.uuid4()
        petition = uuid.uuid4()
        await conn.execute(
            "INSERT INTO campaigns (id, slug, default_language, translations, status) "
            "VALUES ($1, $2, 'en', $3::jsonb, 'published')",
            campaign,
            f"bench-{suffix}",
            '{"en": {"title": "Pay your workers"}}',
        )
        await conn.execute(
            "INSERT INTO petitions (id, campaign_id, slug, default_language, translations, goal, "
            "consent_text) VALUES ($1, $2, $3, 'en', $4::jsonb, 1000000, 'I agree.')",
            petition,
            campaign,
            f"bench-{suffix}",
            '{"en": {"title": "Pay your workers"}}',
        )
        await conn.execute(
            "INSERT INTO petition_consent_versions (petition_id, version, text) VALUES ($1, 1, 'I agree.')",
            petition,
        )
    finally:
        await conn.close()
    return f"bench-{suffix}"


async def _sign(base_url: str, slug: str, rate: float, seconds: float) -> tuple[dict[str, float], int]:
    """Sign on schedule over a pool of keep-alive connections (the benchmarks' own light client, so the
    load generator takes little of the machine); returns each email's send time and how many requests
    were answered 202."""
    total = int(rate * seconds)
    sent_at: dict[str, float] = {}
    accepted = 0
    pool: asyncio.Queue[RawConnection] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        pool.put_nowait(RawConnection.to(base_url))
    path = f"/v1/petitions/{slug}/signatures"

    async def one(i: int) -> None:
        nonlocal accepted
        email = f"signer-{i}-{uuid.uuid4().hex[:6]}@{DOMAINS[i % len(DOMAINS)]}"
        name = f"Signer {chr(65 + i % 26)}{chr(97 + i // 26 % 26)}{chr(97 + i // 676 % 26)}"  # no digits
        body = json.dumps({"name": name, "email": email, "country": "BD", "language": "en"})
        headers = [
            ("Content-Type", "application/json"),
            ("X-Forwarded-For", f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"),
        ]
        sent_at[email] = time.time()
        connection = await pool.get()
        try:
            status, _ = await connection.request("POST", path, body.encode(), headers)
        finally:
            pool.put_nowait(connection)
        if status == 202:
            accepted += 1

    start = time.monotonic()
    tasks = []
    for i in range(total):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        await pool.get_nowait().aclose()
    return sent_at, accepted


async def _timeline(database_url: str) -> dict[str, tuple[float, float, float]]:
    """Per signer: when the signature row was written, when its mail was queued, and when the sender
    recorded the server's acceptance (epoch seconds, this machine's clock)."""
    import asyncpg

    url = make_url(async_url(database_url)).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT s.email, extract(epoch FROM s.created_at) AS signed, "
            "extract(epoch FROM m.created_at) AS queued, extract(epoch FROM m.sent_at) AS sent "
            "FROM signatures s JOIN email_messages m ON m.kind = 'confirmation' AND m.to_address = s.email "
            "WHERE m.sent_at IS NOT NULL"
        )
    finally:
        await conn.close()
    return {r["email"]: (float(r["signed"]), float(r["queued"]), float(r["sent"])) for r in rows}


def _percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    ordered = sorted(values)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]


def _stages(
    sent_at: dict[str, float], timeline: dict[str, tuple[float, float, float]], delivered: dict[str, float]
) -> dict[str, tuple[float, float]]:
    """Where the time went: the signing request (request left → row written), the pipeline and its
    confirmation job (→ mail queued), the sender (→ acceptance recorded), the sink's own record."""
    emails = [e for e in sent_at if e in timeline and e in delivered]
    return {
        "request → signed": _percentiles([timeline[e][0] - sent_at[e] for e in emails]),
        "signed → mail queued": _percentiles([timeline[e][1] - timeline[e][0] for e in emails]),
        "queued → sent": _percentiles([timeline[e][2] - timeline[e][1] for e in emails]),
        "sent → sink recorded": _percentiles([delivered[e] - timeline[e][2] for e in emails]),
    }


def _read(record: Path) -> dict[str, float]:
    delivered: dict[str, float] = {}
    for line in record.read_text().splitlines():
        at, _, recipient = line.partition(" ")
        delivered.setdefault(recipient.strip().lower(), float(at))
    return delivered


def _wait_for_mail(record: Path, sent_at: dict[str, float], expected: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(_read(record).keys() & sent_at.keys()) < expected:
        time.sleep(0.5)


def run(*, rate: float = 100.0, seconds: float = 20.0, warmup: float = 3.0, wait: float = 30.0) -> Result:
    """A warm-up (signing at the rate until the worker, which starts with the API, sends their mail),
    then the timed signing; latencies are of the timed signatures only."""
    with tempfile.TemporaryDirectory(prefix="loom-mail-bench-") as scratch_dir:
        record = Path(scratch_dir) / "accepted.log"
        with scratch_database() as scratch, smtp_sink(record) as smtp_port:
            # The load generator plays the reverse proxy: each signer's X-Forwarded-For is believed.
            env = scratch.with_env(
                LOOM_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}", LOOM_TRUSTED_PROXIES='["127.0.0.1"]'
            )
            with serving(env) as base_url, working(env):
                slug = asyncio.run(_petition(scratch.database_url))
                if warmup > 0:
                    warm, answered = asyncio.run(_sign(base_url, slug, rate, warmup))
                    _wait_for_mail(record, warm, answered, 60)
                sent_at, accepted = asyncio.run(_sign(base_url, slug, rate, seconds))
                _wait_for_mail(record, sent_at, accepted, wait)
                delivered = _read(record)
                timeline = asyncio.run(_timeline(scratch.database_url))
    latencies = sorted(delivered[email] - at for email, at in sent_at.items() if email in delivered)
    return Result(len(sent_at), accepted, len(latencies), latencies, _stages(sent_at, timeline, delivered))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0, help="signatures per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to sign for")
    parser.add_argument("--warmup", type=float, default=3.0, help="untimed signing first (seconds)")
    parser.add_argument("--wait", type=float, default=30.0, help="how long to wait for the last mails")
    args = parser.parse_args(argv)
    result = run(rate=args.rate, seconds=args.seconds, warmup=args.warmup, wait=args.wait)
    p50, p99 = result.percentile(0.5), result.percentile(0.99)
    worst = result.latencies[-1] if result.latencies else math.nan
    verdict = "met" if p99 <= GOAL_P99_SECONDS and result.delivered == result.accepted else "MISSED"
    print(
        f"mail latency: signing → confirmation accepted by SMTP, {args.rate:g} signatures/s for "
        f"{args.seconds:g}s (loom serve + loom worker, one process each)\n"
        f"  sent {result.sent}, answered 202 {result.accepted}, mails {result.delivered}\n"
        f"  p50 {p50:.2f} s  p99 {p99:.2f} s  max {worst:.2f} s"
        f"  goal p99 ≤ {GOAL_P99_SECONDS:g} s: {verdict}"
    )
    for stage, (p50, p99) in result.stages.items():
        print(f"    {stage:<22} p50 {p50:.2f} s  p99 {p99:.2f} s")
    if result.delivered < result.accepted:
        raise SystemExit(
            f"mail latency: {result.accepted - result.delivered} confirmation mails never arrived"
        )


if __name__ == "__main__":
    main()
