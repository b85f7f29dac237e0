"""Webhook endpoints through the API: the secret is shown once (creation, rotation), URLs reaching private
addresses are refused as problems, endpoints are listed, changed, enabled again after being disabled and
deleted, and the delivery log shows every attempt; a failed delivery can be sent again by hand, with the
same webhook-id, to a real receiver."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.users.models import Role
from services.worker.webhooks.delivery import deliver_due
from tests.api.network.helpers import HeadersFor, assert_problem
from tests.core.webhooks.helpers import emit_sample
from tests.core.webhooks.receiver import running_receiver

BASE = "/v1/webhook-endpoints"


async def create(client: httpx.AsyncClient, admin: dict[str, str], **fields: Any) -> dict[str, Any]:
    body = {"url": "http://127.0.0.1:9/hook", "event_types": ["signature.confirmed"], **fields}
    response = await client.post(BASE, json=body, headers=admin)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@contextlib.contextmanager
def private_urls_refused(app: FastAPI) -> Iterator[None]:
    """The app's settings as in production: private addresses refused."""
    settings: Settings = app.state.settings
    app.state.settings = settings.model_copy(update={"webhooks_allow_private_urls": False})
    try:
        yield
    finally:
        app.state.settings = settings


async def test_create_shows_the_secret_once_and_the_caller_owns_the_endpoint(
    client: httpx.AsyncClient, headers_for: HeadersFor, db: AsyncSession
) -> None:
    admin = await headers_for(Role.admin)
    created = await create(
        client,
        admin,
        event_types=["campaign.published", "signature.confirmed", "campaign.published"],
        description="Partner CRM",
    )
    assert created["secret"].startswith("whsec_")
    assert created["event_types"] == ["campaign.published", "signature.confirmed"]
    assert created["enabled"] is True
    assert created["description"] == "Partner CRM"
    me = (await client.get("/v1/me", headers=admin)).json()
    assert created["owner_id"] == me["id"]

    shown = await client.get(f"{BASE}/{created['id']}", headers=admin)
    assert shown.status_code == 200, shown.text
    assert "secret" not in shown.json()
    listed = (await client.get(BASE, headers=admin)).json()
    assert created["id"] in [e["id"] for e in listed["items"]]
    assert all("secret" not in e for e in listed["items"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.org/x", "event_types": ["signature.confirmed"]}, "url"),
        ({"url": "https://u:p@example.org/x", "event_types": ["signature.confirmed"]}, "url"),
        ({"url": "https://example.org/x", "event_types": []}, "event_types"),
        ({"url": "https://example.org/x", "event_types": ["signature.deleted"]}, "event_types"),
        (
            {"url": "https://example.org/x", "event_types": ["signature.confirmed"], "secret": "mine"},
            "secret",
        ),
    ],
)
async def test_bad_input_is_a_validation_problem(
    client: httpx.AsyncClient, headers_for: HeadersFor, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(await client.post(BASE, json=body, headers=await headers_for(Role.admin)), 422)
    assert any(field in error["loc"] for error in problem["errors"]), problem


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "http://10.0.0.7/",
        "http://[::ffff:192.168.1.1]/",
        "https://no-such-host.invalid/hook",
    ],
)
async def test_urls_reaching_private_addresses_are_refused(
    client: httpx.AsyncClient, app: FastAPI, headers_for: HeadersFor, url: str
) -> None:
    admin = await headers_for(Role.admin)
    with private_urls_refused(app):
        response = await client.post(
            BASE, json={"url": url, "event_types": ["signature.confirmed"]}, headers=admin
        )
    problem = assert_problem(response, 422, "webhook-url-refused")
    assert "secret" not in problem


async def test_changing_the_url_checks_it_again(
    client: httpx.AsyncClient, app: FastAPI, headers_for: HeadersFor
) -> None:
    admin = await headers_for(Role.admin)
    created = await create(client, admin)
    with private_urls_refused(app):
        refused = await client.patch(
            f"{BASE}/{created['id']}", json={"url": "http://10.1.1.1/"}, headers=admin
        )
        assert_problem(refused, 422, "webhook-url-refused")
        # an unchanged URL is not re-checked, so other fields can still be edited
        kept = await client.patch(
            f"{BASE}/{created['id']}", json={"url": created["url"], "description": "x"}, headers=admin
        )
        assert kept.status_code == 200, kept.text
    null = await client.patch(f"{BASE}/{created['id']}", json={"url": None}, headers=admin)
    assert_problem(null, 422)


