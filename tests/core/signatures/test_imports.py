"""CSV import (core): good and bad rows with line numbers, paper rows without email, partner attribution,
unknown petitions and partners, unreadable files, streaming a large file in small chunks, and the
pipeline's deduplication of what was imported."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.campaigns.errors import CampaignArchived, PartnerOrganisationNotFound, PetitionNotFound
from services.core.campaigns.models import CampaignStatus
from services.core.signatures import imports
from services.core.signatures.errors import InvalidImportFile
from services.core.signatures.imports import ImportProgress, import_csv, parse_opt_in
from services.core.signatures.models import Channel, Signature, SignatureState
from services.worker.signatures import pipeline
from tests.factories import make_organisation, make_petition, spelled

HEADER = "name,email,country,postal_code,language,opt_in,source\n"


async def _rows(db: AsyncSession, petition_id: uuid.UUID) -> list[Signature]:
    return list(
        (
            await db.scalars(
                select(Signature).where(Signature.petition_id == petition_id).order_by(Signature.created_at)
            )
        ).all()
    )


async def test_good_rows_are_kept_and_bad_rows_reported_by_line(db: AsyncSession) -> None:
    petition = await make_petition(db, consent_version=3)
    csv_text = (
        HEADER
        + "Jane Doe,jane@example.org,bd,1212,bn,yes,stall\n"  # line 2
        + ",nobody@example.org,BD,,,,\n"  # line 3: no name
        + "Rahim Uddin,,BD,1207,,0,\n"  # line 4: paper, no email
        + "Bad Email,not-an-email,BD,,,,\n"  # line 5
        + "\n"  # line 6: blank, skipped
        + "Bad Country,,XX,,,,\n"  # line 7
        + "Bad Opt,,BD,,,maybe,\n"  # line 8
        + '"Multi\nLine",,BD,,,,\n'  # lines 9-10: a quoted line break is read, but names are one line
        + "Too Many,,BD,,,,,extra\n"  # line 11
        + '"Ana, Rahman",,BD,,,,\n'  # line 12: a quoted comma is fine
    )
    report = await import_csv(db, petition.slug, [csv_text], partner=None)
    assert (report.imported, report.rejected, report.errors_truncated) == (3, 6, False)
    assert [e.line for e in report.errors] == [3, 5, 7, 8, 10, 11]
    reasons = {e.line: e.reason for e in report.errors}
    assert reasons[3].startswith("name:")
    assert reasons[5].startswith("email:")
    assert reasons[7].startswith("country:")
    assert "opt_in" in reasons[8]
    assert reasons[10].startswith("name:")
    assert "one line" in reasons[10]
    assert "more fields" in reasons[11]
    assert all("example.org" not in e.reason for e in report.errors)  # reasons never quote the data
    jane, rahim, multi = await _rows(db, petition.id)
    assert (jane.name, jane.email, jane.email_canonical, jane.country) == (
        "Jane Doe", "jane@example.org", "jane@example.org", "BD",
    )  # fmt: skip
    assert (jane.postal_code, jane.language, jane.opt_in, jane.source) == ("1212", "bn", True, "stall")
    assert (jane.channel, jane.state, jane.consent_version, jane.organisation_id) == (
        Channel.import_, SignatureState.new, 3, None,
    )  # fmt: skip
    assert (rahim.email, rahim.name_key, rahim.postal_key, rahim.opt_in) == (
        None,
        "rahim uddin",
        "1207",
        False,
    )
    assert multi.name == "Ana, Rahman"


async def test_paper_rows_need_no_email_even_when_the_petition_requires_one(db: AsyncSession) -> None:
    petition = await make_petition(db, email_required=True)
    report = await import_csv(db, str(petition.id), ["name,country\nRahim Uddin,BD\n"], partner=None)
    assert (report.imported, report.rejected) == (1, 0)


async def test_closed_petitions_accept_imports_archived_ones_do_not(db: AsyncSession) -> None:
    closed = await make_petition(db, campaign_status=CampaignStatus.closed)
    report = await import_csv(db, closed.slug, ["name,country\nRahim Uddin,BD\n"], partner=None)
    assert report.imported == 1
    archived = await make_petition(db, campaign_status=CampaignStatus.archived)
    with pytest.raises(CampaignArchived):
        await import_csv(db, archived.slug, ["name,country\nRahim Uddin,BD\n"], partner=None)


async def test_partner_attribution_by_slug_or_id(db: AsyncSession) -> None:
    petition = await make_petition(db)
    partner = await make_organisation(db)
    by_slug = await import_csv(db, petition.slug, ["name,country\nA One,BD\n"], partner=partner.slug)
    by_id = await import_csv(db, petition.slug, [b"name,country\nB Two,BD\n"], partner=str(partner.id))
    assert by_slug.partner == by_id.partner == partner.id
    assert {row.organisation_id for row in await _rows(db, petition.id)} == {partner.id}
    with pytest.raises(PartnerOrganisationNotFound):
        await import_csv(db, petition.slug, ["name,country\nC,BD\n"], partner="no-such-org")


async def test_unknown_petition(db: AsyncSession) -> None:
    with pytest.raises(PetitionNotFound):
        await import_csv(db, "no-such-petition", ["name,country\n"], partner=None)
    with pytest.raises(PetitionNotFound):
        await import_csv(db, str(uuid.uuid4()), ["name,country\n"], partner=None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n\n", "header"),
        (b"name,country,phone\nJane,BD,123\n", "Unknown column"),
        (b"name,email\nJane,j@example.org\n", "Missing column"),
        (b"name,country,Name\n", "twice"),
        (b"name,country\nJ\xe9r\xf4me,FR\n", "UTF-8"),
    ],
)
async def test_unreadable_files_import_nothing(db: AsyncSession, content: bytes, message: str) -> None:
    petition = await make_petition(db)
    with pytest.raises(InvalidImportFile, match=message):
        await import_csv(db, petition.slug, [content], partner=None)
    assert await _rows(db, petition.id) == []


async def test_header_is_case_insensitive_with_bom_and_crlf(db: AsyncSession) -> None:
    petition = await make_petition(db)
    content = "\ufeffName , Country,OPT_IN\r\nJane Doe,bd,TRUE\r\n".encode()
    report = await import_csv(db, petition.slug, [content], partner=None)
    assert (report.imported, report.rejected) == (1, 0)
    [row] = await _rows(db, petition.id)
    assert (row.name, row.country, row.opt_in) == ("Jane Doe", "BD", True)


def test_opt_in_values() -> None:
    for value in ("true", "Yes", "1", "y"):
        assert parse_opt_in(value) is True
    for value in ("false", "NO", "0", ""):
        assert parse_opt_in(value) is False
    assert parse_opt_in(None) is False
    with pytest.raises(ValueError, match="opt_in"):
        parse_opt_in("perhaps")


async def test_error_details_are_capped_but_all_counted(db: AsyncSession) -> None:
    petition = await make_petition(db)
    content = "name,country\n" + "Bad,XX\n" * 1500 + "Good One,BD\n"
    report = await import_csv(db, petition.slug, [content], partner=None)
    assert (report.imported, report.rejected, len(report.errors), report.errors_truncated) == (
        1, 1500, 1000, True,
    )  # fmt: skip


async def test_streams_a_large_file_in_small_chunks(db: AsyncSession) -> None:
    """20,000 rows arrive in 1 KiB chunks (cutting lines and UTF-8 characters anywhere) and are written
    1,000 at a time. Memory is constant by design: the importer holds one chunk, the current CSV record,
    one batch and at most 1,000 error details, never the file."""
    petition = await make_petition(db)
    rows = 20_000

    def lines() -> Iterator[str]:
        yield HEADER
        for i in range(rows):
            yield f"Zoë Ångström {spelled(i)},zoe{i}@example.org,SE,{10000 + i},sv,yes,\n"

    def chunked() -> Iterator[bytes]:
        buffer = b""
        for line in lines():
            buffer += line.encode()
            while len(buffer) >= 1024:
                yield buffer[:1024]
                buffer = buffer[1024:]
        yield buffer

    async def stream() -> AsyncIterator[bytes]:  # like an HTTP request body
        for chunk in chunked():
            yield chunk

    seen: list[ImportProgress] = []
    report = await import_csv(db, petition.slug, stream(), partner=None, progress=seen.append)
    assert (report.imported, report.rejected) == (rows, 0)
    assert len(seen) == rows // 1000 + 1  # one callback per batch, one at the end
    assert [p.imported for p in seen[:3]] == [1000, 2000, 3000]
    count = await db.scalar(select(func.count()).where(Signature.petition_id == petition.id))
    assert count == rows
    last = await db.scalar(select(Signature.name).where(Signature.email == f"zoe{rows - 1}@example.org"))
    assert last == f"Zoë Ångström {spelled(rows - 1)}"


async def test_the_pipeline_deduplicates_imported_rows(
    db: AsyncSession, app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    petition = await make_petition(db)
    content = (
        "name,email,country,postal_code\n"
        "Jane Doe,jane@example.org,BD,\n"
        "Jane Doe,JANE@example.org,BD,\n"  # same email: a duplicate
        "Rahim Uddin,,BD,1207\n"
        "Rahim Uddin,,BD,1207\n"  # the same paper signature typed in twice
        "Karim Ahmed,,BD,1207\n"
    )
    report = await import_csv(db, petition.slug, [content], partner=None)
    petition_id = petition.id
    await db.commit()
    assert report.imported == 5
    await pipeline.run_once(sessionmaker, app.state.queue, app.state.settings)
    states = [row.state for row in await _rows(db, petition_id)]
    assert states == [
        SignatureState.unique,
        SignatureState.duplicate,
        SignatureState.unique,
        SignatureState.duplicate,
        SignatureState.unique,
    ]


async def test_a_large_import_refreshes_the_statistics_the_pipeline_is_planned_with(
    db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where autovacuum is off or behind, the pipeline's queries over a freshly loaded table were planned
    as sequential scans (BENCHMARKS.md, P3): an import of ANALYZE_AFTER_ROWS rows or more runs ANALYZE in
    its transaction, so the planner's row count includes the rows just written."""
    monkeypatch.setattr(imports, "ANALYZE_AFTER_ROWS", 40)
    petition = await make_petition(db)
    rows = "".join(f"Signer {spelled(i)},signer{i}@example.org,BD,,,,\n" for i in range(40))
    report = await import_csv(db, petition.slug, [HEADER + rows], partner=None)
    assert report.imported == 40
    planned = await db.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'signatures'::regclass"))
    assert planned == await db.scalar(select(func.count()).select_from(Signature))


