"""The review queue of paper signatures that may be duplicates: listing and deciding."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.models import CountPolicy, Petition
from services.core.signatures.models import Channel, Signature, SignatureReview, SignatureState
from services.core.users.models import Role
from tests.api.network.helpers import HeadersFor
from tests.api.signatures.conftest import RunPipeline
from tests.factories import make_petition, make_signature


async def _pair(db: AsyncSession, petition: Petition) -> tuple[Signature, Signature]:
    """A counted paper signature and a later one under review against it."""
    first = await make_signature(
        db, petition, email=None, name="Rahima Begum", postal_code="1212", state=SignatureState.unique
    )
    second = await make_signature(
        db, petition, email=None, name="Rahima Begam", postal_code="1212", state=SignatureState.review
    )
    db.add(
        SignatureReview(signature_id=second.id, petition_id=petition.id, candidate_id=first.id, score=91.5)
    )
    await db.flush()
    return first, second


async def test_pipeline_puts_a_lookalike_paper_signature_in_review(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline, headers_for: HeadersFor
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.all_unique)
    await make_signature(db, petition, email=None, name="Mohammad Rahman Khan", postal_code="1212")
    await db.commit()
    await run_pipeline()
    await make_signature(db, petition, email=None, name="Mohammad Rahman", postal_code="1212")
    await db.commit()
    tick = await run_pipeline()
    assert tick.reviews == 1
    headers = await headers_for(Role.campaigner)
    await db.commit()
    listed = await client.get(f"/v1/signature-reviews?petition={petition.slug}", headers=headers)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert (item["signature"]["name"], item["candidate"]["name"]) == (
        "Mohammad Rahman",
        "Mohammad Rahman Khan",
    )
    assert 0 < item["score"] < 100
    assert (await client.get(f"/v1/petitions/{petition.slug}/count")).json()["count"] == 1
    response = await client.post(
        f"/v1/signature-reviews/{item['signature']['id']}/resolve",
        json={"decision": "distinct"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    await run_pipeline()
    assert (await client.get(f"/v1/petitions/{petition.slug}/count")).json()["count"] == 2


async def test_list_shows_both_signatures_and_the_score(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    petition = await make_petition(db)
    other = await make_petition(db)
    first, second = await _pair(db, petition)
    await _pair(db, other)
    headers = await headers_for(Role.coordinator)
    await db.commit()
    for ref in (petition.slug, str(petition.id)):
        response = await client.get(
            "/v1/signature-reviews", params={"petition": ref, "resolved": "false"}, headers=headers
        )
        assert response.status_code == 200, response.text
        page = response.json()
        assert (page["total"], page["limit"], page["offset"]) == (1, 50, 0)
        [item] = page["items"]
        assert item["signature"]["id"] == str(second.id)
        assert item["signature"]["name"] == "Rahima Begam"
        assert item["signature"]["postal_code"] == "1212"
        assert item["signature"]["country"] == "BD"
        assert item["candidate"]["id"] == str(first.id)
        assert item["candidate"]["name"] == "Rahima Begum"
        assert item["score"] == 91.5
        assert item["resolution"] is None
    resolved = await client.get(
        "/v1/signature-reviews", params={"petition": petition.slug, "resolved": "true"}, headers=headers
    )
    assert resolved.json()["total"] == 0
    everything = await client.get("/v1/signature-reviews?limit=1", headers=headers)
    assert everything.json()["total"] >= 2
    assert len(everything.json()["items"]) == 1
    missing = await client.get("/v1/signature-reviews?petition=no-such-petition", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "petition-not-found"


async def test_resolve_as_duplicate(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.all_unique)
    first, second = await _pair(db, petition)
    headers = await headers_for(Role.admin)
    await db.commit()
    await run_pipeline()
    assert (await client.get(f"/v1/petitions/{petition.slug}/count")).json()["count"] == 1
    response = await client.post(
        f"/v1/signature-reviews/{second.id}/resolve", json={"decision": "duplicate"}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["resolution"] == "duplicate"
    assert response.json()["resolved_at"] is not None
    assert response.json()["resolved_by"] is not None
    await db.refresh(second)
    assert (second.state, second.duplicate_of) == (SignatureState.duplicate, first.id)
    tick = await run_pipeline()
    assert petition.id in tick.refreshed
    assert (await client.get(f"/v1/petitions/{petition.slug}/count")).json()["count"] == 1
    again = await client.post(
        f"/v1/signature-reviews/{second.id}/resolve", json={"decision": "distinct"}, headers=headers
    )
    assert again.status_code == 409
    assert again.json()["code"] == "review-already-resolved"
    listed = await client.get(
        "/v1/signature-reviews", params={"petition": petition.slug, "resolved": "true"}, headers=headers
    )
    assert listed.json()["total"] == 1


async def test_resolve_as_distinct_counts_it(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.all_unique)
    _, second = await _pair(db, petition)
    headers = await headers_for(Role.campaigner)
    await db.commit()
    response = await client.post(
        f"/v1/signature-reviews/{second.id}/resolve", json={"decision": "distinct"}, headers=headers
    )
    assert response.status_code == 200, response.text
    review = await db.scalar(select(SignatureReview).where(SignatureReview.signature_id == second.id))
    assert review is not None
    await db.refresh(review)
    assert review.resolution is not None
    assert review.resolution.value == "distinct"
    await db.refresh(second)
    assert (second.state, second.duplicate_of) == (SignatureState.unique, None)
    await run_pipeline()
    assert (await client.get(f"/v1/petitions/{petition.slug}/count")).json()["count"] == 2


async def test_resolve_unknown_or_bad_decision(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    petition = await make_petition(db)
    _, second = await _pair(db, petition)
    headers = await headers_for(Role.coordinator)
    await db.commit()
    unknown = await client.post(
        f"/v1/signature-reviews/{uuid.uuid4()}/resolve", json={"decision": "distinct"}, headers=headers
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "review-not-found"
    bad = await client.post(
        f"/v1/signature-reviews/{second.id}/resolve", json={"decision": "maybe"}, headers=headers
    )
    assert bad.status_code == 422
    for role in (Role.case_worker, Role.partner):
        denied = await client.post(
            f"/v1/signature-reviews/{second.id}/resolve",
            json={"decision": "distinct"},
            headers=await headers_for(role),
        )
        assert denied.status_code == 403


async def test_an_attested_lookalike_decided_duplicate_vouches_for_the_counted_signature(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline, headers_for: HeadersFor
) -> None:
    """A paper signature typed in from the web form (no email, never confirmable) and the same person's
    imported one: once staff say they are one person, the organisation's attestation makes them count."""
    petition = await make_petition(db, count_policy=CountPolicy.confirmed, email_required=False)
    first, second = await _pair(db, petition)
    second.channel, second.attested = Channel.import_, True
    headers = await headers_for(Role.campaigner)
    await db.commit()
    await run_pipeline()
    assert (await client.get(f"/v1/petitions/{petition.slug}/count")).json()["count"] == 0
    response = await client.post(
        f"/v1/signature-reviews/{second.id}/resolve", json={"decision": "duplicate"}, headers=headers
    )
    assert response.status_code == 200, response.text
    await run_pipeline()
    assert (await client.get(f"/v1/petitions/{petition.slug}/count")).json()["count"] == 1
    await db.refresh(first)
    assert first.attested
