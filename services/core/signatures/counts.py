"""Public counts and statistics of petitions, computed in SQL and cached in Redis.

:data:`COUNTED` is the one rule of a counted signature. The pipeline caches each count's response body
under the petition's id and slug (:func:`store`); on a miss :func:`load` computes it and stores it only if
the worker has not meanwhile. Statistics are cached briefly. docs/signatures.md, "Counting".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.errors import PetitionNotFound
from services.core.config import Settings
from services.core.refs import Ref
from services.core.signatures.schemas import (
    CountryCount,
    DayCount,
    PartnerCount,
    PetitionCount,
    PetitionStats,
)

log = logging.getLogger(__name__)

COUNT_KEY = "loom:petition-count:"
STATS_KEY = "loom:petition-stats:"
HIDDEN = b"-"
# Kept this long without activity; a missing key is recomputed on the next request.
COUNT_TTL_SECONDS = 24 * 3600

COUNTED = (
    "s.state = 'unique' AND s.invalidation_id IS NULL "
    "AND (p.count_policy = 'all_unique' OR s.confirmed_at IS NOT NULL OR s.attested)"
)
_COUNTS = text(
    "SELECT p.id, p.slug, p.goal, c.status IN ('published', 'closed') AS public, now() AS at, "  # noqa: S608 - constant SQL fragments; values are bound
    f"(SELECT count(*) FROM signatures s WHERE s.petition_id = p.id AND {COUNTED}) AS count "
    "FROM petitions p JOIN campaigns c ON c.id = p.campaign_id "
)


class CachedCount:
    """A petition's count as cached: the response body, and whether the public may see it."""

    __slots__ = ("body", "count", "public")

    def __init__(self, count: PetitionCount, public: bool) -> None:
        self.count = count
        self.public = public
        self.body = count.model_dump_json().encode()


async def compute(session: AsyncSession, petition_ids: Iterable[uuid.UUID]) -> list[CachedCount]:
    rows = await session.execute(text(_COUNTS.text + "WHERE p.id = ANY(:ids)"), {"ids": list(petition_ids)})
    return [_cached(row) for row in rows]


_COUNT_BY_ID = text(_COUNTS.text + "WHERE p.id = CAST(:ref AS uuid)")
_COUNT_BY_SLUG = text(_COUNTS.text + "WHERE p.slug = :ref")


async def compute_one(session: AsyncSession, ref: Ref) -> CachedCount | None:
    if ref.names_nothing:
        return None
    query = _COUNT_BY_ID if ref.id is not None else _COUNT_BY_SLUG
    row = (await session.execute(query, {"ref": ref.key})).one_or_none()
    return _cached(row) if row is not None else None


def _cached(row: Row[Any]) -> CachedCount:
    count = PetitionCount(
        petition=row.id,
        slug=row.slug,
        count=row.count,
        goal=row.goal,
        updated_at=row.at,
    )
    return CachedCount(count, bool(row.public))


async def store(
    redis: Redis, counts: Iterable[CachedCount], settings: Settings, *, only_if_missing: bool = False
) -> None:
    """Write counts under each petition's id and slug (``only_if_missing``: where no count is cached).
    Never raises: a count that could not be cached is computed again on request."""
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for cached in counts:
                body = cached.body if cached.public else HIDDEN
                for ref in (str(cached.count.petition), cached.count.slug):
                    pipe.set(COUNT_KEY + ref, body, ex=COUNT_TTL_SECONDS, nx=only_if_missing)
            await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("petition counts not cached: Redis unavailable (%s)", type(exc).__name__)


async def cached_body(redis: Redis, ref: str) -> bytes | None:
    """The cached count response for ``ref`` (id or slug), :data:`HIDDEN`, or None when not cached
    (or Redis is unreachable)."""
    try:
        value = await redis.get(COUNT_KEY + ref)
    except (RedisError, OSError):
        return None
    return value if isinstance(value, bytes) else None


async def load(session: AsyncSession, redis: Redis, settings: Settings, ref: Ref) -> bytes:
    """The count response body for ``ref`` from the database (and cache it unless a count was cached
    meanwhile: only the worker's recounts replace a cached count, in the order they counted); 404 if not
    public."""
    cached = await compute_one(session, ref)
    if cached is None or not cached.public:
        raise PetitionNotFound(f"No petition {ref.text!r}.")
    await store(redis, [cached], settings, only_if_missing=True)
    return cached.body


