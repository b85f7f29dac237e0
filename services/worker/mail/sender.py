"""The sender: takes due ``pending`` rows of ``email_messages`` in batches and sends them over one kept SMTP
connection. It owns the transactions, the connections and the loop; the statements and the reading of SMTP
failures are ``services.core.mail.sending``.

How a batch goes (connect, claim with a lease, rate limits, send, record while the next one is on the
wire) and why a message is never sent twice but in a millisecond's crash window: docs/email.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from enum import Enum

import aiosmtplib
import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.mail import message as mime
from services.core.mail import sending
from services.core.mail.limits import SendLimits
from services.core.mail.queue import NOTIFY_CHANNEL
from services.core.mail.sending import Claimed, Verdict, classify
from services.core.mail.smtp import SmtpConfig
from services.core.outbox.dispatch import backoff, describe_error

log = logging.getLogger(__name__)

_MAX_UNRECORDED = 20  # accepted messages whose "sent" is not yet committed, at most
_NOOP_AFTER_IDLE = 1.0  # seconds: a connection unused this long is checked before a batch


def dsn_of(source: AsyncEngine | async_sessionmaker[AsyncSession]) -> str:
    """A plain asyncpg DSN for the database an engine (or a sessionmaker's engine) uses."""
    engine = source if isinstance(source, AsyncEngine) else source.kw["bind"]
    return str(engine.url.set(drivername="postgresql").render_as_string(hide_password=False))


# --- recording outcomes -------------------------------------------------------------------------------


class Recorder:
    """Writes send outcomes to the database in a background task, a group at a time, so the next
    message's SMTP exchange overlaps the previous one's write. It has a connection of its own (plain
    asyncpg: marking messages sent is one round trip and little CPU, which matters at hundreds a
    second). A failed write is retried (with a pause) until it succeeds: an acceptance must not be
    forgotten while the process lives."""

    def __init__(self, dsn: str, settings: Settings) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._settings = settings
        self._waiting = sending.Outcomes()
        self._task: asyncio.Task[None] | None = None
        self.counts: dict[str, int] = defaultdict(int)

    @property
    def unrecorded(self) -> int:
        return len(self._waiting.sent)

    def sent(self, row_id: uuid.UUID) -> None:
        self._waiting.sent.append(str(row_id))
        self.counts["sent"] += 1
        self._kick()

    def retry(self, row: Claimed, error: str) -> None:
        s = self._settings
        delay = backoff(row.attempts + 1, base=s.mail_retry_base_seconds, cap=s.mail_retry_max_seconds)
        self._waiting.retries.append({"id": str(row.id), "delay": delay, "error": error})
        self.counts["retried"] += 1
        self._kick()

    def fail(self, row: Claimed, error: str, *, bounce: bool = False) -> None:
        self._waiting.failures.append({"id": str(row.id), "error": error})
        if bounce:
            self._waiting.bounces.append({"canonical": row.to_canonical, "error": error})
        self.counts["bounced" if bounce else "failed"] += 1
        self._kick()

    def reschedule(self, rows: Sequence[Claimed], at: float | None = None, *, deferred: bool = False) -> None:
        """Hand rows back (``at`` None: due now), without using an attempt."""
        when = time.time() if at is None else at
        self._waiting.reschedules.extend({"id": str(row.id), "at": when} for row in rows)
        if deferred:
            self.counts["deferred"] += len(rows)
        self._kick()

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="mail-recorder")

    async def _run(self) -> None:
        failures = 0
        while self._waiting:
            batch, self._waiting = self._waiting, sending.Outcomes()
            while True:
                try:
                    await self._write(batch)
                    break
                except Exception as exc:
                    failures += 1
                    log.error("mail: recording send outcomes failed, retrying: %s", describe_error(exc))
                    await asyncio.sleep(min(5.0, 0.1 * 2**failures))

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._dsn, timeout=10)
        return self._conn

    async def _write(self, batch: sending.Outcomes) -> None:
        try:
            conn = await self._connection()
            if not (batch.retries or batch.failures or batch.bounces or batch.reschedules):
                await sending.mark_sent(conn, batch.sent)  # the common case: one statement, autocommit
                return
            async with conn.transaction():
                await sending.record(conn, batch, self._settings)
        except BaseException:
            await self.close()  # a fresh connection for the retry
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def settle(self, *, below: int = 1) -> None:
        """Wait until fewer than ``below`` accepted messages are unrecorded (``below=1``: all outcomes
        written)."""
        while self._task is not None and not self._task.done():
            if below > 1 and self.unrecorded < below:
                return
            await asyncio.shield(self._task)
        if self._waiting:  # outcomes added after the task finished its last group
            self._kick()
            await self.settle(below=below)


