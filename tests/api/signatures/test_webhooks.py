"""Signatures delivered by integrations: Standard Webhooks verification, the native batch and the Action
Network format, idempotency across retries and replays, per-item results."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.models import CountPolicy, Petition
from services.core.integrations.models import Integration
from services.core.integrations.webhooks import generate_secret, sign_webhook
from services.core.network.models import Organisation
from services.core.signatures.models import Channel, Signature
from tests.api.signatures.conftest import RunPipeline
from tests.factories import make_organisation, make_petition, spelled

URL = "/v1/webhooks/signatures"


async def _integration(
    db: AsyncSession, petition: Petition | None, organisation: Organisation | None = None, **fields: Any
) -> Integration:
    integration = Integration(
        name="Partner CRM",
        secret=generate_secret(),
        default_petition_id=petition.id if petition else None,
        organisation_id=organisation.id if organisation else None,
        **fields,
    )
    db.add(integration)
    await db.flush()
    await db.commit()
    return integration


async def _deliver(
    client: httpx.AsyncClient,
    integration: Integration,
    payload: Any,
    *,
    webhook_id: str | None = None,
    secret: str | None = None,
    at: datetime | None = None,
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = sign_webhook(
        secret or integration.secret,
        webhook_id or f"msg_{uuid.uuid4().hex}",
        at or datetime.now(UTC),
        body,
    )
    return await client.post(
        URL,
        params={"integration": str(integration.id)},
        content=body,
        headers={**headers, "content-type": "application/json"},
    )


def native(n: int, start: int = 0) -> dict[str, Any]:
    return {
        "signatures": [
            {
                "external_id": f"crm-{i}",
                "name": f"Signer {spelled(i)}",
                "email": f"signer{i}@example.org",
                "country": "BD",
                "postal_code": "1212",
                "opt_in": i % 2 == 0,
            }
            for i in range(start, start + n)
        ]
    }


def action_network(key: str, email: str, **person: Any) -> dict[str, Any]:
    return {
        "osdi:signature": {
            "identifiers": [f"action_network:{uuid.uuid4()}"],
            "created_date": "2026-11-22T07:00:00Z",
            "comments": "So important!",
            "add_tags": ["volunteer", "member"],
            "action_network:referrer_data": {"source": "email", "website": "www.example.org"},
            "person": {
                "given_name": "Rina",
                "family_name": "Akter",
                "email_addresses": [
                    {"address": "other@example.org", "primary": False},
                    {"address": email, "primary": True, "status": "subscribed"},
                ],
                "postal_addresses": [{"primary": True, "postal_code": "1207", "country": "bd"}],
                "languages_spoken": ["bn"],
                **person,
            },
            "_links": {"self": {"href": "https://actionnetwork.org/api/v2/petitions/x/signatures/y"}},
        },
        "action_network:sponsor": {"title": "Garment Workers Now", "url": "https://actionnetwork.org/g"},
        "idempotency_key": key,
    }


async def _stored(db: AsyncSession, petition: Petition) -> list[Signature]:
    rows = await db.scalars(select(Signature).where(Signature.petition_id == petition.id))
    return list(rows.all())


async def _count(client: httpx.AsyncClient, petition: Petition) -> int:
    response = await client.get(f"/v1/petitions/{petition.slug}/count")
    assert response.status_code == 200, response.text
    return int(response.json()["count"])


async def test_a_native_batch_delivered_three_times_is_stored_once(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.all_unique)
    org = await make_organisation(db)
    integration = await _integration(db, petition, org)
    payload = native(3)

    answers = [await _deliver(client, integration, payload) for _ in range(3)]  # retries: new webhook-ids

    assert [a.status_code for a in answers] == [200, 200, 200], answers[0].text
    first, *retries = (a.json() for a in answers)
    assert first["status"] == "processed"
    assert first["format"] == "native"
    assert first["totals"] == {"accepted": 3, "duplicate": 0, "invalid": 0, "ignored": 0}
    assert [r["external_id"] for r in first["results"]] == ["crm-0", "crm-1", "crm-2"]
    for retry in retries:
        assert retry["totals"] == {"accepted": 0, "duplicate": 3, "invalid": 0, "ignored": 0}
    rows = await _stored(db, petition)
    assert len(rows) == 3
    assert {(r.channel, r.integration_id, r.organisation_id, r.consent_version) for r in rows} == {
        (Channel.webhook, integration.id, org.id, 1)
    }
    assert {r.email_canonical for r in rows} == {f"signer{i}@example.org" for i in range(3)}
    await run_pipeline()
    assert await _count(client, petition) == 3


async def test_an_action_network_delivery_is_mapped_and_stored_once(
    client: httpx.AsyncClient, db: AsyncSession, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.all_unique)
    org = await make_organisation(db)
    integration = await _integration(db, petition, org)
    payload = [
        action_network("an-key-1", "rina@example.org"),
        {"osdi:attendance": {"person": {}}, "idempotency_key": "an-key-2"},
        action_network("an-key-3", "Rina@Example.org"),  # the same person again: one counted signature
    ]

    answers = [await _deliver(client, integration, payload) for _ in range(3)]

    first = answers[0].json()
    assert answers[0].status_code == 200, answers[0].text
    assert first["format"] == "action_network"
    assert [(r["index"], r["external_id"], r["status"]) for r in first["results"]] == [
        (0, "an-key-1", "accepted"),
        (1, None, "ignored"),
        (2, "an-key-3", "accepted"),
    ]
    for retry in answers[1:]:
        assert retry.json()["totals"] == {"accepted": 0, "duplicate": 2, "invalid": 0, "ignored": 1}
    rows = sorted(await _stored(db, petition), key=lambda r: r.external_id or "")
    assert len(rows) == 2
    row = rows[0]
    assert (row.name, row.email, row.country, row.postal_code, row.language) == (
        "Rina Akter",
        "rina@example.org",
        "BD",
        "1207",
        "bn",
    )
    assert (row.organisation_id, row.opt_in, row.channel) == (org.id, False, Channel.webhook)
    assert row.source == "source=email&sponsor=Garment+Workers+Now&tags=volunteer%2Cmember"
    await run_pipeline()
    assert await _count(client, petition) == 1


async def test_without_idempotency_key_the_action_network_identifier_is_the_external_id(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    petition = await make_petition(db)
    integration = await _integration(db, petition)
    element = action_network("unused", "a@example.org")
    del element["idempotency_key"]
    identifier = element["osdi:signature"]["identifiers"][0]

    for _ in range(2):
        response = await _deliver(client, integration, [element])
        assert response.status_code == 200, response.text
    assert response.json()["results"][0] == {
        "index": 0,
        "external_id": identifier,
        "status": "duplicate",
        "errors": [],
    }
    assert len(await _stored(db, petition)) == 1


async def test_a_replayed_webhook_id_is_acknowledged_and_ignored(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    petition = await make_petition(db)
    integration = await _integration(db, petition)

    first = await _deliver(client, integration, native(2), webhook_id="msg_1")
    replay = await _deliver(client, integration, native(2, start=10), webhook_id="msg_1")

    assert first.json()["totals"]["accepted"] == 2
    assert replay.status_code == 200, replay.text
    assert replay.json() == {
        "status": "replayed",
        "format": None,
        "results": [],
        "totals": {"accepted": 0, "duplicate": 0, "invalid": 0, "ignored": 0},
    }
    assert len(await _stored(db, petition)) == 2


async def test_bad_signatures_and_stale_timestamps_are_refused(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    petition = await make_petition(db)
    integration = await _integration(db, petition)

    wrong_secret = await _deliver(client, integration, native(1), secret=generate_secret())
    stale = await _deliver(client, integration, native(1), at=datetime.now(UTC) - timedelta(minutes=6))
    unsigned = await client.post(URL, params={"integration": str(integration.id)}, json=native(1))
    body = json.dumps(native(1)).encode()
    headers = sign_webhook(integration.secret, "msg_x", datetime.now(UTC), body)
    tampered = await client.post(
        URL,
        params={"integration": str(integration.id)},
        content=body.replace(b"Signer", b"Signor"),
        headers=headers,
    )

    for response, code in (
        (wrong_secret, "webhook-signature-invalid"),
        (stale, "webhook-timestamp-out-of-tolerance"),
        (tampered, "webhook-signature-invalid"),
    ):
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == code
    assert unsigned.status_code == 401
    assert unsigned.json()["code"] == "webhook-unsigned"
    assert unsigned.json()["missing"] == ["webhook-id", "webhook-timestamp", "webhook-signature"]
    assert await _stored(db, petition) == []


async def test_unknown_and_inactive_integrations_get_the_same_401(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    petition = await make_petition(db)
    inactive = await _integration(db, petition, active=False)
    unknown = Integration(id=uuid.uuid4(), name="Nobody", secret=generate_secret())

    answers = [await _deliver(client, i, native(1)) for i in (inactive, unknown)]

    bodies = [(a.status_code, a.json()["code"], a.json()["detail"]) for a in answers]
    assert bodies[0] == bodies[1]
    assert bodies[0][:2] == (401, "webhook-signature-invalid")
    assert await _stored(db, petition) == []


async def test_the_previous_secret_works_during_its_grace_period(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    petition = await make_petition(db)
    old = generate_secret()
    integration = await _integration(
        db, petition, previous_secret=old, previous_secret_expires_at=datetime.now(UTC) + timedelta(hours=1)
    )
    response = await _deliver(client, integration, native(1), secret=old)
    assert response.status_code == 200, response.text
    assert response.json()["totals"]["accepted"] == 1


async def test_invalid_items_are_reported_and_valid_ones_kept(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    petition = await make_petition(db)
    partner = await make_organisation(db)
    await db.commit()
    integration = await _integration(db, petition)
    items: list[Any] = [
        {"external_id": "ok-1", "name": "Ana", "email": "ana@example.org", "country": "BD"},
        {"external_id": "bad-email", "name": "Bo", "email": "not an email", "country": "BD"},
        {"external_id": "no-email", "name": "Cy", "country": "BD"},  # the petition requires one
        {"name": "Di", "email": "di@example.org", "country": "BD"},  # no external id
        "not an object",
        {
            "external_id": "bad-partner",
            "name": "Ed",
            "email": "ed@example.org",
            "country": "BD",
            "partner": "nope",
        },
        {
            "external_id": "ok-2",
            "name": "Fa",
            "email": "fa@example.org",
            "country": "bd",
            "partner": partner.slug,
        },
        {
            "external_id": "ok-1",
            "name": "Ana",
            "email": "ana@example.org",
            "country": "BD",
        },  # twice in one batch
    ]

    response = await _deliver(client, integration, {"signatures": items})

    assert response.status_code == 200, response.text
    result = response.json()
    statuses = [(r["external_id"], r["status"]) for r in result["results"]]
    assert statuses == [
        ("ok-1", "accepted"),
        ("bad-email", "invalid"),
        ("no-email", "invalid"),
        (None, "invalid"),
        (None, "invalid"),
        ("bad-partner", "invalid"),
        ("ok-2", "accepted"),
        ("ok-1", "duplicate"),
    ]
    errors = {r["external_id"] or r["index"]: r["errors"] for r in result["results"]}
    assert errors["bad-email"][0]["loc"] == ["email"]
    assert errors["no-email"] == [
        {"loc": ["email"], "msg": "This petition needs an email address.", "type": "missing"}
    ]
    assert errors[3][0]["loc"] == ["external_id"]
    assert errors["bad-partner"][0]["type"] == "unknown_partner"
    assert "not an email" not in response.text  # submitted values are never echoed
    assert result["totals"] == {"accepted": 2, "duplicate": 1, "invalid": 5, "ignored": 0}
    rows = {r.external_id: r for r in await _stored(db, petition)}
    assert set(rows) == {"ok-1", "ok-2"}
    assert rows["ok-2"].organisation_id == partner.id


async def test_more_than_1000_items_is_a_problem(client: httpx.AsyncClient, db: AsyncSession) -> None:
    petition = await make_petition(db)
    integration = await _integration(db, petition)

    too_many = await _deliver(client, integration, native(1001))
    not_a_batch = await _deliver(client, integration, {"rows": []})

    assert too_many.status_code == 422, too_many.text
    assert too_many.json()["code"] == "webhook-batch-too-large"
    assert not_a_batch.status_code == 422
    assert not_a_batch.json()["code"] == "webhook-payload-invalid"
    huge = b'{"signatures": [], "x": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    too_big = await client.post(
        URL,
        params={"integration": str(integration.id)},
        content=huge,
        headers={"content-type": "application/json"},
    )
    assert too_big.status_code == 413
    assert too_big.json()["code"] == "payload-too-large"
    assert await _stored(db, petition) == []


async def test_a_closed_petition_refuses_the_whole_delivery_and_its_retry_is_processed(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    petition = await make_petition(db, closes_at=datetime.now(UTC) - timedelta(days=1))
    integration = await _integration(db, petition)
    without = await _integration(db, None)

    closed = await _deliver(client, integration, native(1), webhook_id="msg_closed")
    assert closed.status_code == 409, closed.text
    assert closed.json()["code"] == "petition-closed"
    no_petition = await _deliver(client, without, native(1))
    assert no_petition.status_code == 409
    assert no_petition.json()["code"] == "integration-without-petition"

    petition.closes_at = None
    await db.commit()
    retry = await _deliver(client, integration, native(1), webhook_id="msg_closed")
    assert retry.json()["status"] == "processed"  # the failed delivery's id was not remembered


async def test_full_batches_are_accepted(client: httpx.AsyncClient, db: AsyncSession) -> None:
    """Two batches of the maximum size are stored whole (their speed is measured by `make bench`, P2)."""
    petition = await make_petition(db)
    integration = await _integration(db, petition)
    for start in (0, 1000):
        response = await _deliver(client, integration, native(1000, start=start))
        assert response.status_code == 200
        assert response.json()["totals"]["accepted"] == 1000
    count = await db.scalar(select(func.count()).where(Signature.petition_id == petition.id))
    assert count == 2000
