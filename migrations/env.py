"""Alembic environment: async, over asyncpg, URL from Loom's settings."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.core.db.engine import async_url
from services.core.db.models import Base
from services.core.registry.models import OPTIONAL_INDEXES


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Leave out of autogenerate the indexes made only where an extension is installed."""
    return not (type_ == "index" and name in OPTIONAL_INDEXES)


config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if url:
        return str(url)
    from services.core.config import get_settings
    from services.core.embedded import resolve_urls

    return resolve_urls(get_settings())[0]


def run_migrations_offline() -> None:
    context.configure(
        url=async_url(_database_url()),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # called with an open connection (tests)
        _run(connection)
        return
    engine = create_async_engine(async_url(_database_url()))
    async with engine.connect() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
