"""Staff upload of a CSV of signatures: the report, partner attribution and its limits for partners,
unknown petitions, unreadable files, a streamed body, and the `loom import-signatures` command."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.campaigns.models import Campaign, CampaignStatus, Petition
from services.core.config import Settings
from services.core.db.engine import create_engine
from services.core.network.models import Organisation
from services.core.signatures.models import Channel, Signature, SignatureState
from services.core.users.models import Role
from tests.api.network.helpers import HeadersFor
from tests.api.signatures.conftest import RunPipeline
from tests.factories import make_organisation, make_petition, spelled
from tests.test_cli import loom

CSV = {"Content-Type": "text/csv"}
GOOD_AND_BAD = (
    "name,email,country,postal_code,opt_in\n"
    "Jane Doe,jane@example.org,BD,1212,yes\n"
    "Rahim Uddin,,BD,1207,\n"  # paper: no email
    "No Country,,,1207,\n"  # line 4: bad
    "Bad Opt,,BD,,sometimes\n"  # line 5: bad
)


async def _rows(db: AsyncSession, petition_id: uuid.UUID) -> list[Signature]:
    query = (
        select(Signature)
        .where(Signature.petition_id == petition_id)
        .order_by(Signature.created_at)
        .execution_options(populate_existing=True)
    )
    return list((await db.scalars(query)).all())


async def test_upload_keeps_good_rows_and_reports_bad_ones(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, email_required=True)
    headers = await headers_for(Role.campaigner)
    await db.commit()
    response = await client.post(
        f"/v1/petitions/{petition.slug}/imports", content=GOOD_AND_BAD, headers={**headers, **CSV}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["imported"], report["rejected"], report["errors_truncated"]) == (2, 2, False)
    assert report["petition"] == str(petition.id)
    assert report["partner"] is None
    assert [e["line"] for e in report["errors"]] == [4, 5]
    assert report["errors"][0]["reason"].startswith("country:")
    jane, rahim = await _rows(db, petition.id)
    assert (jane.channel, jane.email, jane.opt_in) == (Channel.import_, "jane@example.org", True)
    assert (rahim.email, rahim.postal_key) == (None, "1207")
    # The same file again: the pipeline merges the duplicates (by email, and paper by name + postal code).
    again = await client.post(
        f"/v1/petitions/{petition.id}/imports", content=GOOD_AND_BAD, headers={**headers, **CSV}
    )
    assert again.json()["imported"] == 2
    await run_pipeline()
    states = [row.state for row in await _rows(db, petition.id)]
    assert states == [SignatureState.unique] * 2 + [SignatureState.duplicate] * 2


async def test_partner_attribution(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    petition = await make_petition(db)
    own, other = await make_organisation(db), await make_organisation(db)
    coordinator = await headers_for(Role.coordinator)
    partner = await headers_for(Role.partner, own)
    await db.commit()
    url = f"/v1/petitions/{petition.slug}/imports"
    body = "name,country\nA One,BD\n"
    by_staff = await client.post(
        url, params={"partner": other.slug}, content=body, headers={**coordinator, **CSV}
    )
    assert by_staff.json()["partner"] == str(other.id)
    # partners import for their own organisation by default, and may name it
    by_default = await client.post(url, content=body, headers={**partner, **CSV})
    assert by_default.status_code == 200, by_default.text
    assert by_default.json()["partner"] == str(own.id)
    named = await client.post(url, params={"partner": own.slug}, content=body, headers={**partner, **CSV})
    assert named.json()["partner"] == str(own.id)
    # … but never another's
    forbidden = await client.post(
        url, params={"partner": other.slug}, content=body, headers={**partner, **CSV}
    )
    assert forbidden.status_code == 403
    assert {row.organisation_id for row in await _rows(db, petition.id)} == {own.id, other.id}
    assert len(await _rows(db, petition.id)) == 3
    unknown = await client.post(
        url, params={"partner": "no-such-org"}, content=body, headers={**coordinator, **CSV}
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "partner-organisation-not-found")


async def test_case_workers_may_not_import(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    petition = await make_petition(db)
    headers = await headers_for(Role.case_worker)
    await db.commit()
    response = await client.post(
        f"/v1/petitions/{petition.slug}/imports", content="name,country\n", headers={**headers, **CSV}
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("path", "content", "content_type", "status", "code"),
    [
        ("no-such-petition", "name,country\n", "text/csv", 404, "petition-not-found"),
        ("{petition}", "name,phone\n", "text/csv", 400, "invalid-import-file"),
        ("{petition}", "", "text/csv; charset=utf-8", 400, "invalid-import-file"),
        ("{petition}", '{"name": "x"}', "application/json", 415, "unsupported-media-type"),
    ],
)
async def test_refusals(
    client: httpx.AsyncClient,
    db: AsyncSession,
    headers_for: HeadersFor,
    path: str,
    content: str,
    content_type: str,
    status: int,
    code: str,
) -> None:
    petition = await make_petition(db)
    headers = await headers_for(Role.admin)
    await db.commit()
    response = await client.post(
        f"/v1/petitions/{path.format(petition=petition.slug)}/imports",
        content=content,
        headers={**headers, "Content-Type": content_type},
    )
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await _rows(db, petition.id) == []


async def test_a_streamed_body_of_20000_rows(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    """The body arrives in chunks and is read with request.stream(): never loaded whole (memory is
    constant by design: one chunk, one batch of 1,000 rows, at most 1,000 error details)."""
    petition = await make_petition(db)
    headers = await headers_for(Role.admin)
    await db.commit()
    rows = 20_000

    async def body() -> AsyncIterator[bytes]:
        yield b"name,country,postal_code\n"
        for start in range(0, rows, 500):
            yield "".join(f"Signer {spelled(i)},BD,{i}\n" for i in range(start, start + 500)).encode()

    response = await client.post(
        f"/v1/petitions/{petition.slug}/imports", content=body(), headers={**headers, **CSV}
    )
    assert response.status_code == 200, response.text
    assert (response.json()["imported"], response.json()["rejected"]) == (rows, 0)
    assert await db.scalar(select(func.count()).where(Signature.petition_id == petition.id)) == rows


# --- the command -------------------------------------------------------------------------------------------


def _petition(database_url: str) -> Iterator[tuple[str, str]]:
    async def create() -> tuple[str, str, uuid.UUID, uuid.UUID, uuid.UUID]:
        engine = create_engine(Settings(), database_url)
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            petition = await make_petition(session, campaign_status=CampaignStatus.closed)
            organisation = await make_organisation(session)
            await session.commit()
        await engine.dispose()
        return petition.slug, organisation.slug, petition.id, petition.campaign_id, organisation.id

    async def drop(petition_id: uuid.UUID, campaign_id: uuid.UUID, organisation_id: uuid.UUID) -> None:
        engine = create_engine(Settings(), database_url)
        async with engine.begin() as conn:
            await conn.execute(delete(Signature).where(Signature.petition_id == petition_id))
            await conn.execute(delete(Petition).where(Petition.id == petition_id))
            await conn.execute(delete(Campaign).where(Campaign.id == campaign_id))
            await conn.execute(delete(Organisation).where(Organisation.id == organisation_id))
        await engine.dispose()

    slug, org, petition_id, campaign_id, organisation_id = asyncio.run(create())
    yield slug, org
    asyncio.run(drop(petition_id, campaign_id, organisation_id))


@pytest.fixture
def cli_petition(database_url: str) -> Iterator[tuple[str, str]]:
    """A closed petition and an organisation, committed (the command runs in another process)."""
    yield from _petition(database_url)


def _count(database_url: str, slug: str) -> list[tuple[str | None, bool]]:
    async def run() -> list[tuple[str | None, bool]]:
        engine = create_engine(Settings(), database_url)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT o.slug, s.channel = 'import' FROM signatures s "
                    "JOIN petitions p ON p.id = s.petition_id "
                    "LEFT JOIN organisations o ON o.id = s.organisation_id WHERE p.slug = :slug"
                ),
                {"slug": slug},
            )
            result = [(r[0], r[1]) for r in rows]
        await engine.dispose()
        return result

    return asyncio.run(run())


def test_the_command_imports_a_file(
    cli_petition: tuple[str, str], database_url: str, redis_url: str, tmp_path: Path
) -> None:
    slug, org = cli_petition
    good = tmp_path / "good.csv"
    good.write_text(
        "name,email,country,postal_code\n" + "".join(f"Signer {spelled(i)},,BD,{i}\n" for i in range(2500))
    )
    result = loom("import-signatures", str(good), "--petition", slug, "--partner", org,
                  database_url=database_url, redis_url=redis_url)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2500 imported, 0 rejected" in result.stdout
    rows = _count(database_url, slug)
    assert len(rows) == 2500
    assert set(rows) == {(org, True)}

    bad = tmp_path / "bad.csv"
    bad.write_text("name,email,country\nGood One,good@example.org,BD\nBad,not-an-email,BD\n,,BD\n")
    result = loom("import-signatures", str(bad), "--petition", slug,
                  database_url=database_url, redis_url=redis_url)  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "1 imported, 2 rejected" in result.stdout
    assert "line 3: email:" in result.stderr
    assert "line 4: name:" in result.stderr
    assert "good@example.org" not in result.stdout + result.stderr
    assert len(_count(database_url, slug)) == 2501


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (["--petition", "no-such-petition"], "name,country\nA,BD\n", "No petition"),
        (["--partner", "no-such-org"], "name,country\nA,BD\n", "No organisation"),
    ],
)
def test_the_command_fails_without_importing(
    cli_petition: tuple[str, str],
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    args: list[str],
    content: str,
    message: str,
) -> None:
    slug, _ = cli_petition
    path = tmp_path / "file.csv"
    path.write_text(content)
    if "--petition" not in args:
        args = [*args, "--petition", slug]
    result = loom("import-signatures", str(path), *args, database_url=database_url, redis_url=redis_url)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Nothing was imported" in result.stderr
    assert _count(database_url, slug) == []


def test_the_command_refuses_a_missing_file(database_url: str, redis_url: str, tmp_path: Path) -> None:
    result = loom("import-signatures", str(tmp_path / "missing.csv"), "--petition", "x",
                  database_url=database_url, redis_url=redis_url)  # fmt: skip
    assert result.returncode == 2
    assert "cannot read" in result.stderr
