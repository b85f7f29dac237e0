"""Async engine and session factory over asyncpg."""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from services.core.config import Settings


def async_url(url: str) -> str:
    """Accept ``postgres://``/``postgresql://`` URLs and point them at the asyncpg driver."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def driver_dsn(url: str) -> str:
    """The same database as a plain asyncpg DSN (``postgresql://…``)."""
    parsed = make_url(async_url(url)).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


async def _keep(connection: asyncpg.Connection) -> None:
    """Pool reset for connections that only ever run single autocommit statements: nothing to undo, so
    no round trip (asyncpg's default reset costs one per checkout); a connection left inside a
    transaction (never expected) is reset the usual way."""
    if connection.is_in_transaction():
        await connection.reset()


async def create_driver_pool(settings: Settings, database_url: str, *, application_name: str) -> asyncpg.Pool:
    """A plain asyncpg pool for a hot path of single autocommit statements (public signing): no ORM, no
    SQLAlchemy pool checkout, and connections kept open up to ``LOOM_DB_POOL_SIZE`` +
    ``LOOM_DB_MAX_OVERFLOW`` (none opened and closed per request under a burst)."""
    size = settings.db_pool_size + settings.db_max_overflow
    pool: asyncpg.Pool = await asyncpg.create_pool(
        driver_dsn(database_url),
        min_size=1,
        max_size=size,
        reset=_keep,
        # Kept open, not closed after 5 idle minutes: no timer to arm and cancel per checkout.
        max_inactive_connection_lifetime=0,
        server_settings={"application_name": application_name},
    )
    return pool


def create_engine(
    settings: Settings, database_url: str, *, pre_ping: bool = True, application_name: str = "loom"
) -> AsyncEngine:
    """An engine sized by the settings. ``pre_ping`` costs a round trip per checkout; ``application_name``
    shows in ``pg_stat_activity``."""
    return create_async_engine(
        async_url(database_url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=pre_ping,
        echo=settings.db_echo,
        connect_args={"server_settings": {"application_name": application_name}},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for the API's requests and the worker's transactions. Whoever owns a unit of work commits
    it (``LoomRoute``; the worker's loops, e.g. ``async with sessionmaker.begin() as session``); core code
    never does."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
