"""Staff previews of the email templates: the list of kinds and languages, each kind rendered for a
sample signer (JSON or the HTML alone), for a real petition in its campaign's language."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.models import Campaign
from services.core.users.models import Role
from tests.api.network.helpers import HeadersFor
from tests.factories import make_petition


async def test_the_list_names_every_kind_and_language(
    client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    response = await client.get("/v1/email-templates", headers=await headers_for(Role.case_worker))
    assert response.status_code == 200, response.text
    kinds = {entry["kind"]: entry["languages"] for entry in response.json()}
    for kind in ("confirmation", "thank_you", "campaign_update", "milestone"):
        assert {"en", "fr", "es"} <= set(kinds[kind])


async def test_each_kind_previews_for_a_sample_signer(
    client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    headers = await headers_for(Role.campaigner)
    for kind in ("confirmation", "thank_you", "campaign_update", "milestone"):
        response = await client.get(f"/v1/email-templates/{kind}/preview?language=es-MX", headers=headers)
        assert response.status_code == 200, response.text
        preview = response.json()
        assert preview["kind"] == kind
        assert preview["language"] == "es"
        assert preview["subject"]
        assert preview["html"].startswith("<!DOCTYPE html>")
    confirmation = await client.get("/v1/email-templates/confirmation/preview", headers=headers)
    assert "Dear Jane Doe," in confirmation.json()["text"]
    assert "/confirm?token=sample-token" in confirmation.json()["text"]
    update = await client.get("/v1/email-templates/campaign_update/preview?format=html", headers=headers)
    assert update.headers["content-type"].startswith("text/html")
    assert "<strong>12,000 people</strong>" in update.text
    assert "/unsubscribe?token=sample-token" in update.text


async def test_a_petition_previews_in_its_campaigns_language(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    petition = await make_petition(
        db, translations={"en": {"title": "Pay Up"}, "fr": {"title": "Payez"}}, default_language="en"
    )
    campaign = await db.get(Campaign, petition.campaign_id)
    assert campaign is not None
    campaign.default_language = "fr"
    campaign.translations = {"fr": {"title": "Vêtements propres"}}
    headers = await headers_for(Role.admin)
    await db.commit()
    response = await client.get(
        f"/v1/email-templates/thank_you/preview?petition={petition.slug}&language=de", headers=headers
    )
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["language"] == "fr"  # no German: the campaign's default language
    assert preview["subject"] == "Merci d'avoir signé : Payez"
    assert f"/petitions/{petition.slug}" in preview["text"]
    assert "Vêtements propres" in preview["text"]


async def test_unknown_kinds_and_petitions_are_404(
    client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    headers = await headers_for(Role.coordinator)
    response = await client.get("/v1/email-templates/newsletter/preview", headers=headers)
    assert response.status_code == 404
    assert response.json()["code"] == "email-template-not-found"
    response = await client.get("/v1/email-templates/_layout.html/preview", headers=headers)
    assert response.status_code == 404
    response = await client.get("/v1/email-templates/confirmation/preview?petition=nope", headers=headers)
    assert response.json()["code"] == "petition-not-found"
