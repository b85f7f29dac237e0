"""Async engine and session factory over asyncpg."""

from __future__ import annotations

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
