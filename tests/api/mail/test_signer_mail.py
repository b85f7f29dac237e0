"""The confirmation mail (queued by the worker's confirmation job, in the signer's language, with a link
that confirms through the built-in page) and the thank-you after confirmation (once per person and
petition, with the share link)."""

from __future__ import annotations

import re
import uuid

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.models import Campaign, CountPolicy, Petition
from services.core.config import Settings
from services.core.mail.models import MessageCategory, MessageState
from services.core.signatures.models import Signature
from services.worker.signatures import tasks
from tests.api.mail.conftest import Job, queued
from tests.api.signatures.conftest import RunPipeline
from tests.factories import make_petition

TOKEN_IN_LINK = re.compile(r"/confirm\?token=([A-Za-z0-9_.-]+)")


async def _petition(db: AsyncSession, *, default_language: str = "en") -> Petition:
    petition = await make_petition(
        db,
        count_policy=CountPolicy.confirmed,
        translations={"en": {"title": "Pay Your Workers"}, "fr": {"title": "Payez vos ouvrières"}},
    )
    campaign = await db.get(Campaign, petition.campaign_id)
    assert campaign is not None
    campaign.default_language = default_language
    campaign.translations = {default_language: {"title": "Clean Clothes"}}
    await db.commit()
    return petition


async def _sign(
    client: httpx.AsyncClient, petition: Petition, email: str, language: str | None = None, **extra: object
) -> None:
    body: dict[str, object] = {"name": "Ana Rahman", "email": email, "country": "BD", **extra}
    if language:
        body["language"] = language
    response = await client.post(f"/v1/petitions/{petition.slug}/signatures", json=body)
    assert response.status_code == 202, response.text


async def _request_confirmations(db: AsyncSession, job: Job, petition: Petition) -> None:
    ids = list((await db.scalars(select(Signature.id).where(Signature.petition_id == petition.id))).all())
    await tasks.request_confirmations(job(), signature_ids=ids)
    await db.commit()


async def test_the_confirmation_mail_is_queued_in_the_signers_language_and_its_link_confirms(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline, job: Job
) -> None:
    petition = await _petition(db)
    await _sign(client, petition, "ana@example.org", language="fr")
    await run_pipeline()
    await _request_confirmations(db, job, petition)

    [mail] = await queued(db, to_canonical="ana@example.org")
    signature = await db.scalar(select(Signature).where(Signature.petition_id == petition.id))
    assert signature is not None
    assert mail.kind == "confirmation"
    assert mail.category == MessageCategory.transactional
    assert mail.state == MessageState.pending
    assert mail.language == "fr"
    assert mail.reference_id == signature.id
    assert mail.dedup_key.startswith(f"confirmation:{signature.id}:")
    assert mail.subject == "Merci de confirmer votre signature : Payez vos ouvrières"
    assert "Bonjour Ana Rahman," in mail.text_body
    match = TOKEN_IN_LINK.search(mail.text_body)
    assert match is not None
    assert f'href="http://127.0.0.1:8000/confirm?token={match.group(1)}"' in (mail.html_body or "")

    # The built-in page: GET shows a button (and confirms nothing), the button's POST confirms.
    page = await client.get("/confirm", params={"token": match.group(1)})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<form method="post" action="confirm">' in page.text
    await db.refresh(signature)
    assert signature.confirmed_at is None
    done = await client.post("/confirm", data={"token": match.group(1)})
    assert done.status_code == 200, done.text
    assert "confirmed and counted" in done.text
    await db.refresh(signature)
    assert signature.confirmed_at is not None

    # ... and the thank-you follows, in French, with the share link.
    [thanks] = await queued(db, kind="thank_you", reference_id=signature.id)
    assert thanks.language == "fr"
    assert thanks.to_address == "ana@example.org"
    assert thanks.dedup_key == f"thank_you:{signature.id}"
    assert f"http://127.0.0.1:8000/petitions/{petition.slug}" in thanks.text_body

    again = await client.post("/confirm", data={"token": match.group(1)})
    assert again.status_code == 409
    assert "already confirmed" in again.text
    assert len(await queued(db, kind="thank_you", reference_id=signature.id)) == 1


async def test_a_retried_confirmation_job_queues_nothing_twice(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline, job: Job
) -> None:
    petition = await _petition(db)
    await _sign(client, petition, "bo@example.org")
    await run_pipeline()
    await _request_confirmations(db, job, petition)
    await _request_confirmations(db, job, petition)
    assert len(await queued(db, to_canonical="bo@example.org", kind="confirmation")) == 1


async def test_a_language_without_templates_falls_back_to_the_campaigns_default(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline, job: Job
) -> None:
    petition = await _petition(db, default_language="es")
    await _sign(client, petition, "de@example.org", language="de")
    await _sign(client, petition, "none@example.org")
    await run_pipeline()
    await _request_confirmations(db, job, petition)
    [german] = await queued(db, to_canonical="de@example.org")
    [unknown] = await queued(db, to_canonical="none@example.org")
    assert german.language == unknown.language == "es"
    assert german.subject.startswith("Confirma tu firma")


async def test_one_thank_you_per_person_even_when_a_duplicate_confirms(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings, run_pipeline: RunPipeline, job: Job
) -> None:
    petition = await _petition(db)
    await _sign(client, petition, "cy@example.org")
    await run_pipeline()
    await _request_confirmations(db, job, petition)
    # a day later (one link a day per address) signs again: a duplicate with its own link
    await db.execute(text("UPDATE petition_signers SET confirmation_mailed_at = now() - interval '25 hours'"))
    await _sign(client, petition, "CY@example.org")
    await run_pipeline()
    await _request_confirmations(db, job, petition)
    mails = await queued(db, to_canonical="cy@example.org", kind="confirmation")
    assert len(mails) == 2
    first = await db.scalar(
        select(Signature.id).where(Signature.petition_id == petition.id).order_by(Signature.created_at)
    )
    later = next(mail for mail in mails if mail.reference_id != first)
    earlier = next(mail for mail in mails if mail.reference_id == first)
    for mail, status in ((later, 200), (earlier, 409)):
        link = TOKEN_IN_LINK.search(mail.text_body)
        assert link is not None
        response = await client.post("/v1/signatures/confirm", json={"token": link.group(1)})
        # confirming the duplicate confirmed the counted signature too: its own link is then used up
        assert response.status_code == status, response.text
    [thanks] = await queued(db, to_canonical="cy@example.org", kind="thank_you")
    assert thanks.dedup_key == f"thank_you:{first}"


async def test_the_confirm_page_explains_broken_links(client: httpx.AsyncClient) -> None:
    page = await client.get("/confirm", params={"token": "not-a-token"})
    assert page.status_code == 400
    assert "not valid" in page.text
    assert str(uuid.UUID(int=0)) not in page.text
