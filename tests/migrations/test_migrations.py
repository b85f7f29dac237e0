"""Models and migrations agree, and every migration downgrades and upgrades again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from services.core.config import Settings
from services.core.db import migrate
from services.core.db.engine import create_engine
from services.core.db.models import Base
from tests.conftest import _create_database, _drop_database


@pytest.fixture
def scratch_database(server_url: str) -> Iterator[str]:
    name = f"loom_migrations_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(_create_database(server_url, name))
    yield url
    asyncio.run(_drop_database(server_url, name))


def _diff(url: str) -> list[Any]:
    async def run() -> list[Any]:
        engine = create_engine(Settings(), url)
        try:
            async with engine.connect() as conn:

                def compare(sync_conn: Connection) -> list[Any]:
                    context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                    return list(compare_metadata(context, Base.metadata))

                return await conn.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _tables(url: str) -> set[str]:
    async def run() -> set[str]:
        engine = create_engine(Settings(), url)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
                return {row[0] for row in rows}
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_models_match_migrations(scratch_database: str) -> None:
    migrate.upgrade(scratch_database)
    assert _diff(scratch_database) == []


def test_every_migration_downgrades_and_upgrades_again(scratch_database: str) -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert revisions, "no migrations found"
    for revision in revisions:
        migrate.upgrade(scratch_database, revision)
    # step down one at a time to the base, then all the way up again
    for _ in revisions:
        migrate.downgrade(scratch_database, "-1")
    assert _tables(scratch_database) <= {"alembic_version"}
    migrate.upgrade(scratch_database)
    assert _diff(scratch_database) == []


def test_revision_files_are_date_prefixed() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    for revision in script.walk_revisions():
        filename = revision.path.rsplit("/", 1)[-1]
        assert filename[:10].replace("_", "").isdigit(), filename
    assert len(script.get_heads()) == 1, "migrations must form one line"
