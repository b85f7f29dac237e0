"""How fast Loom sends email: messages/s to a local SMTP sink through Loom's sender, against a raw
aiosmtplib loop sending the same number of prebuilt messages over one connection, in the same run.

The sink is an aiosmtpd server in a subprocess (so it does not share the event loop or the GIL with the
sender) that accepts and discards. Loom's round queues N rows (not timed), then times the sender
draining them: claiming batches, building each MIME message, sending over its one connection, and
recording every row as sent (all committed before the clock stops). The raw round times connect + N
``sendmail`` calls of messages built beforehand. Goal: Loom >= 0.7x raw.

    python -m benchmarks.mail [--messages 2000] [--repeats 3]

Uses DATABASE_URL (the embedded server when unset), in a scratch database of its own; no rate limits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import aiosmtplib
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from benchmarks.common import admin
from benchmarks.smtp_sink import smtp_sink
from services.core.config import Settings
from services.core.db import migrate
from services.core.db.engine import async_url, create_engine, create_sessionmaker
from services.core.mail import message as mime
from services.core.mail.models import MessageCategory
from services.core.mail.queue import NewMessage, queue_many
from services.core.mail.smtp import SmtpConfig
from services.worker.mail.sender import Sender, Step
from services.worker.settings import urls

TEXT = (
    "Thank you for signing.\n\nPlease confirm your signature: https://campaign.example/confirm/abcdef\n" * 3
)
HTML = (
    "<p>Thank you for signing.</p><p><a href='https://campaign.example/confirm/abcdef'>Confirm</a></p>\n" * 3
)


@dataclass(frozen=True)
class Round:
    name: str
    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def _messages(count: int) -> list[NewMessage]:
    return [
        NewMessage(
            dedup_key=f"bench:{uuid.uuid4()}",
            kind="confirmation",
            category=MessageCategory.transactional,
            to_address=f"signer{i}@example.org",
            subject="Please confirm your signature",
            text_body=TEXT,
            html_body=HTML,
            headers={"List-Unsubscribe": "<https://campaign.example/u/abc>"},
        )
        for i in range(count)
    ]


async def raw_round(port: int, count: int) -> Round:
    """aiosmtplib alone: prebuilt messages, one connection."""
    sender = mime.Sender.parse("Loom <no-reply@loom.localhost>")
    now = datetime.now(UTC)
    prebuilt = [
        mime.build(
            row_id=uuid.uuid4(),
            sender=sender,
            to_address=m.to_address,
            subject=m.subject,
            text_body=m.text_body,
            html_body=m.html_body,
            headers=m.headers,
            created_at=now,
        )
        for m in _messages(count)
    ]
    started = time.perf_counter()
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
    await client.connect()
    for envelope in prebuilt:
        await client.sendmail(sender.address, [envelope.recipient], envelope.data)
    await client.quit()
    return Round("raw aiosmtplib", count, time.perf_counter() - started)


async def loom_round(settings: Settings, database_url: str, port: int, count: int) -> Round:
    engine = create_engine(settings, database_url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions.begin() as session:
            await queue_many(session, _messages(count))
        smtp = SmtpConfig.from_url(f"smtp://127.0.0.1:{port}?starttls=off")
        sender = Sender(sessions, settings, smtp=smtp)
        started = time.perf_counter()
        step = await sender.drain()
        await sender.close()
        seconds = time.perf_counter() - started
        if step is not Step.idle or sender.recorder.counts["sent"] != count:
            raise RuntimeError(f"Loom's sender stopped with {step}: {dict(sender.recorder.counts)}")
        return Round("Loom sender", count, seconds)
    finally:
        async with sessions.begin() as session:
            from sqlalchemy import text

            await session.execute(text("DELETE FROM email_messages"))
        await engine.dispose()


async def run(count: int = 2000, repeats: int = 3) -> tuple[Round, Round]:
    """Alternate the two ``repeats`` times and keep each one's best round (the machine is shared)."""
    base = Settings()
    server_url, _ = urls(base)
    name = f"loom_bench_{uuid.uuid4().hex[:8]}"
    await admin(server_url, f'CREATE DATABASE "{name}"')
    database_url = make_url(async_url(server_url)).set(database=name).render_as_string(False)
    try:
        with smtp_sink() as port:
            await asyncio.to_thread(migrate.upgrade, database_url)
            settings = base.model_copy(
                update={
                    "database_url": database_url,
                    "smtp_url": SecretStr(f"smtp://127.0.0.1:{port}"),
                    "mail_rate_per_second": 0,
                    "mail_rate_per_domain_per_minute": 0,
                }
            )
            best: dict[str, Round] = {}
            for _ in range(repeats):
                for result in (
                    await raw_round(port, count),
                    await loom_round(settings, database_url, port, count),
                ):
                    if result.name not in best or result.rate > best[result.name].rate:
                        best[result.name] = result
            return best["raw aiosmtplib"], best["Loom sender"]
    finally:
        await admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of each; the best is kept")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    raw, loom = asyncio.run(run(args.messages, args.repeats))
    print(
        f"mail: messages/s to a local SMTP sink (aiosmtpd, own process), best of {args.repeats} rounds each"
    )
    for r in (raw, loom):
        print(f"  {r.name:<15} {r.messages:>6} messages in {r.seconds:6.2f}s = {r.rate:8.1f} msg/s")
    print(f"  ratio Loom/raw: {loom.rate / raw.rate:.2f}x (goal >= 0.7x)")


if __name__ == "__main__":
    main()
