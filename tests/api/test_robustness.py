"""No input makes a 500: the requests that once did, and the limits that stop their whole families —
one body size limit, one JSON nesting limit, bounded numbers and text without NUL characters."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.routing import LoomRoute
from services.cli import OPENAPI_PATH
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


# --- one body size limit --------------------------------------------------------------------------------

MiB = 1024 * 1024
CHUNK = 64 * 1024


class Body:
    """A request body of ``size`` bytes, streamed in chunks; counts how much of it the app read."""

    def __init__(self, size: int, fill: bytes = b" ") -> None:
        self.size, self.fill, self.sent = size, fill, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.size:
            chunk = self.fill * min(CHUNK, self.size - self.sent)
            self.sent += len(chunk)
            yield chunk


async def test_a_large_anonymous_body_is_refused_before_it_is_read(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    petition = await make_petition(db)
    body = Body(100 * MiB)
    response = await client.post(
        f"/v1/petitions/{petition.slug}/signatures",
        content=body,
        headers={"content-type": "application/json", "content-length": str(body.size)},
    )
    problem = assert_problem(response, 413, "payload-too-large")
    assert "1,048,576 bytes" in str(problem["detail"])
    assert body.sent <= CHUNK  # Content-Length said enough: nothing was read


async def test_a_large_chunked_body_is_refused_as_soon_as_it_passes_the_limit(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    petition = await make_petition(db)
    body = Body(100 * MiB)  # no Content-Length: sent chunked
    response = await client.post(
        f"/v1/petitions/{petition.slug}/signatures",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 413, "payload-too-large")
    assert body.sent <= MiB + 2 * CHUNK


async def test_the_limit_holds_where_the_endpoint_reads_the_body_itself(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/unsubscribe", content=Body(2 * MiB), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload-too-large")


async def test_the_csv_upload_has_a_larger_allowance(
    client: httpx.AsyncClient, db: AsyncSession, admin_headers: dict[str, str]
) -> None:
    petition = await make_petition(db)
    rows = b"Nasrin Akter,,BD,1212\n" * 150_000  # about 3 MB
    assert len(rows) > 2 * MiB
    response = await client.post(
        f"/v1/petitions/{petition.slug}/imports",
        content=b"name,email,country,postal_code\n" + rows,
        headers={**admin_headers, "content-type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["imported"] == 150_000


# --- JSON bodies: UTF-8, nesting, NUL -------------------------------------------------------------------


def _json_error(response: httpx.Response) -> str:
    problem = assert_problem(response, 422, "validation-error")
    errors = problem["errors"]
    assert isinstance(errors, list)
    assert errors[0]["type"] == "json_invalid"
    assert errors[0]["loc"][0] == "body"
    return str(errors[0]["msg"])


async def test_a_body_that_is_not_utf8_is_a_422(client: httpx.AsyncClient, db: AsyncSession) -> None:
    petition = await make_petition(db)
    response = await client.post(
        f"/v1/petitions/{petition.slug}/signatures",
        content=b'{"name": "Jane \xff", "email": "jane@example.org"}',
        headers={"content-type": "application/json"},
    )
    assert "UTF-8" in _json_error(response)


async def test_a_body_that_is_not_json_is_a_422(client: httpx.AsyncClient, db: AsyncSession) -> None:
    petition = await make_petition(db)
    response = await client.post(
        f"/v1/petitions/{petition.slug}/signatures",
        content=b'{"name": ',
        headers={"content-type": "application/json"},
    )
    _json_error(response)


async def test_json_nested_too_deeply_is_a_422(client: httpx.AsyncClient, db: AsyncSession) -> None:
    petition = await make_petition(db)
    response = await client.post(
        f"/v1/petitions/{petition.slug}/signatures",
        content=b'{"name": "Jane", "source": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        headers={"content-type": "application/json"},
    )
    assert "nested deeper than 32 levels" in _json_error(response)


async def test_json_nested_to_the_limit_is_read(client: httpx.AsyncClient, db: AsyncSession) -> None:
    petition = await make_petition(db)
    nested = "[" * 31 + "]" * 31  # 32 levels with the object around it
    response = await client.post(
        f"/v1/petitions/{petition.slug}/signatures",
        content='{"name": "Jane", "country": "BD", "source": ' + nested + "}",
        headers={"content-type": "application/json"},
    )
    problem = assert_problem(response, 422, "validation-error")  # read, then refused by the schema
    assert problem["errors"][0]["loc"] == ["body", "source"]  # type: ignore[index]


async def test_a_nul_character_in_a_json_body_is_a_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/campaigns",
        content=json.dumps(
            {"slug": "pay-up", "default_language": "en", "translations": {"en": {"title": "Pay\x00"}}}
        ),
        headers={**admin_headers, "content-type": "application/json"},
    )
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"] == [  # the field is named, as for any other bad field
        {
            "loc": ["body", "translations", "en", "title"],
            "msg": "must not contain NUL characters",
            "type": "string_nul",
        }
    ]


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/v1/auth/token", {"username": "admin\x00@example.org", "password": "secret"}),
        ("/v1/unsubscribe", {"token": "abc\x00"}),
        ("/confirm", {"token": "abc\x00"}),
    ],
)
async def test_a_nul_character_in_a_form_is_a_422(
    client: httpx.AsyncClient, path: str, form: dict[str, str]
) -> None:
    problem = assert_problem(await client.post(path, data=form), 422, "validation-error")
    assert problem["errors"][0]["loc"][0] == "body"  # type: ignore[index]


# --- NUL in query and path parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/campaigns/pay%00up",
        "/v1/petitions/pay%00up",
        "/v1/organisations/gwu%00",
        "/v1/coalitions/asia%00",
        "/v1/petitions/pay%00up/count",
    ],
)
async def test_a_nul_character_in_a_path_is_a_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str], path: str
) -> None:
    problem = assert_problem(await client.get(path, headers=admin_headers), 422, "validation-error")
    assert problem["errors"][0]["loc"][0] == "path"  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/campaigns", {"q": "pay\x00"}),
        ("/v1/campaigns", {"organisation": "gwu\x00"}),
        ("/v1/petitions", {"campaign": "pay\x00"}),
        ("/v1/organisations", {"coalition": "asia\x00"}),
        ("/v1/signature-reviews", {"petition": "pay\x00"}),
    ],
)
async def test_a_nul_character_in_a_query_parameter_is_a_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str], path: str, params: dict[str, str]
) -> None:
    response = await client.get(path, params=params, headers=admin_headers)
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["loc"] == ["query", next(iter(params))]  # type: ignore[index]


# --- kept so by construction ----------------------------------------------------------------------------

DOCUMENT = json.loads(OPENAPI_PATH.read_text())
OPERATIONS = [
    (f"{method.upper()} {path}", operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
]


def test_every_operation_with_a_body_documents_413_and_422() -> None:
    for name, operation in OPERATIONS:
        if "requestBody" not in operation:
            continue
        for status in ("413", "422"):
            response = operation["responses"].get(status)
            assert response, f"{name} does not document {status}"
            assert list(response["content"]) == ["application/problem+json"], name
        if (
            "application/json" in operation["requestBody"]["content"]
            and name != "POST /v1/webhooks/signatures"
        ):
            assert "json_invalid" in operation["responses"]["422"]["description"], name


def test_every_numeric_parameter_is_bounded() -> None:
    def numbers(schema: dict[str, Any]) -> list[dict[str, Any]]:
        found = [schema] if schema.get("type") in {"integer", "number"} else []
        for sub in (
            schema.get("anyOf", [])
            + schema.get("oneOf", [])
            + ([schema["items"]] if "items" in schema else [])
        ):
            found += numbers(sub)
        return found

    for name, operation in OPERATIONS:
        for parameter in operation.get("parameters", []):
            for schema in numbers(parameter["schema"]):
                bounds = (
                    {"minimum", "exclusiveMinimum"} & set(schema),
                    {"maximum", "exclusiveMaximum"} & set(schema),
                )
                assert all(bounds), f"{name}: {parameter['name']} needs a minimum and a maximum"


def test_every_number_in_a_request_body_is_bounded() -> None:
    """An unbounded integer reaches PostgreSQL as an out-of-range bigint or integer: a 500."""
    schemas = DOCUMENT["components"]["schemas"]
    unbounded: set[str] = set()

    def walk(schema: dict[str, Any], where: str, seen: frozenset[str]) -> None:
        ref = schema.get("$ref", "")
        if ref:
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                walk(schemas[name], name, seen | {name})
            return
        if schema.get("type") in {"integer", "number"} and not {"maximum", "exclusiveMaximum"} & set(schema):
            unbounded.add(where)
        for sub in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
            walk(sub, where, seen)
        for name, sub in schema.get("properties", {}).items():
            walk(sub, f"{where}.{name}", seen)
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                walk(schema[key], f"{where}[]", seen)

    for name, operation in OPERATIONS:
        for content in operation.get("requestBody", {}).get("content", {}).values():
            walk(content.get("schema", {}), name, frozenset())
    assert not unbounded, f"give these a maximum: {sorted(unbounded)}"


def test_every_route_reads_requests_the_loom_way(app: FastAPI) -> None:
    """The NUL and JSON rules live in LoomRoute (services/api/routing.py): every endpoint must be one."""
    for route in app.routes:
        if isinstance(route, APIRoute):
            assert isinstance(route, LoomRoute), f"{route.path} is not a LoomRoute: use routing.router()"


async def test_a_nul_character_in_a_signed_webhook_item_makes_that_item_invalid(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    petition = await make_petition(db)
    integration = Integration(name="CRM", secret=generate_secret(), default_petition_id=petition.id)
    db.add(integration)
    await db.flush()
    items = [
        {"external_id": "crm-1\x00", "name": "Jane Doe", "email": "jane@example.org", "country": "BD"},
        {"external_id": "crm-2", "name": "Rahim\x00", "email": "rahim@example.org", "country": "BD"},
        {"external_id": "crm-3", "name": "Nasrin Akter", "email": "nasrin@example.org", "country": "BD"},
    ]
    body = json.dumps({"signatures": items}).encode()
    headers = sign_webhook(integration.secret, "msg_nul", datetime.now(UTC), body)
    response = await client.post(
        "/v1/webhooks/signatures",
        params={"integration": str(integration.id)},
        content=body,
        headers={**headers, "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert [item["status"] for item in response.json()["results"]] == ["invalid", "invalid", "accepted"]
