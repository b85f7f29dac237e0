"""Deduplication and counting, end to end: signatures posted over HTTP, the pipeline run, the public count
and statistics read back."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.models import Campaign, CountPolicy
from services.core.signatures.models import Signature, SignatureState
from services.core.users.models import Role
from tests.api.network.helpers import HeadersFor
from tests.api.signatures.conftest import RunPipeline
from tests.api.signatures.test_signing import body
from tests.factories import make_organisation, make_petition


async def _sign(client: httpx.AsyncClient, petition: str, **fields: Any) -> None:
    response = await client.post(f"/v1/petitions/{petition}/signatures", json=body(**fields))
    assert response.status_code == 202, response.text


async def test_three_gmail_spellings_count_as_one_person(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.all_unique)
    await db.commit()
    for email in ("Jane.Doe+x@GMail.com", "janedoe@gmail.com", "JANEDOE@googlemail.com"):
        await _sign(client, petition.slug, email=email)
    await _sign(client, petition.slug, email="someone.else@example.org", opt_in=False)
    tick = await run_pipeline()
    assert (tick.processed, tick.duplicates) == (4, 2)
    rows = (await db.scalars(select(Signature).where(Signature.petition_id == petition.id))).all()
    first = next(r for r in rows if r.email == "Jane.Doe+x@GMail.com")
    assert first.state is SignatureState.unique
    assert sorted((r.state.value, r.duplicate_of == first.id) for r in rows if r.id != first.id) == [
        ("duplicate", True),
        ("duplicate", True),
        ("unique", False),
    ]
    response = await client.get(f"/v1/petitions/{petition.slug}/count")
    assert response.status_code == 200, response.text
    count = response.json()
    assert (count["count"], count["goal"], count["petition"], count["slug"]) == (
        2,
        1000,
        str(petition.id),
        petition.slug,
    )
    by_id = await client.get(f"/v1/petitions/{petition.id}/count")
    assert by_id.json() == count


async def test_a_later_signature_can_give_consent(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db)
    await db.commit()
    await _sign(client, petition.slug, opt_in=False)
    await run_pipeline()
    await _sign(client, petition.slug, opt_in=True, email="janedoe@googlemail.com")
    await run_pipeline()
    first = await db.scalar(
        select(Signature).where(
            Signature.petition_id == petition.id, Signature.state == SignatureState.unique
        )
    )
    assert first is not None
    await db.refresh(first)
    assert first.opt_in is True


async def test_confirmed_policy_counts_only_confirmed_signatures(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.confirmed)
    await db.commit()
    await _sign(client, petition.slug, email="a@example.org")
    await _sign(client, petition.slug, email="b@example.org")
    await run_pipeline()
    assert (await client.get(f"/v1/petitions/{petition.slug}/count")).json()["count"] == 0
    await db.execute(
        text("UPDATE signatures SET confirmed_at = now() WHERE petition_id = :p AND email = 'a@example.org'"),
        {"p": petition.id},
    )
    await db.execute(text("INSERT INTO petition_count_refresh (petition_id) VALUES (:p)"), {"p": petition.id})
    await db.commit()
    tick = await run_pipeline()
    assert tick.refreshed == {petition.id}
    assert (await client.get(f"/v1/petitions/{petition.slug}/count")).json()["count"] == 1


async def test_count_is_exact_after_the_pipeline_drains(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.all_unique)
    await db.commit()
    for i in range(30):
        await _sign(client, petition.slug, email=f"person{i % 17}@example.org")
    await run_pipeline()
    sql_count = await db.scalar(
        select(func.count()).where(
            Signature.petition_id == petition.id, Signature.state == SignatureState.unique
        )
    )
    assert sql_count == 17
    assert (await client.get(f"/v1/petitions/{petition.slug}/count")).json()["count"] == 17


async def test_count_without_cache_is_computed_and_hidden_petitions_are_404(
    client: httpx.AsyncClient, db: AsyncSession, app: Any
) -> None:
    from services.core.campaigns.models import CampaignStatus

    petition = await make_petition(db, count_policy=CountPolicy.all_unique)
    draft = await make_petition(db, campaign_status=CampaignStatus.draft)
    await db.commit()
    await app.state.cache.delete(f"loom:petition-count:{petition.slug}")
    response = await client.get(f"/v1/petitions/{petition.slug}/count")
    assert response.status_code == 200
    assert response.json()["count"] == 0
    assert await app.state.cache.get(f"loom:petition-count:{petition.slug}") is not None
    for ref in (draft.slug, str(draft.id), "no-such-petition"):
        response = await client.get(f"/v1/petitions/{ref}/count")
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "petition-not-found"


async def test_stats_per_country_partner_and_day(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.all_unique)
    union = await make_organisation(db)
    await db.commit()
    await _sign(client, petition.slug, email="a@example.org", country="BD", partner=union.slug)
    await _sign(client, petition.slug, email="b@example.org", country="BD", partner=union.slug)
    await _sign(client, petition.slug, email="c@example.org", country="KH")
    await _sign(client, petition.slug, email="c@example.org", country="KH")  # duplicate: not counted
    await run_pipeline()
    response = await client.get(f"/v1/petitions/{petition.slug}/stats")
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["count"] == 3
    assert stats["by_country"] == [{"country": "BD", "count": 2}, {"country": "KH", "count": 1}]
    assert stats["by_partner"] == [{"partner": union.slug, "count": 2}, {"partner": None, "count": 1}]
    assert len(stats["by_day"]) == 1
    assert stats["by_day"][0]["count"] == 3
    assert (await client.get("/v1/petitions/no-such-petition/stats")).status_code == 404


async def test_a_changed_policy_goal_or_campaign_status_reaches_the_public_count(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline, headers_for: HeadersFor
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.all_unique)
    campaign = await db.scalar(select(Campaign).where(Campaign.id == petition.campaign_id))
    assert campaign is not None
    staff = await headers_for(Role.coordinator)
    await db.commit()
    await _sign(client, petition.slug, email="a@example.org")
    await _sign(client, petition.slug, email="b@example.org")
    await run_pipeline()
    path = f"/v1/petitions/{petition.slug}/count"
    assert (await client.get(path)).json()["count"] == 2
    changed = await client.patch(
        f"/v1/petitions/{petition.slug}", json={"count_policy": "confirmed", "goal": 50}, headers=staff
    )
    assert changed.status_code == 200, changed.text
    await run_pipeline()
    assert {k: v for k, v in (await client.get(path)).json().items() if k in ("count", "goal")} == {
        "count": 0,
        "goal": 50,
    }
    for verb in ("close", "archive"):
        moved = await client.post(f"/v1/campaigns/{campaign.slug}/{verb}", headers=staff)
        assert moved.status_code == 200, moved.text
    await run_pipeline()
    response = await client.get(path)
    assert response.status_code == 404, response.text
