"""Security headers: nosniff on every response (errors, 404, 405 and the 500 of an unhandled error too), HSTS
with an https public URL, the built-in pages' Content-Security-Policy (no framing, no referrer), and
``Cache-Control: no-store`` on every route that answers with personal data or credentials — found by
walking the app's routes — while the public reads stay cacheable."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.app import create_app
from services.api.deps import current_principal
from services.api.mail.pages import STYLE
from services.core.config import Settings
from tests.api.test_permission_matrix import CASES, World, _fill, world
from tests.factories import make_petition
from tests.permissions import CALLERS

__all__ = ["world"]  # the fixture

NOSNIFF = "nosniff"


def _routes(app: FastAPI) -> Iterator[APIRoute]:
    for route in app.routes:
        for context in getattr(route, "effective_route_contexts", list)():
            if isinstance(context.original_route, APIRoute):
                yield context.original_route


def _declares_no_store(route: APIRoute) -> bool:
    return "no-store" in getattr(route, "response_headers", {}).get("Cache-Control", "")


# --- every response ---------------------------------------------------------------------------------------


async def test_every_response_says_nosniff(client: httpx.AsyncClient) -> None:
    answers = [
        await client.get("/healthz"),  # 200
        await client.get("/v1/no-such-thing"),  # 404, no route
        await client.delete("/healthz"),  # 405
        await client.post("/v1/auth/token"),  # 422
        await client.get("/v1/me"),  # 401
        await client.get("/v1/organisations"),  # a public read
    ]
    assert [a.status_code for a in answers] == [200, 404, 405, 422, 401, 200]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == NOSNIFF
        assert "strict-transport-security" not in answer.headers  # the test public URL is http


@pytest.fixture
async def https_client(
    settings: Settings, database_url: str, redis_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The app behind an https public URL, with a route that fails."""
    app = create_app(
        settings.model_copy(update={"public_url": "https://loom.example.org"}),
        database_url=database_url,
        redis_url=redis_url,
    )

    async def fail() -> None:
        raise RuntimeError("unhandled")

    app.add_api_route("/test/fail", fail, methods=["GET"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_hsts_and_nosniff_even_on_an_unhandled_error(https_client: httpx.AsyncClient) -> None:
    for answer in (await https_client.get("/healthz"), await https_client.get("/test/fail")):
        assert answer.headers["x-content-type-options"] == NOSNIFF
        assert answer.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert answer.status_code == 500
    assert answer.json()["code"] == "internal-error"


# --- the built-in pages -------------------------------------------------------------------------------


def _policy(response: httpx.Response) -> dict[str, str]:
    directives = (d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


@pytest.mark.parametrize(
    ("method", "path", "form"),
    [
        ("GET", "/confirm?token=not-a-token", None),
        ("POST", "/confirm", {"token": "not-a-token"}),
        ("GET", "/unsubscribe?token=not-a-token", None),
        ("POST", "/unsubscribe", {"token": "not-a-token"}),
        ("GET", "/confirm", None),  # no token: a 422 problem, with the page's headers all the same
    ],
)
async def test_the_pages_allow_no_script_no_framing_and_no_referrer(
    client: httpx.AsyncClient, method: str, path: str, form: dict[str, str] | None
) -> None:
    page = await client.request(method, path, data=form)
    assert page.status_code in {400, 422}
    policy = _policy(page)
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["form-action"] == "'self'"
    assert policy["base-uri"] == "'none'"
    assert "script-src" not in policy
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == NOSNIFF
    if page.headers["content-type"].startswith("text/html"):
        # The page's one style element is the one the policy allows, and nothing is styled inline.
        [style] = re.findall(r"<style>(.*?)</style>", page.text)
        digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
        assert policy["style-src"] == f"'sha256-{digest}'"
        assert style == STYLE
        assert " style=" not in page.text


# --- personal data and credentials are never cached ----------------------------------------------------

# Fields that hold personal data or credentials in an answer.
SENSITIVE_FIELDS = frozenset(
    {"email", "full_name", "postal_code", "access_token", "refresh_token", "secret", "key", "to_address"}
)


def _fields(schema: dict[str, Any]) -> set[str]:
    """Every property name in a JSON schema, nested models included."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            found.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return found


def _answer_fields(route: APIRoute) -> set[str] | None:
    model = route.response_model
    if model is None:
        return None
    if isinstance(model, type) and issubclass(model, BaseModel):
        return _fields(model.model_json_schema())
    return _fields(TypeAdapter(model).json_schema())


def _authenticated(route: APIRoute) -> bool:
    def calls(dependant: Any) -> Iterator[Any]:
        yield dependant.call
        for sub in dependant.dependencies:
            yield from calls(sub)

    return current_principal in set(calls(route.dependant))


def test_routes_answering_personal_data_or_credentials_declare_no_store(app: FastAPI) -> None:
    missing: list[str] = []
    checked = 0
    for route in _routes(app):
        fields = _answer_fields(route)
        if fields is None:
            # A file or stream with no schema, from a signed-in caller: it must decide (CSV exports do).
            sensitive = _authenticated(route) and route.status_code != 204
        else:
            sensitive = bool(fields & SENSITIVE_FIELDS)
        if sensitive:
            checked += 1
            if not _declares_no_store(route):
                missing.append(f"{sorted(route.methods or ())} {route.path}")
    assert not missing, "routes answering with personal data or credentials without NoStore:\n" + "\n".join(
        missing
    )
    assert checked >= 15  # users, me, tokens, API keys, secrets, signatures, reviews, privacy …


def _route_for(app: FastAPI, method: str, path: str) -> APIRoute:
    path = path.partition("?")[0]
    found = [r for r in _routes(app) if method in (r.methods or ()) and r.path_regex.match(path)]
    assert found, f"no route for {method} {path}"
    return found[0]


async def test_every_no_store_route_answers_no_store_and_public_reads_stay_cacheable(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    """Every endpoint, called by a caller it admits (the permission matrix's cases): declared routes answer
    ``no-store``, whatever the answer (a 404 in the matrix's world too); anonymous reads do not."""
    declared = 0
    for case in CASES:
        caller = next((c for c in CALLERS if c in case.allowed), None)
        if caller is None:
            continue
        path = _fill(case.path, world.values)
        response = await client.request(
            case.method,
            path,
            json=_fill(case.json, world.values),
            data=_fill(case.form, world.values),
            headers=world.headers[caller],
        )
        route = _route_for(app, case.method.upper(), path)
        cache_control = response.headers.get("cache-control", "")
        if _declares_no_store(route):
            declared += 1
            assert "no-store" in cache_control, (case, response.status_code)
        elif (
            caller == "anonymous"
            and case.method == "GET"
            and route.path not in {"/healthz", "/readyz", "/metrics"}
        ):
            assert "no-store" not in cache_control, case
    assert declared >= 20


async def test_the_public_count_stays_publicly_cacheable(client: httpx.AsyncClient, db: AsyncSession) -> None:
    petition = await make_petition(db)
    await db.commit()
    response = await client.get(f"/v1/petitions/{petition.slug}/count")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "public, max-age=2"
    assert response.headers["x-content-type-options"] == NOSNIFF
