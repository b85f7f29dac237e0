"""Generations of public data: which cached public answers are still current, in every process.

A trigger on each table of a domain takes the next value of its sequence and sends ``NOTIFY
loom_generations, '<domain> <value>'`` at commit (migration 0022); :class:`Generations` listens and keeps
a token per domain that changes with every such write, whoever made it. docs/caching.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterable

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

CHANNEL = "loom_generations"
SYNC = "sync"  # a marker's payload: "sync <id>"
DOMAINS = ("network", "campaigns", "registry", "signatures")
_SEQUENCES = [f"(SELECT last_value FROM loom_generation_{d})" for d in DOMAINS]  # noqa: S608 - constants
_POLL = "SELECT " + ", ".join(_SEQUENCES)


def asyncpg_dsn(database_url: str) -> str:
    """A libpq-style URL asyncpg's ``connect`` takes, from any of Loom's database URLs."""
    parsed = make_url(database_url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


class Generations:
    """This process's view of the domains' generations (see the module's docstring)."""

    def __init__(self, database_url: str, *, poll_seconds: float = 5.0) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self.poll_seconds = poll_seconds
        self.tokens: dict[str, int] = dict.fromkeys(DOMAINS, 0)
        self.live = False
        self._polled: dict[str, int] | None = None
        self._notified_values: dict[str, int] = {}
        self._syncs: dict[str, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()  # one statement at a time on the listening connection
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()

    # --- reading -------------------------------------------------------------------------------------

    def snapshot(self, domains: Iterable[str]) -> tuple[int, ...] | None:
        """The tokens of ``domains`` now, or None while this process cannot see writes."""
        if not self.live:
            return None
        tokens = self.tokens
        return tuple(tokens[d] for d in domains)

    async def wait_for_change(self, domain: str, since: int) -> None:
        """Until ``domain``'s token is no longer ``since`` (tests, tools; bound it with a timeout)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.tokens[domain] != since)

    async def wait_live(self) -> None:
        """Until this process sees writes (tests, tools; bound it with a timeout)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.live)

    # --- keeping them ----------------------------------------------------------------------------------

    def _bump(self, domains: Iterable[str]) -> None:
        for domain in domains:
            self.tokens[domain] += 1
        self._wake()

    def _wake(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        with contextlib.suppress(RuntimeError):  # no running loop: nobody can be waiting
            asyncio.get_running_loop().create_task(notify())

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        domain, _, value = payload.partition(" ")
        if domain == SYNC:
            waiter = self._syncs.pop(value, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        if domain not in self.tokens:
            self._bump(DOMAINS)
            return
        with contextlib.suppress(ValueError):
            self._notified_values[domain] = max(self._notified_values.get(domain, 0), int(value))
        self._bump([domain])

    async def sync(self) -> None:
        """Until every write committed before this call is seen here: notifications reach a listener in
        commit order, so once this process's own marker comes back, the earlier ones have (read your
        writes across processes; tests). Raises if the listening connection is down."""
        connection = self._connection
        if connection is None or not self.live:
            raise ConnectionError("not listening for writes")
        marker = uuid.uuid4().hex
        waiter = self._syncs[marker] = asyncio.get_running_loop().create_future()
        try:
            async with self._lock:
                await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{SYNC} {marker}")
            await waiter
        finally:
            self._syncs.pop(marker, None)

    def _lost(self, _connection: object) -> None:
        if self.live:
            log.warning("public read cache off: lost the connection listening for writes")
        self.live = False
        self._bump(DOMAINS)

    async def _poll(self, connection: asyncpg.Connection) -> None:
        async with self._lock:
            row = await connection.fetchrow(_POLL, timeout=max(self.poll_seconds, 1.0))
        values = dict(zip(DOMAINS, (int(v) for v in row or ()), strict=True))
        if self._polled is not None:
            # A value no notification covered: a write of a transaction still open (its notification
            # follows at commit and bumps again) or one rolled back. Either way, drop the domain's answers.
            self._bump(
                d
                for d, new in values.items()
                if new != self._polled[d] and new > self._notified_values.get(d, 0)
            )
        self._polled = values

    async def start(self) -> None:
        """Listen in the background; the tokens are live once the first connection is listening."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="loom-generations")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.live = False
        await self._disconnect()

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=1)

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                connection = self._connection = await asyncpg.connect(
                    self._dsn, timeout=5, server_settings={"application_name": "loom-generations"}
                )
                connection.add_termination_listener(self._lost)
                await connection.add_listener(CHANNEL, self._notified)
                self._polled = None
                await self._poll(connection)  # listening first: nothing committed after this is missed
                self._bump(DOMAINS)  # whatever was cached before (re)connecting is suspect
                self.live = True
                self._wake()
                if delay > 0.5:
                    log.info("public read cache on again: listening for writes")
                delay = 0.5
                while not connection.is_closed():
                    await asyncio.sleep(self.poll_seconds)
                    await self._poll(connection)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is down or restarting: retry, cache off meanwhile
                if self.live or delay == 0.5:
                    log.warning("public read cache off: cannot listen for writes (%s)", type(exc).__name__)
                delay = min(delay * 2, 30.0)
            self.live = False
            self._bump(DOMAINS)
            await self._disconnect()
            await asyncio.sleep(delay)