async def test_update_disable_enable_rotate_and_delete(
    client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    admin = await headers_for(Role.admin)
    created = await create(client, admin)
    endpoint = f"{BASE}/{created['id']}"

    changed = await client.patch(
        endpoint, json={"event_types": ["petition.milestone_reached"], "description": None}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["event_types"] == ["petition.milestone_reached"]
    assert changed.json()["description"] is None

    paused = (await client.patch(endpoint, json={"enabled": False}, headers=admin)).json()
    assert paused["enabled"] is False
    assert paused["disabled_at"] is not None
    assert [e["id"] for e in (await client.get(BASE + "?enabled=false", headers=admin)).json()["items"]] == [
        created["id"]
    ]
    enabled = (await client.patch(endpoint, json={"enabled": True}, headers=admin)).json()
    assert enabled["enabled"] is True
    assert enabled["disabled_at"] is None

    rotated = await client.post(f"{endpoint}/rotate-secret", headers=admin)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != created["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None

    deleted = await client.delete(endpoint, headers=admin)
    assert deleted.status_code == 204, deleted.text
    assert_problem(await client.get(endpoint, headers=admin), 404, "webhook-endpoint-not-found")
    assert_problem(await client.delete(endpoint, headers=admin), 404, "webhook-endpoint-not-found")


async def test_the_delivery_log_and_manual_redelivery_of_a_failed_delivery(
    client: httpx.AsyncClient,
    headers_for: HeadersFor,
    db: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    admin = await headers_for(Role.admin)
    quick = settings.model_copy(update={"webhook_retry_hours": 0.5})
    with running_receiver(statuses=[500]) as receiver:
        created = await create(client, admin, url=receiver.url)
        receiver.secrets = [created["secret"]]
        endpoint = f"{BASE}/{created['id']}"
        events = {str(await emit_sample(db)), str(await emit_sample(db))}
        # sent at once (either gets the 500), an hour late: past the retry window, a failure is final
        late = datetime.now(UTC) + timedelta(hours=1)
        assert await deliver_due(sessionmaker, quick, now=late) == 2

        failed = (await client.get(f"{endpoint}/deliveries?state=failed", headers=admin)).json()
        assert failed["total"] == 1
        [row] = failed["items"]
        assert row["event_id"] in events
        assert row["state"] == "failed"
        assert row["event_type"] == "signature.confirmed"
        assert row["last_status_code"] == 500
        assert row["next_attempt_at"] is None
        [attempt] = row["attempt_log"]
        assert (attempt["number"], attempt["succeeded"], attempt["status_code"]) == (1, False, 500)
        assert attempt["latency_ms"] >= 0
        assert attempt["error"] == "HTTP 500"

        page = (await client.get(f"{endpoint}/deliveries?limit=1", headers=admin)).json()
        assert (page["total"], len(page["items"]), page["limit"]) == (2, 1, 1)
        second_page = (await client.get(f"{endpoint}/deliveries?limit=1&offset=1", headers=admin)).json()
        assert {page["items"][0]["id"], second_page["items"][0]["id"]} >= {row["id"]}

        again = await client.post(f"{endpoint}/deliveries/{row['id']}/redeliver", headers=admin)
        assert again.status_code == 200, again.text
        assert again.json()["state"] == "pending"
        assert again.json()["next_attempt_at"] is not None
        assert await deliver_due(sessionmaker, quick) == 1

    first, second, redelivered = receiver.received
    assert redelivered.status == 200
    assert redelivered.webhook_id == row["event_id"]
    assert redelivered.verified_with == [created["secret"]]
    assert redelivered.body in {first.body, second.body}
    shown = (await client.get(f"{endpoint}/deliveries?state=delivered", headers=admin)).json()
    delivered = next(d for d in shown["items"] if d["id"] == row["id"])
    assert delivered["attempts"] == 2
    assert [a["succeeded"] for a in delivered["attempt_log"]] == [False, True]


async def test_an_endpoint_disabled_for_failing_is_enabled_again_and_redelivers(
    client: httpx.AsyncClient,
    headers_for: HeadersFor,
    db: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    admin = await headers_for(Role.admin)
    quick = settings.model_copy(update={"webhook_disable_after_hours": 1.0})
    with running_receiver(default=500) as receiver:
        created = await create(client, admin, url=receiver.url)
        endpoint = f"{BASE}/{created['id']}"
        await emit_sample(db)
        t0 = datetime.now(UTC)
        await deliver_due(sessionmaker, quick, now=t0)
        [row] = (await client.get(f"{endpoint}/deliveries", headers=admin)).json()["items"]
        await deliver_due(sessionmaker, quick, now=t0 + timedelta(hours=2))

        shown = (await client.get(endpoint, headers=admin)).json()
        assert shown["enabled"] is False
        assert shown["failing_since"] is not None
        assert "failed" in shown["disabled_reason"]
        disabled = await client.post(f"{endpoint}/deliveries/{row['id']}/redeliver", headers=admin)
        assert_problem(disabled, 409, "webhook-endpoint-disabled")

        receiver.default = 204
        enabled = (await client.patch(endpoint, json={"enabled": True}, headers=admin)).json()
        assert (enabled["enabled"], enabled["failing_since"], enabled["disabled_reason"]) == (
            True,
            None,
            None,
        )
        again = await client.post(f"{endpoint}/deliveries/{row['id']}/redeliver", headers=admin)
        assert again.status_code == 200, again.text
        assert await deliver_due(sessionmaker, quick, now=datetime.now(UTC) + timedelta(hours=3)) == 1
    assert [r.status for r in receiver.received] == [500, 500, 204]
    assert len({r.webhook_id for r in receiver.received}) == 1


async def test_unknown_deliveries_are_404(client: httpx.AsyncClient, headers_for: HeadersFor) -> None:
    admin = await headers_for(Role.admin)
    created = await create(client, admin)
    response = await client.post(f"{BASE}/{created['id']}/deliveries/{uuid.uuid4()}/redeliver", headers=admin)
    assert_problem(response, 404, "webhook-delivery-not-found")
    assert_problem(await client.get(f"{BASE}/{uuid.uuid4()}/deliveries", headers=admin), 404)
