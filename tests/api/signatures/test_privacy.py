"""Privacy requests: erasure and export of a signer's data, by email, across petitions."""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.models import CountPolicy
from services.core.signatures.models import PetitionSigner, Signature, SignatureState
from services.core.users.models import Role
from tests.api.network.helpers import HeadersFor
from tests.api.signatures.conftest import RunPipeline
from tests.factories import make_petition, make_signature


async def test_export_then_erase_across_petitions(
    client: httpx.AsyncClient,
    db: AsyncSession,
    headers_for: HeadersFor,
    run_pipeline: RunPipeline,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    one = await make_petition(db, count_policy=CountPolicy.all_unique)
    two = await make_petition(db, count_policy=CountPolicy.all_unique)
    first = await make_signature(
        db, one, email="Jane.Doe+x@GMail.com", postal_code="1212", source="leaflet", ip_hash="ab" * 32
    )
    await make_signature(db, one, email="janedoe@googlemail.com")  # the same person again: a duplicate
    await make_signature(db, two, email="janedoe@gmail.com", name="J. Doe")
    bystander = await make_signature(db, one, email="someone.else@example.org")
    headers = await headers_for(Role.admin)
    await db.commit()
    await run_pipeline()
    assert (await client.get(f"/v1/petitions/{one.slug}/count")).json()["count"] == 2

    exported = await client.post("/v1/privacy/export", json={"email": "JaneDoe@gmail.com"}, headers=headers)
    assert exported.status_code == 200, exported.text
    signatures = exported.json()["signatures"]
    assert len(signatures) == 3
    assert {s["petition_slug"] for s in signatures} == {one.slug, two.slug}
    mine = next(s for s in signatures if s["id"] == str(first.id))
    assert mine["email"] == "Jane.Doe+x@GMail.com"
    assert mine["name"] == "Jane Doe"
    assert mine["postal_code"] == "1212"
    assert mine["source"] == "leaflet"
    assert mine["state"] == "unique"
    for internal in ("email_canonical", "name_key", "postal_key", "confirmation_nonce_hash"):
        assert internal not in mine

    erased = await client.post("/v1/privacy/erasure", json={"email": "jane.doe@gmail.com"}, headers=headers)
    assert erased.status_code == 200, erased.text
    assert erased.json() == {"signatures": 3, "messages": 0}  # no mail queued: the jobs did not run

    rows = (await db.scalars(select(Signature).where(Signature.petition_id.in_([one.id, two.id])))).all()
    for row in rows:
        await db.refresh(row)
    gone = [row for row in rows if row.id != bystander.id]
    assert len(gone) == 3
    for row in gone:
        assert row.erased_at is not None
        assert (
            row.name,
            row.email,
            row.email_canonical,
            row.postal_code,
            row.name_key,
            row.postal_key,
            row.ip_hash,
            row.source,
            row.confirmation_nonce_hash,
        ) == (None,) * 9
        assert row.country == "BD"
    assert sorted(row.state.value for row in gone) == ["duplicate", "unique", "unique"]
    assert next(row for row in gone if row.state is SignatureState.duplicate).duplicate_of == first.id
    signers = await db.scalar(
        select(func.count())
        .select_from(PetitionSigner)
        .where(PetitionSigner.email_canonical == "janedoe@gmail.com")
    )
    assert signers == 0
    await db.refresh(bystander)
    assert bystander.email == "someone.else@example.org"
    assert bystander.erased_at is None

    tick = await run_pipeline()
    assert {one.id, two.id} <= tick.refreshed
    assert (await client.get(f"/v1/petitions/{one.slug}/count")).json()["count"] == 2
    assert (await client.get(f"/v1/petitions/{two.slug}/count")).json()["count"] == 1

    again = await client.post("/v1/privacy/export", json={"email": "janedoe@gmail.com"}, headers=headers)
    assert again.json() == {"signatures": [], "messages": [], "suppression": None}
    assert (
        await client.post("/v1/privacy/erasure", json={"email": "janedoe@gmail.com"}, headers=headers)
    ).json() == {"signatures": 0, "messages": 0}
    assert "janedoe" not in caplog.text.lower()
    assert "jane.doe" not in caplog.text.lower()


@pytest.mark.parametrize("path", ["/v1/privacy/erasure", "/v1/privacy/export"])
async def test_invalid_email_is_422_without_echoing_it(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor, path: str
) -> None:
    headers = await headers_for(Role.admin)
    await db.commit()
    response = await client.post(path, json={"email": "not-an-email-secret"}, headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["loc"] == ["body", "email"]
    assert "not-an-email-secret" not in response.text
    assert (await client.post(path, json={}, headers=headers)).status_code == 422


@pytest.mark.parametrize("role", [Role.coordinator, Role.campaigner, Role.case_worker, Role.partner])
async def test_only_admins(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor, role: Role
) -> None:
    headers = await headers_for(role)
    await db.commit()
    for path in ("/v1/privacy/erasure", "/v1/privacy/export"):
        response = await client.post(path, json={"email": "a@example.org"}, headers=headers)
        assert response.status_code == 403
