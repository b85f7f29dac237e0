"""No input makes a 500: the requests that once did, and the limits that stop their whole families —
one body size limit, one JSON nesting limit, bounded numbers and text without NUL characters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.integrations.models import Integration
from services.core.integrations.webhooks import generate_secret, sign_webhook
from services.core.users.models import Role
from tests.api.auth.test_auth import assert_problem
from tests.factories import auth_headers, make_petition, make_user

DEEP = 100_000


@pytest.fixture
async def admin_headers(db: AsyncSession, settings: Settings) -> dict[str, str]:
    return auth_headers(settings, await make_user(db, Role.admin))


async def test_a_webhook_timestamp_of_400_digits_is_malformed(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/webhooks/signatures",
        params={"integration": str(uuid.uuid4())},
        content=b'{"signatures": []}',
        headers={
            "content-type": "application/json",
            "webhook-id": "msg_1",
            "webhook-timestamp": "9" * 400,
            "webhook-signature": "v1,AAAA",
        },
    )
    assert_problem(response, 400, "webhook-headers-malformed")


async def test_unsubscribe_with_a_deeply_nested_body(client: httpx.AsyncClient) -> None:
    body = b"[" * DEEP + b"]" * DEEP
    response = await client.post(
        "/v1/unsubscribe", content=body, headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, "validation-error")


async def test_a_signed_webhook_nested_deeply(client: httpx.AsyncClient, db: AsyncSession) -> None:
    petition = await make_petition(db)
    integration = Integration(name="CRM", secret=generate_secret(), default_petition_id=petition.id)
    db.add(integration)
    await db.flush()
    body = b'{"signatures": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    headers = sign_webhook(integration.secret, "msg_deep", datetime.now(UTC), body)
    response = await client.post(
        "/v1/webhooks/signatures",
        params={"integration": str(integration.id)},
        content=body,
        headers={**headers, "content-type": "application/json"},
    )
    assert_problem(response, 422, "webhook-payload-invalid")


async def test_nul_in_the_user_search(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.get("/v1/users", params={"q": "\x00"}, headers=admin_headers)
    assert_problem(response, 422, "validation-error")


@pytest.mark.parametrize("path", ["/v1/users", "/v1/api-keys"])
async def test_an_offset_beyond_int8(
    client: httpx.AsyncClient, admin_headers: dict[str, str], path: str
) -> None:
    response = await client.get(path, params={"offset": str(2**63)}, headers=admin_headers)
    assert_problem(response, 422, "validation-error")
