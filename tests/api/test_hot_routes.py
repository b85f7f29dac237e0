"""The hot routes (public signing, the public count) are dispatched ahead of the router to their own
route, and behave exactly as routed ones: validation, problem details, headers, the access log's route
template; every other request, a hot path's other methods included, still goes through the router."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import Receive, Scope, Send

from services.api.app import HOT_ROUTES
from services.api.routing import HotRoutes
from tests.api.signatures.test_signing import body
from tests.factories import make_petition


def _hot_routes(app: FastAPI) -> HotRoutes:
    layer: Any = app.middleware_stack
    while not isinstance(layer, HotRoutes):
        layer = layer.app
    return layer


@pytest.fixture
def routed(app: FastAPI, client: httpx.AsyncClient) -> Iterator[list[str]]:
    """The paths of the requests that reached the general router."""
    hot = _hot_routes(app)
    real = hot.router
    paths: list[str] = []

    class Counting:
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                paths.append(scope["path"])
            await real(scope, receive, send)

    hot.router = Counting()  # type: ignore[assignment]
    try:
        yield paths
    finally:
        hot.router = real


@pytest.fixture
async def petition_slug(db: AsyncSession) -> str:
    petition = await make_petition(db)
    await db.commit()
    return petition.slug


async def test_hot_routes_skip_the_router(
    client: httpx.AsyncClient, routed: list[str], petition_slug: str
) -> None:
    signed = await client.post(f"/v1/petitions/{petition_slug}/signatures", json=body())
    assert signed.status_code == 202, signed.text
    assert signed.headers["x-content-type-options"] == "nosniff"
    assert signed.headers["x-request-id"]
    counted = await client.get(f"/v1/petitions/{petition_slug}/count")
    assert counted.status_code == 200, counted.text
    assert counted.headers["cache-control"] == "public, max-age=2"
    assert routed == []
    # Another route goes through the router, as does another method on a hot path (405 with every method).
    assert (await client.get("/healthz")).status_code == 200
    wrong = await client.delete(f"/v1/petitions/{petition_slug}/signatures")
    assert wrong.status_code == 405
    assert "POST" in wrong.headers["allow"]
    assert routed == ["/healthz", f"/v1/petitions/{petition_slug}/signatures"]


async def test_hot_routes_keep_validation_and_problems(
    client: httpx.AsyncClient, routed: list[str], petition_slug: str
) -> None:
    invalid = await client.post(f"/v1/petitions/{petition_slug}/signatures", json={"name": ""})
    assert invalid.status_code == 422
    assert invalid.headers["content-type"].startswith("application/problem+json")
    unknown = await client.post("/v1/petitions/no-such-petition/signatures", json=body())
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "petition-not-found"
    stray = await client.get(f"/v1/petitions/{petition_slug}/count", params={"email": "x"})
    assert stray.status_code == 422  # undeclared query parameters are refused, as on every route
    missing = await client.get("/v1/petitions/no-such-petition/count")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert routed == []


def test_every_hot_route_exists(app: FastAPI) -> None:
    # HotRoutes refuses to start without each of them: a renamed path cannot silently drop off the list.
    HotRoutes(app.router, HOT_ROUTES)
    with pytest.raises(LookupError):
        HotRoutes(app.router, [("POST", "/v1/no-such-path")])


def test_every_public_read_is_hot(app: FastAPI) -> None:
    hot = {(method, context.original_route.path_format) for method, context in _hot_routes(app)._hot}  # type: ignore[attr-defined]
    for path in (
        "/v1/petitions/{ref}",
        "/v1/petitions/{petition}/stats",
        "/v1/organisations",
        "/v1/network/stats",
    ):
        assert ("GET", path) in hot


def test_a_route_the_router_would_answer_first_is_not_made_hot(app: FastAPI) -> None:
    # The router answers GET /v1/things/mine with the literal route declared first: dispatching the
    # pattern ahead of the router would take that request from it.
    router = APIRouter()

    @router.get("/v1/things/mine")
    async def mine() -> dict[str, str]:
        return {}

    @router.get("/v1/things/{ref}")
    async def thing(ref: str) -> dict[str, str]:
        return {}

    with pytest.raises(ValueError, match="is not hot"):
        HotRoutes(router, [("GET", "/v1/things/{ref}")])
    HotRoutes(router, [("GET", "/v1/things/mine")])
