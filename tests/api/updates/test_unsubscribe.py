"""One-click unsubscribe (RFC 8058): the header's URL takes a mail client's form-encoded POST without a
login; JSON and the built-in page work too; it is idempotent; broken tokens are clear problems; the
suppression stops later updates (not confirmations); only a later explicit opt-in lifts it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.mail import unsubscribe
from services.core.mail.models import MessageCategory, MessageState, Suppression
from services.core.mail.queue import NewMessage, queue
from services.core.signatures import tokens
from services.core.users.models import Role
from services.worker.updates import tasks
from tests.api.mail.conftest import Job, queued
from tests.api.network.helpers import HeadersFor
from tests.api.signatures.conftest import RunPipeline
from tests.api.updates.conftest import Signers
from tests.factories import make_signature

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


async def _send_update(
    client: httpx.AsyncClient, signers: Signers, headers: dict[str, str], job: Job, subject: str
) -> str:
    response = await client.post(
        f"/v1/campaigns/{signers.campaign.slug}/updates",
        json={"content": {"en": {"subject": subject, "body": "News."}}},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    update_id: str = response.json()["id"]
    sent = await client.post(
        f"/v1/campaigns/{signers.campaign.slug}/updates/{update_id}/send", headers=headers
    )
    assert sent.status_code == 202, sent.text
    await tasks.send_update(job(), update_id=update_id)
    await job().session.commit()
    return update_id


async def _suppression(db: AsyncSession, email: str) -> Suppression | None:
    return await db.scalar(
        select(Suppression)
        .where(Suppression.email_canonical == email)
        .execution_options(populate_existing=True)
    )


async def test_a_mail_clients_one_click_post_unsubscribes(
    client: httpx.AsyncClient, db: AsyncSession, signers: Signers, headers_for: HeadersFor, job: Job
) -> None:
    headers = await headers_for(Role.campaigner)
    first = await _send_update(client, signers, headers, job, "First")
    [mail] = await queued(db, reference_id=first, to_canonical="gu@example.org")
    url = httpx.URL(mail.headers["List-Unsubscribe"].strip("<>"))
    assert mail.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # What a mail client does: POST the header's URL, form-encoded, no cookies, no login.
    response = await client.post(url.raw_path.decode(), data=ONE_CLICK)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "unsubscribed"}
    suppression = await _suppression(db, "gu@example.org")
    assert suppression is not None
    assert suppression.reason == "unsubscribed"
    # the update not yet sent to them will not be
    [mail] = await queued(db, reference_id=first, to_canonical="gu@example.org")
    assert mail.state == MessageState.suppressed

    again = await client.post(url.raw_path.decode(), data=ONE_CLICK)
    assert again.status_code == 200

    # the next update is recorded as suppressed; a confirmation mail (transactional) still goes out
    second = await _send_update(client, signers, headers, job, "Second")
    [mail] = await queued(db, reference_id=second, to_canonical="gu@example.org")
    assert mail.state == MessageState.suppressed
    await queue(
        db,
        NewMessage(
            dedup_key="confirmation:test-gu",
            kind="confirmation",
            category=MessageCategory.transactional,
            to_address="gu@example.org",
            subject="Confirm",
            text_body="…",
        ),
    )
    [confirmation] = await queued(db, dedup_key="confirmation:test-gu")
    assert confirmation.state == MessageState.pending


async def test_json_and_the_built_in_page_unsubscribe_too(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    token = unsubscribe.issue(settings, "json@example.org")
    response = await client.post("/v1/unsubscribe", json={"token": token})
    assert response.status_code == 200, response.text
    assert await _suppression(db, "json@example.org") is not None

    token = unsubscribe.issue(settings, "page@example.org")
    page = await client.get("/unsubscribe", params={"token": token})
    assert page.status_code == 200
    assert '<form method="post" action="unsubscribe">' in page.text
    assert await _suppression(db, "page@example.org") is None  # a GET changes nothing
    done = await client.post("/unsubscribe", data={"token": token})
    assert done.status_code == 200
    assert "no more campaign updates" in done.text
    assert await _suppression(db, "page@example.org") is not None


async def test_broken_tokens_are_clear_problems(client: httpx.AsyncClient, settings: Settings) -> None:
    token = unsubscribe.issue(settings, "x@example.org")
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    confirmation = tokens.issue(
        settings,
        signature_id=uuid.uuid4(),
        petition_id=uuid.uuid4(),
        now=datetime.now(UTC),
    ).token
    for bad in (tampered, confirmation, "not-a-token"):
        response = await client.post("/v1/unsubscribe", params={"token": bad}, data=ONE_CLICK)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "unsubscribe-token-invalid"
    missing = await client.post("/v1/unsubscribe", data=ONE_CLICK)
    assert missing.status_code == 400
    assert missing.json()["code"] == "unsubscribe-token-missing"
    page = await client.post("/unsubscribe", data={"token": tampered})
    assert page.status_code == 400
    assert "not valid" in page.text


async def test_a_bounced_address_stays_bounced(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> None:
    db.add(Suppression(email_canonical="gone@example.org", reason="bounced"))
    await db.commit()
    response = await client.post(
        "/v1/unsubscribe", json={"token": unsubscribe.issue(settings, "gone@example.org")}
    )
    assert response.status_code == 200
    suppression = await _suppression(db, "gone@example.org")
    assert suppression is not None
    assert suppression.reason == "bounced"


async def test_only_a_later_explicit_opt_in_lifts_the_unsubscribe(
    client: httpx.AsyncClient,
    db: AsyncSession,
    settings: Settings,
    signers: Signers,
    run_pipeline: RunPipeline,
) -> None:
    [petition, _] = signers.petitions
    # signed (opting in) a minute ago, but the pipeline has not seen it yet when they unsubscribe
    await make_signature(
        db, petition, email="gu@example.org", opt_in=True, created_at=datetime.now(UTC) - timedelta(minutes=1)
    )
    await db.commit()
    response = await client.post(
        "/v1/unsubscribe", json={"token": unsubscribe.issue(settings, "gu@example.org")}
    )
    assert response.status_code == 200
    await run_pipeline()
    assert await _suppression(db, "gu@example.org") is not None  # that opt-in came before the unsubscribe

    signed = await client.post(
        f"/v1/petitions/{petition.slug}/signatures",
        json={"name": "Gu", "email": "gu@example.org", "country": "BD", "opt_in": False},
    )
    assert signed.status_code == 202, signed.text
    await run_pipeline()
    assert await _suppression(db, "gu@example.org") is not None  # signing without the opt-in: still off

    signed = await client.post(
        f"/v1/petitions/{signers.other.slug}/signatures",
        json={"name": "Gu", "email": "GU@example.org", "country": "BD", "opt_in": True},
    )
    assert signed.status_code == 202, signed.text
    await run_pipeline()
    assert await _suppression(db, "gu@example.org") is None  # a new explicit opt-in (any petition)
