"""Public signing: 202 whatever happened before, validation problems naming the field, closed and
unknown petitions, honeypot, the keyed address hash."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from asyncpg.connection import LoggedQuery
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.core.campaigns.models import CampaignStatus
from services.core.signatures.models import Channel, Signature, SignatureState
from tests.api.signatures.conftest import RunPipeline
from tests.factories import driver_connection, make_organisation, make_petition


def body(**fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "Jane Doe",
        "email": "Jane.Doe+x@GMail.com",
        "country": "bd",
        "postal_code": "1212",
        "language": "bn",
        "opt_in": True,
    }
    values.update(fields)
    return values


async def _signatures(db: AsyncSession, petition_id: object) -> list[Signature]:
    return list((await db.scalars(select(Signature).where(Signature.petition_id == petition_id))).all())


async def test_sign_stores_one_row_and_answers_202(client: httpx.AsyncClient, db: AsyncSession) -> None:
    petition = await make_petition(db)
    partner = await make_organisation(db)
    await db.commit()
    response = await client.post(
        f"/v1/petitions/{petition.slug}/signatures", json=body(partner=partner.slug, source="utm_source=tw")
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "pending_confirmation"}
    [row] = await _signatures(db, petition.id)
    assert (row.name, row.email, row.email_canonical) == (
        "Jane Doe",
        "Jane.Doe+x@GMail.com",
        "janedoe@gmail.com",
    )
    assert (row.country, row.postal_code, row.language, row.opt_in) == ("BD", "1212", "bn", True)
    assert (row.organisation_id, row.source, row.channel) == (partner.id, "utm_source=tw", Channel.web)
    assert (row.state, row.consent_version) == (SignatureState.new, 1)
    # the client's address is stored only as a keyed hash
    assert row.ip_hash is not None
    assert len(row.ip_hash) == 32
    assert "127.0.0.1" not in row.ip_hash


async def test_sign_by_id_and_without_email(client: httpx.AsyncClient, db: AsyncSession) -> None:
    petition = await make_petition(db, email_required=False)
    await db.commit()
    response = await client.post(f"/v1/petitions/{petition.id}/signatures", json=body(email=None))
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "received"}
    [row] = await _signatures(db, petition.id)
    assert row.email is None
    assert row.name_key == "doe jane"
    assert row.postal_key == "1212"


async def test_the_answer_never_reveals_an_earlier_signature(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db)
    await db.commit()
    first = await client.post(f"/v1/petitions/{petition.slug}/signatures", json=body())
    await run_pipeline()
    again = await client.post(
        f"/v1/petitions/{petition.slug}/signatures", json=body(email="janedoe@gmail.com")
    )
    assert (first.status_code, first.content) == (again.status_code, again.content)
    assert len(await _signatures(db, petition.id)) == 2  # kept, to be flagged as a duplicate


async def test_validation_errors_name_the_field(client: httpx.AsyncClient, db: AsyncSession) -> None:
    petition = await make_petition(db)
    organisation = await make_organisation(db)
    await db.commit()
    url = f"/v1/petitions/{petition.slug}/signatures"
    cases = [
        (body(email="not-an-email"), "email"),
        (body(country="XX"), "country"),
        (body(name=""), "name"),
        (body(language="not a tag"), "language"),
        (body(name="a" * 201), "name"),
        (body(unexpected=1), "unexpected"),
        (body(email=None), "email"),  # this petition needs an email
        (body(partner="no-such-partner"), "partner"),
        (body(name="nul\x00byte"), "name"),
    ]
    for payload, field in cases:
        response = await client.post(url, json=payload)
        assert response.status_code == 422, (payload, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "validation-error"
        assert problem["errors"][0]["loc"][-1] == field, (payload, problem)
    assert organisation.slug  # a real partner slug is fine
    ok = await client.post(url, json=body(partner=organisation.slug))
    assert ok.status_code == 202
    assert len(await _signatures(db, petition.id)) == 1


async def test_closed_unknown_and_hidden_petitions(client: httpx.AsyncClient, db: AsyncSession) -> None:
    now = datetime.now(UTC)
    closed = await make_petition(db, closes_at=now - timedelta(minutes=1))
    not_yet = await make_petition(db, opens_at=now + timedelta(days=1))
    campaign_closed = await make_petition(db, campaign_status=CampaignStatus.closed)
    draft = await make_petition(db, campaign_status=CampaignStatus.draft)
    await db.commit()
    for petition in (closed, not_yet, campaign_closed):
        response = await client.post(f"/v1/petitions/{petition.slug}/signatures", json=body())
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "petition-closed"
    for ref in (draft.slug, "no-such-petition", "00000000-0000-0000-0000-000000000000", "Not A Slug!"):
        response = await client.post(f"/v1/petitions/{ref}/signatures", json=body())
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "petition-not-found"


async def test_honeypot_is_answered_like_a_real_signature_and_not_stored(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    petition = await make_petition(db)
    await db.commit()
    real = await client.post(f"/v1/petitions/{petition.slug}/signatures", json=body())
    bot = await client.post(
        f"/v1/petitions/{petition.slug}/signatures", json=body(email="bot@example.org", website="http://spam")
    )
    assert (bot.status_code, bot.content) == (real.status_code, real.content)
    assert [s.email for s in await _signatures(db, petition.id)] == ["Jane.Doe+x@GMail.com"]


async def test_signing_is_one_statement_and_a_refusal_one_more(
    client: httpx.AsyncClient, db: AsyncSession, connection: AsyncConnection
) -> None:
    """The hot path's promise: one round trip to PostgreSQL (the explaining read only when refused)."""
    petition = await make_petition(db)
    await db.commit()
    statements: list[str] = []
    driver = await driver_connection(connection)  # what the signing pool hands out, in the test's transaction

    def record(query: LoggedQuery) -> None:
        statements.append(query.query)

    driver.add_query_logger(record)
    try:
        accepted = await client.post(f"/v1/petitions/{petition.slug}/signatures", json=body())
        assert accepted.status_code == 202, accepted.text
        await asyncio.sleep(0)  # asyncpg calls query loggers soon after the query, not during it
        assert len(statements) == 1
        assert statements[0].startswith("INSERT INTO signatures")
        statements.clear()
        refused = await client.post(
            f"/v1/petitions/{petition.id}/signatures", json=body(partner="no-such-org")
        )
        assert refused.status_code == 422, refused.text
        await asyncio.sleep(0)
        assert len(statements) == 2
    finally:
        driver.remove_query_logger(record)
