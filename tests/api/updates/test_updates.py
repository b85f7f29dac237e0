"""Campaign updates over HTTP: compose (per language, default language required), change while a draft,
test to oneself, send once (409 after), and the worker's batches: one message per confirmed, opted-in
person in their language, suppressed addresses recorded as such, resuming after a crash; progress counts."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.mail.models import EmailMessage, MessageCategory, MessageState
from services.core.outbox.models import OutboxJob
from services.core.updates import service
from services.core.users.models import Role
from services.worker.updates import tasks
from tests.api.mail.conftest import Job, queued
from tests.api.network.helpers import HeadersFor
from tests.api.updates.conftest import Signers
from tests.factories import auth_headers, make_api_key, make_user

CONTENT = {
    "en": {"subject": "We won!", "body": "The brand **signed** the accord.\n\nThank you."},
    "es": {"subject": "¡Ganamos!", "body": "La marca **firmó** el acuerdo."},
    "fr": {"subject": "Victoire !", "body": "La marque a **signé** l'accord."},
}


async def _create(
    client: httpx.AsyncClient, signers: Signers, headers: dict[str, str], **body: object
) -> dict[str, object]:
    response = await client.post(
        f"/v1/campaigns/{signers.campaign.slug}/updates",
        json={"content": CONTENT, "format": "markdown", **body},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


async def _send_all(job: Job, settings: Settings, update_id: object, batch: int = 2) -> int:
    """Run the send job's chain to its end, as the worker would; returns how many jobs ran."""
    small = settings.model_copy(update={"update_batch_size": batch})
    runs = 0
    while True:
        runs += 1
        await tasks.send_update(job(settings=small), update_id=update_id)
        await job().session.commit()
        state = await job().session.scalar(
            text("SELECT state FROM campaign_updates WHERE id = :id"), {"id": update_id}
        )
        if state == "sent":
            return runs
        assert runs < 20


