"""Signers' names on every path that takes one — the public form, native and Action Network webhooks, CSV
imports — follow one rule, so nobody can make Loom mail their own text to a stranger; and a name stored
before the rule is left out of the mail."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.models import CountPolicy
from services.core.integrations.models import Integration
from services.core.integrations.webhooks import generate_secret, sign_webhook
from services.core.signatures.models import Signature
from services.core.users.models import Role
from services.worker.signatures import tasks
from tests.api.mail.conftest import Job, job, queued
from tests.api.network.helpers import HeadersFor
from tests.api.signatures.conftest import RunPipeline
from tests.core.signatures.test_names import PHISHING, VALID
from tests.factories import make_petition, make_signature

__all__ = ["job"]  # the fixture

PROBLEM = "application/problem+json"


async def test_the_phishing_name_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    petition = await make_petition(db)
    await db.commit()
    response = await client.post(
        f"/v1/petitions/{petition.slug}/signatures",
        json={"name": PHISHING, "email": "stranger@example.org", "country": "BD"},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == "validation-error"
    [error] = problem["errors"]
    assert error["loc"] == ["body", "name"]
    assert "one line" in error["msg"]
    assert "URGENT" not in response.text
    assert "bank-secure" not in response.text
    stored = await db.scalars(select(Signature).where(Signature.petition_id == petition.id))
    assert stored.all() == []


async def test_names_of_every_script_are_taken(client: httpx.AsyncClient, db: AsyncSession) -> None:
    petition = await make_petition(db, email_required=False)
    await db.commit()
    for name in VALID:
        response = await client.post(
            f"/v1/petitions/{petition.slug}/signatures", json={"name": name, "country": "BD"}
        )
        assert response.status_code == 202, (name, response.text)
    stored = await db.scalars(select(Signature.name).where(Signature.petition_id == petition.id))
    assert sorted(name or "" for name in stored.all()) == sorted(VALID)


async def _deliver(client: httpx.AsyncClient, integration: Integration, payload: object) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = sign_webhook(integration.secret, f"msg_{uuid.uuid4().hex}", datetime.now(UTC), body)
    return await client.post(
        "/v1/webhooks/signatures",
        params={"integration": str(integration.id)},
        content=body,
        headers={**headers, "content-type": "application/json"},
    )


def _an_signature(key: str, given_name: str, family_name: str) -> dict[str, object]:
    return {
        "osdi:signature": {
            "identifiers": [f"action_network:{uuid.uuid4()}"],
            "person": {
                "given_name": given_name,
                "family_name": family_name,
                "email_addresses": [{"address": f"{key}@example.org", "primary": True}],
                "postal_addresses": [{"primary": True, "country": "BD"}],
            },
        },
        "idempotency_key": key,
    }


async def test_webhooks_report_a_bad_name_per_item_and_keep_the_others(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    petition = await make_petition(db)
    integration = Integration(name="CRM", secret=generate_secret(), default_petition_id=petition.id)
    db.add(integration)
    await db.commit()

    native = await _deliver(
        client,
        integration,
        {
            "signatures": [
                {"external_id": "ok", "name": "সুমাইয়া আক্তার", "email": "s@example.org", "country": "BD"},
                {"external_id": "phish", "name": PHISHING, "email": "p@example.org", "country": "BD"},
            ]
        },
    )
    assert native.status_code == 200, native.text
    results = {r["external_id"]: r for r in native.json()["results"]}
    assert results["ok"]["status"] == "accepted"
    assert results["phish"]["status"] == "invalid"
    assert results["phish"]["errors"][0]["loc"] == ["name"]

    action_network = await _deliver(
        client,
        integration,
        [
            _an_signature("an-ok", "Rina", "Akter"),
            _an_signature("an-phish", "Rina\nYour account is locked", "visit bank-secure.com"),
        ],
    )
    assert action_network.status_code == 200, action_network.text
    results = {r["external_id"]: r for r in action_network.json()["results"]}
    assert results["an-ok"]["status"] == "accepted"
    assert results["an-phish"]["status"] == "invalid"
    assert results["an-phish"]["errors"][0]["loc"] == ["osdi:signature", "person", "name"]
    assert "locked" not in action_network.text
    assert "bank-secure" not in action_network.text

    stored = await db.scalars(select(Signature.external_id).where(Signature.petition_id == petition.id))
    assert sorted(key or "" for key in stored.all()) == ["an-ok", "ok"]


async def test_an_import_reports_a_bad_name_by_line(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    petition = await make_petition(db)
    headers = await headers_for(Role.campaigner)
    await db.commit()
    quoted = PHISHING.replace('"', '""')
    body = f'name,email,country\nAna Rahman,ana@example.org,BD\n"{quoted}",p@example.org,BD\nevil.com,,BD\n'
    response = await client.post(
        f"/v1/petitions/{petition.slug}/imports",
        content=body,
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["imported"], report["rejected"]) == (1, 2)
    assert [(e["line"], e["reason"].split(":")[0]) for e in report["errors"]] == [(4, "name"), (5, "name")]
    assert "URGENT" not in response.text
    assert "evil.com" not in response.text


async def test_a_name_stored_before_the_rule_is_left_out_of_the_mail(
    db: AsyncSession, run_pipeline: RunPipeline, job: Job
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.confirmed)
    # As if signed before names were checked: written straight to the table.
    signature = await make_signature(db, petition, name=PHISHING, email="stranger@example.org")
    await db.commit()
    await run_pipeline()
    await tasks.request_confirmations(job(), signature_ids=[signature.id])
    await db.commit()

    [mail] = await queued(db, to_canonical="stranger@example.org", kind="confirmation")
    assert mail.text_body.startswith("Hello,\n")
    for part in (mail.subject, mail.text_body, mail.html_body or ""):
        assert "URGENT" not in part
        assert "bank-secure" not in part