_STATS = TypeAdapter(PetitionStats)


async def stats(session: AsyncSession, redis: Redis | None, settings: Settings, ref: Ref) -> PetitionStats:
    """Counted signatures of a public petition per country, partner and day (UTC); kept in ``redis`` for
    ``stats_cache_seconds`` unless it is None (the caller keeps them itself)."""
    cached = await compute_one(session, ref)
    if cached is None or not cached.public:
        raise PetitionNotFound(f"No petition {ref.text!r}.")
    petition_id = cached.count.petition
    if redis is None:
        return await _compute_stats(session, petition_id, cached.count.count)
    key = STATS_KEY + str(petition_id)
    try:
        hit = await redis.get(key)
    except (RedisError, OSError):
        hit = None
    if isinstance(hit, bytes):
        return _STATS.validate_json(hit)
    result = await _compute_stats(session, petition_id, cached.count.count)
    with contextlib.suppress(RedisError, OSError):
        await redis.set(key, result.model_dump_json(), ex=settings.stats_cache_seconds)
    return result


async def _compute_stats(session: AsyncSession, petition_id: uuid.UUID, count: int) -> PetitionStats:
    base = (
        "FROM signatures s JOIN petitions p ON p.id = s.petition_id "
        f"WHERE s.petition_id = :petition AND {COUNTED} "
    )
    params = {"petition": petition_id}
    by_country = await session.execute(
        text(f"SELECT s.country, count(*) AS n {base} GROUP BY s.country ORDER BY n DESC, s.country"), params
    )
    by_partner = await session.execute(
        text(
            "SELECT o.slug, count(*) AS n FROM signatures s JOIN petitions p ON p.id = s.petition_id "  # noqa: S608 - constant SQL fragments; values are bound
            "LEFT JOIN organisations o ON o.id = s.organisation_id "
            f"WHERE s.petition_id = :petition AND {COUNTED} GROUP BY o.slug ORDER BY n DESC, o.slug"
        ),
        params,
    )
    by_day = await session.execute(
        text(
            "SELECT (s.created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n "
            f"{base} GROUP BY day ORDER BY day"
        ),
        params,
    )
    now = (await session.execute(text("SELECT now()"))).scalar_one()
    assert isinstance(now, datetime)
    return PetitionStats(
        petition=petition_id,
        count=count,
        by_country=[CountryCount(country=c, count=n) for c, n in by_country],
        by_partner=[PartnerCount(partner=slug, count=n) for slug, n in by_partner],
        by_day=[DayCount(day=d, count=n) for d, n in by_day],
        updated_at=now,
    )


class CountMemo:
    """The last count bodies this process served, each kept for ``ttl`` seconds: a petition going viral is
    asked for its count thousands of times a second, and the worker refreshes it about once a second, so
    a second-old copy in memory is as good as Redis's and costs no round trip.

    When a copy expires, :meth:`refresh` lets one request fetch the new one while the others asking for
    the same petition wait for it, instead of every request in flight asking Redis at once."""

    def __init__(self, ttl: float = 1.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, bytes]] = {}
        self._pending: dict[str, asyncio.Future[bytes]] = {}

    def get(self, ref: str, now: float) -> bytes | None:
        entry = self._entries.get(ref)
        if entry is None or entry[0] <= now:
            return None
        return entry[1]

    def put(self, ref: str, body: bytes, now: float) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # crude, and rare: only with more petitions asked for than max_entries
        self._entries[ref] = (now + self.ttl, body)

    async def refresh(self, ref: str, fetch: Callable[[], Awaitable[bytes]]) -> bytes:
        """``fetch()`` ``ref``'s body and keep it. Requests asking while a fetch is in flight share it and
        are all woken when it ends (a lock would wake them one event-loop turn after another). With
        ``ttl`` 0 nothing is kept or shared."""
        if self.ttl <= 0:
            return await fetch()
        pending = self._pending.get(ref)
        if pending is None:
            pending = self._pending[ref] = asyncio.ensure_future(fetch())
            pending.add_done_callback(functools.partial(self._fetched, ref))
        return await asyncio.shield(pending)  # a client that goes away does not cancel the others' fetch

    def _fetched(self, ref: str, done: asyncio.Future[bytes]) -> None:
        self._pending.pop(ref, None)
        if not done.cancelled() and done.exception() is None:
            self.put(ref, done.result(), time.monotonic())