async def test_compose_change_and_read(
    client: httpx.AsyncClient, signers: Signers, headers_for: HeadersFor
) -> None:
    headers = await headers_for(Role.campaigner)
    created = await _create(client, signers, headers)
    assert created["state"] == "draft"
    assert created["campaign"] == str(signers.campaign.id)
    assert created["counts"] == {"pending": 0, "sent": 0, "failed": 0, "suppressed": 0, "total": 0}
    path = f"/v1/campaigns/{signers.campaign.id}/updates/{created['id']}"
    changed = await client.patch(path, json={"format": "text"}, headers=headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["format"] == "text"
    assert changed.json()["content"] == CONTENT  # untouched: only the fields sent change
    changed = await client.patch(path, json={"content": {"en": CONTENT["en"]}}, headers=headers)
    assert changed.json()["content"] == {"en": CONTENT["en"]}
    refused = await client.patch(path, json={"content": {"fr": CONTENT["fr"]}}, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["code"] == "update-default-language-missing"
    refused = await client.patch(path, json={"content": None}, headers=headers)
    assert refused.status_code == 422
    listed = await client.get(f"/v1/campaigns/{signers.campaign.slug}/updates", headers=headers)
    assert [u["id"] for u in listed.json()] == [created["id"]]
    # subjects are one line: no header injection
    odd = await _create(
        client, signers, headers, content={"en": {"subject": "A\r\nBcc: x@example.org", "body": "b"}}
    )
    assert odd["content"] == {"en": {"subject": "A Bcc: x@example.org", "body": "b"}}


async def test_the_default_language_is_required_and_unknown_things_are_404(
    client: httpx.AsyncClient, signers: Signers, headers_for: HeadersFor
) -> None:
    headers = await headers_for(Role.coordinator)
    response = await client.post(
        f"/v1/campaigns/{signers.campaign.slug}/updates",
        json={"content": {"fr": CONTENT["fr"]}},
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json()["code"] == "update-default-language-missing"
    missing = await client.get("/v1/campaigns/no-such-campaign/updates", headers=headers)
    assert missing.json()["code"] == "campaign-not-found"
    missing = await client.get(f"/v1/campaigns/{signers.campaign.slug}/updates/not-an-id", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "update-not-found"


async def test_one_language_given_twice_is_refused_not_merged(
    client: httpx.AsyncClient, signers: Signers, headers_for: HeadersFor
) -> None:
    """`pt-br` and `pt-BR` are one language: one of the two texts would be dropped without a word."""
    headers = await headers_for(Role.coordinator)
    twice = {**CONTENT, "pt-br": CONTENT["es"], "pt-BR": CONTENT["fr"]}
    response = await client.post(
        f"/v1/campaigns/{signers.campaign.slug}/updates", json={"content": twice}, headers=headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["body", "content"]


async def test_a_test_goes_to_the_callers_own_address_only(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings, signers: Signers
) -> None:
    user = await make_user(db, Role.campaigner, email="Campaigner.Test@Example.org")
    headers = auth_headers(settings, user)
    created = await _create(client, signers, headers)
    response = await client.post(
        f"/v1/campaigns/{signers.campaign.slug}/updates/{created['id']}/test?language=fr-CA", headers=headers
    )
    assert response.status_code == 202, response.text
    assert response.json()["language"] == "fr"
    [mail] = await queued(db, kind="campaign_update_test")
    assert mail.to_address == "Campaigner.Test@Example.org"
    assert mail.category == MessageCategory.staff
    assert mail.subject == "Victoire !"
    assert "<strong>signé</strong>" in (mail.html_body or "")
    assert mail.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.headers["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/v1/unsubscribe?token=")
    # a test is no recipient: the update's counts ignore it, and it is still a draft
    read = await client.get(f"/v1/campaigns/{signers.campaign.slug}/updates/{created['id']}", headers=headers)
    assert read.json()["counts"]["total"] == 0
    assert read.json()["state"] == "draft"


async def test_sending_queues_one_message_per_person_in_their_language(
    client: httpx.AsyncClient,
    db: AsyncSession,
    settings: Settings,
    signers: Signers,
    headers_for: HeadersFor,
    job: Job,
) -> None:
    headers = await headers_for(Role.admin)
    created = await _create(client, signers, headers)
    path = f"/v1/campaigns/{signers.campaign.slug}/updates/{created['id']}"
    sent = await client.post(f"{path}/send", headers=headers)
    assert sent.status_code == 202, sent.text
    assert sent.json()["state"] == "sending"
    assert (
        await db.scalar(
            select(func.count())
            .select_from(OutboxJob)
            .where(
                OutboxJob.task == service.SEND_TASK, OutboxJob.payload["update_id"].astext == created["id"]
            )
        )
        == 1
    )

    again = await client.post(f"{path}/send", headers=headers)
    assert again.status_code == 409
    assert again.json()["code"] == "update-already-sent"
    frozen = await client.patch(path, json={"format": "text"}, headers=headers)
    assert frozen.status_code == 409

    runs = await _send_all(job, settings, created["id"], batch=2)
    assert runs == 3  # 2 + 2 recipients, then an empty batch that finishes

    mails = {m.to_canonical: m for m in await queued(db, kind="campaign_update")}
    assert {k: m.language for k, m in mails.items()} == signers.recipients
    assert mails["fa@example.org"].state == MessageState.suppressed  # unsubscribed before: recorded, not sent
    assert all(m.state == MessageState.pending for k, m in mails.items() if k != "fa@example.org")
    ana = mails["ana@example.org"]
    assert ana.subject == "¡Ganamos!"
    assert ana.to_address == "Ana@Example.org"  # as she typed it last
    assert ana.dedup_key == f"update:{created['id']}:ana@example.org"
    assert ana.category == MessageCategory.updates
    assert "<strong>firmó</strong>" in (ana.html_body or "")
    assert "Darse de baja" in (ana.html_body or "")
    link = ana.headers["List-Unsubscribe"][1:-1]
    token = link.partition("token=")[2]
    assert f"http://127.0.0.1:8000/unsubscribe?token={token}" in ana.text_body
    assert f'href="http://127.0.0.1:8000/unsubscribe?token={token}"' in (ana.html_body or "")
    # each person has their own link
    assert token not in mails["gu@example.org"].text_body

    await db.execute(
        text("UPDATE email_messages SET state = 'sent' WHERE dedup_key = :k"), {"k": ana.dedup_key}
    )
    await db.execute(
        text(
            "UPDATE email_messages SET state = 'failed' WHERE to_canonical = 'bo@example.org' AND kind = :k"
        ),
        {"k": service.KIND},
    )
    read = await client.get(path, headers=headers)
    body = read.json()
    assert body["state"] == "sent"
    assert body["finished_at"] is not None
    assert body["recipients"] == 4
    assert body["counts"] == {"pending": 1, "sent": 1, "failed": 1, "suppressed": 1, "total": 4}


async def test_a_crash_mid_send_resumes_where_it_stopped(
    client: httpx.AsyncClient,
    db: AsyncSession,
    settings: Settings,
    signers: Signers,
    headers_for: HeadersFor,
    job: Job,
) -> None:
    headers = await headers_for(Role.coordinator)
    created = await _create(client, signers, headers)
    await client.post(f"/v1/campaigns/{signers.campaign.slug}/updates/{created['id']}/send", headers=headers)
    small = settings.model_copy(update={"update_batch_size": 3})
    await tasks.send_update(job(settings=small), update_id=created["id"])  # the first batch commits
    await db.commit()
    assert await db.scalar(select(func.count()).where(EmailMessage.reference_id == created["id"])) == 3

    # the second batch dies before its commit: its messages and its cursor go with it
    crashed = await db.begin_nested()
    await tasks.send_update(job(settings=small), update_id=created["id"])  # the worker is killed here
    await crashed.rollback()
    assert await db.scalar(select(func.count()).where(EmailMessage.reference_id == created["id"])) == 3

    await _send_all(job, settings, created["id"], batch=3)
    mails = await queued(db, kind="campaign_update", reference_id=created["id"])
    assert sorted(m.to_canonical for m in mails) == sorted(signers.recipients)
    cursor = await db.scalar(
        text("SELECT cursor FROM campaign_updates WHERE id = :id"), {"id": created["id"]}
    )
    assert cursor == "gu@example.org"


async def test_api_keys_cannot_use_updates(
    client: httpx.AsyncClient, db: AsyncSession, signers: Signers, headers_for: HeadersFor
) -> None:
    """A test goes to the caller's own address, which a machine client has not: no API keys here."""
    headers = await headers_for(Role.admin)
    created = await _create(client, signers, headers)
    _, key = await make_api_key(db, ["campaigns:write", "campaigns:read"])
    for method, suffix in (("POST", "/test"), ("POST", "/send"), ("GET", "")):
        response = await client.request(
            method,
            f"/v1/campaigns/{signers.campaign.slug}/updates/{created['id']}{suffix}",
            headers={"X-API-Key": key},
        )
        assert response.status_code == 403, response.text
