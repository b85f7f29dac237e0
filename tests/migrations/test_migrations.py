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
from services.core.registry.models import OPTIONAL_INDEXES
from tests.conftest import _create_database, _drop_database


@pytest.fixture
def scratch_database(server_url: str) -> Iterator[str]:
    name = f"loom_migrations_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(_create_database(server_url, name))
    yield url
    asyncio.run(_drop_database(server_url, name))


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    return not (type_ == "index" and name in OPTIONAL_INDEXES)


def _diff(url: str) -> list[Any]:
    async def run() -> list[Any]:
        engine = create_engine(Settings(), url)
        try:
            async with engine.connect() as conn:

                def compare(sync_conn: Connection) -> list[Any]:
                    opts = {"compare_type": True, "include_object": include_object}
                    context = MigrationContext.configure(sync_conn, opts=opts)
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


def test_existing_imported_and_delivered_signatures_become_attested(scratch_database: str) -> None:
    """Migration 0012 on data written before it: imports and webhook deliveries are attested (and pass it
    to the counted signature they duplicate), nothing of theirs is mailed any more, the last link mailed
    starts each person's daily allowance, and their petitions are recounted."""
    migrate.upgrade(scratch_database, "0011")
    ids = {name: uuid.uuid4() for name in ("petition", "web", "paper", "hook", "mailed")}

    async def run(statements: list[str]) -> list[Any]:
        """Each statement's rows (SELECT) or result, in one transaction."""
        params = {name: str(value) for name, value in ids.items()}
        engine = create_engine(Settings(), scratch_database)
        try:
            async with engine.begin() as conn:
                results: list[Any] = []
                for sql in statements:
                    result = await conn.execute(text(sql), params)
                    results.append(result.all() if sql.startswith("SELECT") else result)
                return results
        finally:
            await engine.dispose()

    asyncio.run(
        run(
            [
                "INSERT INTO campaigns (id, slug, default_language, translations, status) "
                "VALUES (gen_random_uuid(), 'c', 'en', '{}', 'published')",
                "INSERT INTO petitions (id, campaign_id, slug, default_language, translations, consent_text) "
                "SELECT CAST(:petition AS uuid), id, 'p', 'en', '{}', 'I agree.' FROM campaigns",
                "INSERT INTO signatures (id, petition_id, channel, state, email, email_canonical, "
                "consent_version) VALUES "
                "(CAST(:web AS uuid), CAST(:petition AS uuid), 'web', 'unique', 'a@x.org', 'a@x.org', 1), "
                "(CAST(:paper AS uuid), CAST(:petition AS uuid), 'import', 'unique', NULL, NULL, 1)",
                "INSERT INTO signatures (id, petition_id, channel, state, email, email_canonical, "
                "consent_version, duplicate_of) VALUES (CAST(:hook AS uuid), CAST(:petition AS uuid), "
                "'webhook', 'duplicate', 'A@x.org', 'a@x.org', 1, CAST(:web AS uuid))",
                "INSERT INTO signatures (id, petition_id, channel, state, email, email_canonical, "
                "consent_version, confirmation_requested_at) VALUES (CAST(:mailed AS uuid), "
                "CAST(:petition AS uuid), 'web', 'unique', 'b@x.org', 'b@x.org', 1, "
                "'2026-11-30T10:00:00Z')",
                "INSERT INTO petition_signers VALUES "
                "(CAST(:petition AS uuid), 'a@x.org', CAST(:web AS uuid)), "
                "(CAST(:petition AS uuid), 'b@x.org', CAST(:mailed AS uuid))",
            ]
        )
    )
    migrate.upgrade(scratch_database)
    signatures, signers, refresh = asyncio.run(
        run(
            [
                "SELECT id, attested, send_confirmation_mail FROM signatures",
                "SELECT email_canonical, confirmation_mailed_at FROM petition_signers ORDER BY 1",
                "SELECT petition_id FROM petition_count_refresh",
            ]
        )
    )
    by_id = {row.id: (row.attested, row.send_confirmation_mail) for row in signatures}
    assert by_id == {
        ids["web"]: (True, True),  # vouched for by its webhook duplicate
        ids["paper"]: (True, False),
        ids["hook"]: (True, False),
        ids["mailed"]: (False, True),
    }
    assert [(r[0], r[1] is not None and r[1].isoformat()) for r in signers] == [
        ("a@x.org", False),
        ("b@x.org", "2026-11-30T10:00:00+00:00"),
    ]
    assert [r[0] for r in refresh] == [ids["petition"]]


def test_campaign_targets_become_companies(scratch_database: str) -> None:
    """Migration 0020 on campaigns written before it: each distinct name (ignoring case, accents and
    punctuation) becomes one company, linked in order; downgrading gives the names back."""
    migrate.upgrade(scratch_database, "0012")

    async def run(statements: list[str]) -> list[Any]:
        engine = create_engine(Settings(), scratch_database)
        try:
            async with engine.begin() as conn:
                return [(await conn.execute(text(sql))).all() for sql in statements]
        finally:
            await engine.dispose()

    asyncio.run(
        run(
            [
                "INSERT INTO campaigns (id, slug, default_language, translations, status, target_companies, "
                "created_at) VALUES "
                "(gen_random_uuid(), 'a', 'en', '{}', 'published', '[\"H&M\", \"Zara\", \"h & m\"]', "
                "'2026-01-01'), "
                "(gen_random_uuid(), 'b', 'en', '{}', 'draft', '[\"zára\", \"Primark\"]', '2026-02-01'), "
                "(gen_random_uuid(), 'c', 'en', '{}', 'draft', '[]', '2026-03-01') RETURNING id",
            ]
        )
    )
    migrate.upgrade(scratch_database)
    companies, targets, sources = asyncio.run(
        run(
            [
                "SELECT slug, name FROM companies ORDER BY slug",
                "SELECT c.slug, co.name FROM campaign_targets t JOIN campaigns c ON c.id = t.campaign_id "
                "JOIN companies co ON co.id = t.company_id ORDER BY c.slug, t.position",
                "SELECT field, value, source_label FROM registry_field_sources ORDER BY value::text",
            ]
        )
    )
    assert [tuple(r) for r in companies] == [("h-m", "H&M"), ("primark", "Primark"), ("zara", "Zara")]
    assert [tuple(r) for r in targets] == [("a", "H&M"), ("a", "Zara"), ("b", "Zara"), ("b", "Primark")]
    assert [r[1] for r in sources] == ["H&M", "Primark", "Zara"]
    assert {r[2] for r in sources} == {"campaign target (migration 0020)"}
    migrate.downgrade(scratch_database, "0012")
    (names,) = asyncio.run(run(["SELECT slug, target_companies FROM campaigns ORDER BY slug"]))
    assert [tuple(r) for r in names] == [("a", ["H&M", "Zara"]), ("b", ["Zara", "Primark"]), ("c", [])]
