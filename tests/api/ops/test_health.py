"""/healthz and /readyz against the real PostgreSQL and Redis, and against ones that are down or hang."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from services.api.ops import checks
from services.core.jobs import JobQueue


@asynccontextmanager
async def queue_at(app: FastAPI, redis_url: str) -> AsyncIterator[None]:
    """Point the app's queue at another Redis for the duration."""
    real = app.state.queue
    queue = JobQueue.lazy(redis_url)
    app.state.queue = queue
    try:
        yield
    finally:
        app.state.queue = real
        await queue.close()


@asynccontextmanager
async def database_at(app: FastAPI, database_url: str) -> AsyncIterator[None]:
    """Point the app's sessions at another PostgreSQL for the duration."""
    real = app.state.sessionmaker
    engine = create_async_engine(database_url)
    app.state.sessionmaker = async_sessionmaker(engine)
    try:
        yield
    finally:
        app.state.sessionmaker = real
        await engine.dispose()


@contextmanager
def check_timeout(seconds: float) -> Iterator[None]:
    saved = checks.CHECK_TIMEOUT
    checks.CHECK_TIMEOUT = seconds
    try:
        yield
    finally:
        checks.CHECK_TIMEOUT = saved


def assert_not_ready(response: httpx.Response, **expected: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not-ready"
    assert body["type"].endswith("/not-ready")
    for name, value in expected.items():
        assert body["checks"][name] == value, body
        if value != "ok":
            assert name in body["detail"]


async def test_healthz_is_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["cache-control"] == "no-store"


async def test_healthz_does_no_io(
    app: FastAPI, client: httpx.AsyncClient, closed_port: int, silent_port: int
) -> None:
    async with (
        queue_at(app, f"redis://127.0.0.1:{silent_port}/0"),
        database_at(app, f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port}/none"),
    ):
        started = time.monotonic()
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert time.monotonic() - started < 0.5


async def test_readyz_is_ok_when_everything_is_up(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok", "redis": "ok"},
    }


async def test_readyz_names_unreachable_redis(
    app: FastAPI, client: httpx.AsyncClient, closed_port: int
) -> None:
    async with queue_at(app, f"redis://127.0.0.1:{closed_port}/0"):
        response = await client.get("/readyz")
    assert_not_ready(response, redis="failed", database="ok", migrations="ok")


async def test_readyz_names_unreachable_database(
    app: FastAPI, client: httpx.AsyncClient, closed_port: int
) -> None:
    async with database_at(app, f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port}/none"):
        response = await client.get("/readyz")
    assert_not_ready(response, database="failed", migrations="skipped", redis="ok")


async def test_readyz_names_migrations_behind(client: httpx.AsyncClient, db: AsyncSession) -> None:
    # Inside the test's rolled-back transaction, which the app's requests share.
    await db.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    response = await client.get("/readyz")
    assert_not_ready(response, migrations="behind", database="ok", redis="ok")


async def test_readyz_names_an_unmigrated_database(client: httpx.AsyncClient, db: AsyncSession) -> None:
    await db.execute(text("DELETE FROM alembic_version"))
    response = await client.get("/readyz")
    assert_not_ready(response, migrations="behind")


async def test_readyz_does_not_hang_when_servers_do_not_answer(
    app: FastAPI, client: httpx.AsyncClient, silent_port: int
) -> None:
    """Servers that accept connections and never answer: each check gives up after its timeout, and
    the checks run concurrently."""
    with check_timeout(0.5):
        async with (
            queue_at(app, f"redis://127.0.0.1:{silent_port}/0"),
            database_at(app, f"postgresql+asyncpg://postgres@127.0.0.1:{silent_port}/none"),
        ):
            started = time.monotonic()
            response = await client.get("/readyz")
            elapsed = time.monotonic() - started
    assert_not_ready(response, redis="timeout", database="timeout", migrations="skipped")
    assert elapsed < 1.5, elapsed


def test_the_default_check_timeout_is_short() -> None:
    assert 0 < checks.CHECK_TIMEOUT <= 3


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_ops_endpoints_are_documented_without_v1_prefix(app: FastAPI, path: str) -> None:
    operation = app.openapi()["paths"][path]["get"]
    assert operation["tags"] == ["ops"]
    assert operation["summary"]
    assert operation["operationId"].startswith("ops-")


def test_readyz_documents_its_503_problem(app: FastAPI) -> None:
    responses = app.openapi()["paths"]["/readyz"]["get"]["responses"]
    assert "application/problem+json" in responses["503"]["content"]
