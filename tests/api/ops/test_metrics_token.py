"""/metrics behind LOOM_METRICS_TOKEN: a bearer token when set (401 problem otherwise), open when not."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from services.api.app import create_app
from services.core.config import Settings

TOKEN = secrets.token_urlsafe(24)


@pytest.fixture
async def guarded(settings: Settings, database_url: str, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings.model_copy(update={"metrics_token": Settings(metrics_token=TOKEN).metrics_token}),
        database_url=database_url,
        redis_url=redis_url,
    )
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-of-some-length", f"Basic {TOKEN}", f"Bearer {TOKEN}x"],
    ids=["none", "wrong", "not-bearer", "longer"],
)
async def test_without_the_token_metrics_are_a_401_problem(
    guarded: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await guarded.get("/metrics", headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "metrics-token-invalid"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "loom_http_requests_total" not in response.text


async def test_with_the_token_metrics_are_served(guarded: httpx.AsyncClient) -> None:
    response = await guarded.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert "loom_http_requests_total" in response.text


async def test_without_a_token_setting_metrics_are_open(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics")).status_code == 200


def test_the_token_setting() -> None:
    assert Settings(metrics_token="").metrics_token is None  # compose's empty default: none
    with pytest.raises(ValueError, match="at least 16"):
        Settings(metrics_token="short")