async def test_a_file_found_bad_halfway_imports_nothing_and_leaves_the_transaction_usable(
    db: AsyncSession,
) -> None:
    petition = await make_petition(db)
    good = "".join(f"Signer {spelled(i)},signer{i}@example.org,BD,,,,\n" for i in range(3000))
    with pytest.raises(InvalidImportFile, match="UTF-8"):
        await import_csv(
            db, petition.slug, [(HEADER + good).encode(), b"J\xe9r\xf4me,,FR,,,,\n"], partner=None
        )
    assert await _rows(db, petition.id) == []
    report = await import_csv(db, petition.slug, [HEADER + good], partner=None)
    assert report.imported == 3000


async def test_validating_in_other_processes_gives_the_same_rows_and_report(db: AsyncSession) -> None:
    """`loom import-signatures` validates in forked processes, chunks at a time: the rows are written in
    the file's order and the report (line numbers, reasons) is the one of an import validated here."""
    lines = [HEADER]
    for i in range(5000):
        if i % 997 == 0:
            lines.append(f"Bad {spelled(i)},not-an-email,BD,,,,\n")
        elif i % 1201 == 0:
            lines.append(f'"Broken {spelled(i)}",,BD,,,,,extra\n')
        else:
            lines.append(f"Signer {spelled(i)},signer{i}@example.org,BD,{i},en,yes,\n")
    content = "".join(lines)
    here, there = await make_petition(db), await make_petition(db)
    expected = await import_csv(db, here.slug, [content], partner=None)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        report = await import_csv(db, there.slug, [content], partner=None, processes=pool, process_count=2)
    assert report.model_dump(exclude={"petition"}) == expected.model_dump(exclude={"petition"})
    assert report.rejected == 10

    def columns(rows: list[Signature]) -> list[tuple[object, ...]]:
        return [(r.name, r.email, r.email_canonical, r.postal_code, r.language, r.opt_in) for r in rows]

    assert columns(await _rows(db, there.id)) == columns(await _rows(db, here.id))
