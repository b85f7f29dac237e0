"""Events are emitted in the business transaction, once: ``signature.confirmed`` when a signature is
confirmed (without personal data), ``campaign.published`` when a campaign is published; retrying or
repeating the action emits nothing more, and a rolled-back action emits nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.models import Campaign
from services.core.config import Settings
from services.core.signatures import confirmation, pipeline
from services.core.users.models import Role
from services.core.webhooks.events import emit
from services.core.webhooks.models import WebhookDelivery, WebhookEvent
from tests.core.webhooks.helpers import make_endpoint
from tests.factories import auth_headers, make_organisation, make_petition, make_signature, make_user


async def _events(db: AsyncSession, event_type: str) -> list[WebhookEvent]:
    return list(
        (
            await db.scalars(
                select(WebhookEvent).where(WebhookEvent.type == event_type).order_by(WebhookEvent.key)
            )
        ).all()
    )


async def _deliveries(db: AsyncSession, event_id: uuid.UUID) -> int:
    count = await db.scalar(select(func.count()).where(WebhookDelivery.event_id == event_id))
    return int(count or 0)


async def test_emitting_is_idempotent_by_key(db: AsyncSession) -> None:
    endpoint = await make_endpoint(db, "http://127.0.0.1:9/", event_types=("petition.milestone_reached",))
    data: dict[str, Any] = {"petition_id": uuid.uuid4(), "threshold": 50}
    key = f"petition.milestone_reached:{data['petition_id']}:50"
    first = await emit(db, "petition.milestone_reached", data, key=key)
    assert first is not None
    assert await emit(db, "petition.milestone_reached", {**data, "threshold": 100}, key=key) is None
    [event] = await _events(db, "petition.milestone_reached")
    assert event.id == first
    assert event.data == {"petition_id": str(data["petition_id"]), "threshold": 50}
    assert await _deliveries(db, first) == 1
    assert endpoint.id is not None


async def test_an_unknown_event_type_is_an_error(db: AsyncSession) -> None:
    with pytest.raises(ValueError, match=r"signature\.deleted"):
        await emit(db, "signature.deleted", {}, key="x")


async def test_confirming_a_signature_emits_signature_confirmed_once_without_personal_data(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    endpoint = await make_endpoint(db, "http://127.0.0.1:9/")
    organisation = await make_organisation(db)
    petition = await make_petition(db)
    signature = await make_signature(
        db, petition, organisation_id=organisation.id, country="KH", postal_code="12000", name="Sok Dara"
    )
    await pipeline.process_batch(db, limit=100)  # deduplicated first, as the worker does
    [issued] = await confirmation.request(db, settings, [signature.id])
    await db.commit()

    confirmed = await client.post("/v1/signatures/confirm", json={"token": issued.token})
    assert confirmed.status_code == 200, confirmed.text
    again = await client.post("/v1/signatures/confirm", json={"token": issued.token})
    assert again.status_code == 409, again.text

    [event] = await _events(db, "signature.confirmed")
    assert event.key == f"signature.confirmed:{signature.id}"
    await db.refresh(signature)
    assert signature.confirmed_at is not None
    assert event.data.pop("confirmed_at").replace("Z", "+00:00") == signature.confirmed_at.isoformat()
    assert event.data == {
        "signature_id": str(signature.id),
        "petition_id": str(petition.id),
        "petition_slug": petition.slug,
        "country": "KH",
        "organisation_id": str(organisation.id),
        "organisation_slug": organisation.slug,
    }
    text = str(event.data)
    assert signature.email is not None
    for personal in (signature.email, "Sok Dara", "12000"):
        assert personal not in text
    assert await _deliveries(db, event.id) == 1
    assert endpoint.enabled


async def test_confirming_a_duplicate_emits_for_both_signatures_once(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    await make_endpoint(db, "http://127.0.0.1:9/")
    petition = await make_petition(db)
    first = await make_signature(db, petition)
    second = await make_signature(db, petition, email=first.email)
    await pipeline.process_batch(db, limit=100)  # the second becomes a duplicate of the first
    [issued] = await confirmation.request(db, settings, [second.id])
    await db.commit()

    confirmed = await client.post("/v1/signatures/confirm", json={"token": issued.token})
    assert confirmed.status_code == 200, confirmed.text

    events = await _events(db, "signature.confirmed")
    assert sorted(e.key for e in events) == sorted(f"signature.confirmed:{s.id}" for s in (first, second))


async def test_a_rejected_confirmation_emits_nothing(client: httpx.AsyncClient, db: AsyncSession) -> None:
    await make_endpoint(db, "http://127.0.0.1:9/")
    response = await client.post("/v1/signatures/confirm", json={"token": "not-a-token"})
    assert response.status_code == 400, response.text
    assert await _events(db, "signature.confirmed") == []


async def test_publishing_a_campaign_emits_campaign_published_once(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    endpoint = await make_endpoint(db, "http://127.0.0.1:9/", event_types=("campaign.published",))
    staff = auth_headers(settings, await make_user(db, Role.campaigner))
    suffix = uuid.uuid4().hex[:8]
    campaign = Campaign(
        slug=f"pay-up-{suffix}",
        default_language="en",
        translations={"en": {"title": "Pay Your Workers"}, "fr": {"title": "Payez vos travailleurs"}},
    )
    db.add(campaign)
    await db.commit()

    published = await client.post(f"/v1/campaigns/{campaign.id}/publish", headers=staff)
    assert published.status_code == 200, published.text
    again = await client.post(f"/v1/campaigns/{campaign.id}/publish", headers=staff)
    assert again.status_code == 409, again.text

    [event] = await _events(db, "campaign.published")
    assert event.key == f"campaign.published:{campaign.id}"
    assert event.data["published_at"] is not None
    del event.data["published_at"]
    assert event.data == {
        "campaign_id": str(campaign.id),
        "slug": campaign.slug,
        "title": "Pay Your Workers",
        "default_language": "en",
        "languages": ["en", "fr"],
    }
    [delivery] = (await db.scalars(select(WebhookDelivery).where(WebhookDelivery.event_id == event.id))).all()
    assert delivery.endpoint_id == endpoint.id