# --- waking up ----------------------------------------------------------------------------------------


class Listener:
    """``LISTEN loom_mail`` on a connection of its own: ``queue()`` NOTIFYs on commit. If the connection
    cannot be made (or breaks), the sender relies on its poll and tries again next time."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self.event = asyncio.Event()
        self._warned = False

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> Listener:
        return cls(dsn_of(engine))

    def _notified(self, *_: object) -> None:
        self.event.set()

    async def ensure(self) -> bool:
        if self._conn is not None and not self._conn.is_closed():
            return True
        try:
            self._conn = await asyncpg.connect(self._dsn, timeout=5)
            await self._conn.add_listener(NOTIFY_CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            if not self._warned:
                log.warning("mail: LISTEN unavailable, polling (%s)", type(exc).__name__)
                self._warned = True
            self._conn = None
            return False
        self._warned = False
        return True

    async def wait(self, seconds: float) -> bool:
        """Wait for a notification (True) or the timeout (False)."""
        await self.ensure()
        try:
            await asyncio.wait_for(self.event.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return False
        finally:
            self.event.clear()
        return True

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None


# --- the sender ---------------------------------------------------------------------------------------


class Step(Enum):
    worked = "worked"  # claimed a batch (sent, failed, deferred or suppressed some messages)
    idle = "idle"  # nothing due
    limited = "limited"  # the global rate limit allows nothing more this second
    paused = "paused"  # the server is unreachable or refusing: backing off


def _raise_if_cancelled() -> None:
    """Raise the cancellation that something below swallowed: aiosmtplib waits for replies with
    ``asyncio.wait_for``, which on Python 3.11 drops a cancellation that lands as the reply arrives. The
    task still counts it as requested, so the sender stops (the worker's shutdown) instead of sending its
    whole backlog first."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Sender:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        smtp: SmtpConfig,
        limits: SendLimits | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.settings = settings
        self.smtp = smtp
        self.limits = limits or SendLimits(None, per_second=0, per_domain_minute=0)
        self.mail_from = mime.Sender.parse(settings.mail_from)
        self.recorder = Recorder(dsn_of(sessionmaker), settings)
        self._client: aiosmtplib.SMTP | None = None
        self._last_used = 0.0
        self._server_failures = 0
        self.paused_until = 0.0  # monotonic
        self._limited_until = 0.0  # epoch
        self.connections = 0  # opened so far (for tests and benchmarks)
        self._ahead: asyncio.Task[mime.Envelope | mime.InvalidMessage] | None = None  # the next message

    # -- the connection --

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    async def _connect(self) -> bool:
        await self._disconnect()
        client = self.smtp.client()
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            detail = mime.scrub(f"{type(exc).__name__} {getattr(exc, 'code', '')}")
            self._pause(f"cannot connect to {self.smtp.describe()}: {detail}")
            with contextlib.suppress(Exception):
                client.close()
            return False
        self._client = client
        self._last_used = time.monotonic()
        self.connections += 1
        return True

    async def _disconnect(self, *, polite: bool = False) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if polite and client.is_connected:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await client.quit()
        with contextlib.suppress(Exception):
            client.close()

    async def _ready(self) -> bool:
        """A working connection: the kept one (checked with NOOP if idle a while), else a new one."""
        if self.connected and time.monotonic() - self._last_used < _NOOP_AFTER_IDLE:
            return True
        if self.connected:
            assert self._client is not None
            try:
                await self._client.noop()
                self._last_used = time.monotonic()
                return True
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                pass  # closed by the server while idle: connect again
        return await self._connect()

    def _pause(self, reason: str) -> None:
        self._server_failures += 1
        delay = backoff(self._server_failures, base=1.0, cap=self.settings.mail_server_backoff_max_seconds)
        self.paused_until = time.monotonic() + delay
        log.warning("mail: sender paused %.1f s: %s", delay, reason)

    async def close_idle(self) -> None:
        if self.connected and time.monotonic() - self._last_used >= self.settings.mail_idle_seconds:
            await self._disconnect(polite=True)

    async def close(self) -> None:
        await self.recorder.settle()
        await self.recorder.close()
        await self._disconnect(polite=True)

    # -- the queue --

    async def _has_due(self) -> bool:
        async with self._sessionmaker() as session:
            return await sending.has_due(session)

    async def next_due_in(self) -> float | None:
        """Seconds until the earliest pending message is due (None: nothing pending)."""
        async with self._sessionmaker() as session:
            return await sending.next_due_in(session)

    async def _claim(self, limit: int) -> tuple[list[Claimed], int]:
        async with self._sessionmaker.begin() as session:
            claimed, suppressed = await sending.claim(session, limit, lease=self.settings.mail_lease_seconds)
        self.recorder.counts["suppressed"] += suppressed
        return claimed, suppressed

    async def _apply_domain_limits(self, rows: list[Claimed]) -> list[Claimed]:
        """The rows the per-domain limit lets through now; the others are deferred to later windows (the
        k-th message over a domain's limit to the window after ``k // limit`` more)."""
        wanted: dict[str, int] = defaultdict(int)
        for row in rows:
            wanted[row.domain] += 1
        grants = await self.limits.take_domains(wanted)
        per_window = self.limits.per_domain_minute or 1
        allowed: list[Claimed] = []
        over: dict[str, int] = defaultdict(int)
        deferred: dict[float, list[Claimed]] = defaultdict(list)
        for row in rows:
            grant = grants[row.domain]
            if grant.count > 0:
                allowed.append(row)
                grants[row.domain] = type(grant)(grant.count - 1, grant.window_ends)
                continue
            k = over[row.domain]
            over[row.domain] += 1
            deferred[grant.window_ends + 60.0 * (k // per_window)].append(row)
        for at, later in deferred.items():
            self.recorder.reschedule(later, at, deferred=True)
        return allowed

    # -- sending --

    async def step(self) -> Step:
        """One batch: claim, apply the rate limits, send, record (see the module docstring)."""
        if time.monotonic() < self.paused_until:
            return Step.paused
        if time.time() < self._limited_until:
            return Step.limited
        if not self.connected and not await self._has_due():
            return Step.idle
        if not await self._ready():
            return Step.paused
        claimed_at = time.monotonic()
        size = self.settings.mail_batch_size
        if self.limits.per_second:
            size = min(size, self.limits.per_second)
        rows, suppressed = await self._claim(size)
        if not rows:
            return Step.worked if suppressed else Step.idle
        grant = await self.limits.take_global(len(rows))
        if grant.count < len(rows):  # the rest wait for the next second
            self._limited_until = grant.window_ends
            self.recorder.reschedule(rows[grant.count :], grant.window_ends, deferred=True)
            rows = rows[: grant.count]
        rows = await self._apply_domain_limits(rows)
        await self._send(rows, deadline=claimed_at + self.settings.mail_lease_seconds - self.smtp.timeout - 5)
        await self.recorder.settle()
        return Step.worked

    async def _build(self, row: Claimed) -> mime.Envelope | mime.InvalidMessage:
        try:
            return mime.build(
                row_id=row.id,
                sender=self.mail_from,
                to_address=row.to_address,
                subject=row.subject,
                text_body=row.text_body,
                html_body=row.html_body,
                headers=row.headers,
                created_at=row.created_at,
            )
        except mime.InvalidMessage as exc:
            return exc

    async def _send(self, rows: list[Claimed], *, deadline: float) -> None:
        """Send ``rows`` one by one; each message is built while the previous one is on the wire."""
        self._ahead = asyncio.create_task(self._build(rows[0])) if rows else None
        try:
            await self._send_built(rows, deadline)
        finally:
            if self._ahead is not None and not self._ahead.done():
                self._ahead.cancel()
            self._ahead = None

    async def _send_built(self, rows: list[Claimed], deadline: float) -> None:
        for index, row in enumerate(rows):
            _raise_if_cancelled()
            if index and time.monotonic() > deadline:
                self.recorder.reschedule(rows[index:])  # the lease is running out: hand them back
                return
            assert self._ahead is not None
            envelope = await self._ahead
            self._ahead = asyncio.create_task(self._build(rows[index + 1])) if index + 1 < len(rows) else None
            if isinstance(envelope, mime.InvalidMessage):
                self.recorder.fail(row, str(envelope))
                continue
            if self._client is None:  # the connection was lost on the previous message
                self.recorder.reschedule(rows[index:])
                return
            try:
                async with asyncio.timeout(self.smtp.timeout):
                    await self._client.sendmail(
                        self.mail_from.address,
                        [envelope.recipient],
                        envelope.data,
                        mail_options=["SMTPUTF8"] if envelope.smtputf8 else None,
                    )
            except Exception as exc:
                verdict, detail = classify(exc)
                if verdict is Verdict.retry:
                    self.recorder.retry(row, detail)
                elif verdict is Verdict.bounce:
                    self.recorder.fail(row, detail, bounce=True)
                elif verdict is Verdict.fail:
                    self.recorder.fail(row, detail)
                else:
                    if verdict is Verdict.lost:
                        self.recorder.retry(row, detail)  # it may have got through: counts as an attempt
                        self.recorder.reschedule(rows[index + 1 :])
                    else:
                        self.recorder.reschedule(rows[index:])
                    await self._disconnect()
                    self._pause(detail)
                    return
                self._last_used = time.monotonic()
                continue
            self.recorder.sent(row.id)
            self._last_used = time.monotonic()
            self._server_failures = 0
            if self.recorder.unrecorded >= _MAX_UNRECORDED:
                await self.recorder.settle(below=_MAX_UNRECORDED)

    async def drain(self, *, max_batches: int | None = None) -> Step:
        """Send batches until nothing is due, the rate limit says wait, or the sender pauses; returns why
        it stopped (``worked`` only when ``max_batches`` ran out)."""
        batches = 0
        while max_batches is None or batches < max_batches:
            _raise_if_cancelled()
            step = await self.step()
            if step is not Step.worked:
                return step
            batches += 1
        return Step.worked

    async def wait_seconds(self, step: Step) -> float:
        """How long to sleep after ``drain`` stopped with ``step`` (a notification may end it sooner)."""
        poll = self.settings.mail_poll_seconds
        if step is Step.paused:
            return max(0.0, self.paused_until - time.monotonic())
        if step is Step.limited:
            return max(0.01, self._limited_until - time.time())
        if step is Step.worked:
            return 0.0
        due = await self.next_due_in()
        return poll if due is None else min(poll, max(0.01, due))

    async def run_forever(self, listener: Listener | None = None) -> None:
        """Send as mail becomes due, woken by NOTIFY (or the poll) until cancelled."""
        try:
            while True:
                step = await self.drain()
                wait = await self.wait_seconds(step)
                if step is Step.paused:
                    await asyncio.sleep(wait)  # new mail must not make a paused sender hammer the server
                    continue
                if wait > 0:
                    if listener is not None:
                        await listener.wait(min(wait, self.settings.mail_idle_seconds))
                    else:
                        await asyncio.sleep(min(wait, self.settings.mail_idle_seconds))
                await self.close_idle()
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await asyncio.shield(self.close())
