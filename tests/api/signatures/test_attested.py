"""Attested signatures: what an import or an integration brings is vouched for by the organisation that
collected it, so it counts on a `confirmed` petition without confirmation (deduplicated like every
signature) and is mailed no confirmation link unless the import or integration asks. Web signatures keep
double opt-in."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.models import CountPolicy, Petition
from services.core.config import Settings
from services.core.db.engine import create_engine
from services.core.outbox.models import OutboxJob
from services.core.signatures import pipeline
from services.core.signatures.models import Signature, SignatureState
from services.core.users.models import Role
from tests.api.network.helpers import HeadersFor
from tests.api.signatures.conftest import RunPipeline
from tests.api.signatures.test_imports import cli_petition
from tests.api.signatures.test_signing import body
from tests.api.signatures.test_webhooks import _deliver, _integration, native
from tests.factories import make_petition
from tests.test_cli import loom

__all__ = ["cli_petition"]

CSV = {"Content-Type": "text/csv"}
PAPER_AND_EMAIL = (
    "name,email,country,postal_code\n"
    "Rahima Begum,,BD,1207\n"
    "Sok Chea,,KH,12000\n"
    "Jane Doe,jane@example.org,BD,1212\n"
    "JANE DOE,JANE@Example.org,BD,1212\n"  # the same person again
)


async def _count(client: httpx.AsyncClient, petition: Petition) -> int:
    response = await client.get(f"/v1/petitions/{petition.slug}/count")
    assert response.status_code == 200, response.text
    return int(response.json()["count"])


async def _confirmation_requests(db: AsyncSession, petition: Petition) -> list[uuid.UUID]:
    """The signatures of ``petition`` that confirmation jobs were written for."""
    await db.flush()
    jobs = (await db.scalars(select(OutboxJob).where(OutboxJob.task == pipeline.CONFIRMATION_TASK))).all()
    ids = {uuid.UUID(i) for job in jobs for i in job.payload["signature_ids"]}
    ours = await db.scalars(select(Signature.id).where(Signature.petition_id == petition.id))
    return sorted(ids & set(ours.all()))


async def test_imported_signatures_count_on_a_confirmed_petition_without_a_mail(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.confirmed)
    headers = await headers_for(Role.campaigner)
    await db.commit()
    response = await client.post(
        f"/v1/petitions/{petition.slug}/imports", content=PAPER_AND_EMAIL, headers={**headers, **CSV}
    )
    assert response.json()["imported"] == 4, response.text
    await db.execute(text("DELETE FROM outbox_jobs"))
    await run_pipeline()
    assert await _count(client, petition) == 3  # two paper signers and Jane, once
    stats = (await client.get(f"/v1/petitions/{petition.slug}/stats")).json()
    assert stats["count"] == 3
    assert stats["by_country"] == [{"country": "BD", "count": 2}, {"country": "KH", "count": 1}]
    assert await _confirmation_requests(db, petition) == []
    listed = (await client.get(f"/v1/petitions/{petition.slug}/signatures", headers=headers)).json()
    assert {(s["state"], s["attested"], s["confirmed_at"]) for s in listed["items"]} == {
        ("unique", True, None),
        ("duplicate", True, None),
    }
    export = await client.get(f"/v1/petitions/{petition.slug}/signatures.csv", headers=headers)
    header, *lines = export.text.splitlines()
    assert "attested" in header.split(",")
    column = header.split(",").index("attested")
    assert {line.split(",")[column] for line in lines} == {"true"}


async def test_an_import_may_ask_for_confirmation_mail(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.confirmed)
    headers = await headers_for(Role.campaigner)
    await db.commit()
    response = await client.post(
        f"/v1/petitions/{petition.slug}/imports",
        params={"send_confirmation_mail": "true"},
        content=PAPER_AND_EMAIL,
        headers={**headers, **CSV},
    )
    assert response.json()["imported"] == 4, response.text
    await db.execute(text("DELETE FROM outbox_jobs"))
    await run_pipeline()
    assert await _count(client, petition) == 3  # counted all the same
    # one link for Jane, to her counted signature (the paper signers have no address)
    jane = await db.scalar(
        select(Signature.id).where(
            Signature.petition_id == petition.id, Signature.email == "jane@example.org"
        )
    )
    assert await _confirmation_requests(db, petition) == [jane]


async def test_delivered_signatures_count_at_once_and_the_integration_may_ask_for_mail(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.confirmed)
    quiet = await _integration(db, petition)
    asking = await _integration(db, petition, send_confirmation_mail=True)
    assert (await _deliver(client, quiet, native(3))).status_code == 200
    await db.execute(text("DELETE FROM outbox_jobs"))
    await run_pipeline()
    assert await _count(client, petition) == 3
    assert await _confirmation_requests(db, petition) == []
    assert (await _deliver(client, asking, native(2, start=10))).status_code == 200
    await run_pipeline()
    assert await _count(client, petition) == 5
    requested = await db.scalars(
        select(Signature.external_id).where(Signature.id.in_(await _confirmation_requests(db, petition)))
    )
    assert sorted(str(r) for r in requested.all()) == ["crm-10", "crm-11"]


async def test_web_signatures_keep_double_opt_in_until_an_organisation_vouches_for_the_person(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.confirmed)
    integration = await _integration(db, petition)
    for email in ("jane@example.org", "ali@example.org"):
        response = await client.post(f"/v1/petitions/{petition.slug}/signatures", json=body(email=email))
        assert response.status_code == 202, response.text
    await db.execute(text("DELETE FROM outbox_jobs"))
    await run_pipeline()
    assert await _count(client, petition) == 0  # unconfirmed web signatures
    assert len(await _confirmation_requests(db, petition)) == 2
    # Jane's union sends her signature too: it is a duplicate, and vouches for her counted one
    delivery = {
        "signatures": [
            {"external_id": "x1", "name": "Jane Doe", "email": "JANE@example.org", "country": "BD"}
        ]
    }
    delivered = await _deliver(client, integration, delivery)
    assert delivered.json()["totals"]["accepted"] == 1, delivered.text
    await run_pipeline()
    rows = (
        await db.execute(
            select(Signature.email, Signature.state, Signature.attested)
            .where(Signature.petition_id == petition.id)
            .order_by(Signature.created_at)
            .execution_options(populate_existing=True)
        )
    ).all()
    assert [tuple(r) for r in rows] == [
        ("jane@example.org", SignatureState.unique, True),
        ("ali@example.org", SignatureState.unique, False),
        ("JANE@example.org", SignatureState.duplicate, True),
    ]
    assert await _count(client, petition) == 1


def test_the_command_may_ask_for_confirmation_mail(
    cli_petition: tuple[str, str], database_url: str, redis_url: str, tmp_path: Path
) -> None:
    slug, _ = cli_petition
    path = tmp_path / "file.csv"
    path.write_text("name,email,country\nA Person,a@example.org,BD\n")
    for args in ([], ["--send-confirmation-mail"]):
        result = loom("import-signatures", str(path), "--petition", slug, *args,
                      database_url=database_url, redis_url=redis_url)  # fmt: skip
        assert result.returncode == 0, result.stderr

    async def rows() -> list[tuple[bool, bool]]:
        engine = create_engine(Settings(), database_url)
        async with engine.connect() as conn:
            found = await conn.execute(
                text(
                    "SELECT s.attested, s.send_confirmation_mail FROM signatures s "
                    "JOIN petitions p ON p.id = s.petition_id WHERE p.slug = :slug ORDER BY s.created_at"
                ),
                {"slug": slug},
            )
            result = [(r[0], r[1]) for r in found]
        await engine.dispose()
        return result

    assert asyncio.run(rows()) == [(True, False), (True, True)]
