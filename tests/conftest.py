"""The test harness: real PostgreSQL and Redis (embedded ones unless DATABASE_URL / REDIS_URL are set),
one database per test run migrated with Alembic, each test inside a rolled-back transaction, and real
HTTP round trips through the ASGI app with httpx."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from services.api.app import create_app
from services.core.config import PROJECT_ROOT, Settings
from services.core.db import migrate
from services.core.db.engine import async_url, create_engine
from services.core.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.factories import driver_connection
from tests.smtp_server import SmtpServer

TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256"


async def _create_database(url: str, name: str) -> str:
    parsed = make_url(async_url(url))
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(False)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return parsed.set(database=name).render_as_string(False)


async def _drop_database(url: str, name: str) -> None:
    parsed = make_url(async_url(url))
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(False)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A URL to a PostgreSQL server: DATABASE_URL's, or an embedded one's."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    data_dir = Path(os.environ.get("LOOM_DATA_DIR", PROJECT_ROOT / ".loom"))
    pg = EmbeddedPostgres(data_dir / "postgres")
    yield pg.start("postgres")


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    """A fresh database for this test run, migrated to head."""
    name = f"loom_test_{uuid.uuid4().hex[:10]}"
    url = asyncio.run(_create_database(server_url, name))
    migrate.upgrade(url)
    yield url
    asyncio.run(_drop_database(server_url, name))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    redis = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield redis.start()
    redis.stop()


@pytest.fixture(scope="session")
def queue_name() -> str:
    """A queue of this run's own, so tests never touch another run's (or a developer's) jobs."""
    return f"loom:test:{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        redis_url=redis_url,
        secret_key=TEST_SECRET,
        log_json=False,
        # Every test client calls from the same address: limits high enough for the whole suite (the
        # rate-limit tests build limiters of their own).
        signing_rate_limit_ip="100000/minute",
        signing_rate_limit_email_domain="100000/minute",
        signing_rate_limit_petition="100000/minute",
        count_memo_seconds=0,  # tests read counts right after changing them (CountMemo has its own test)
        # Tests write inside transactions they roll back, which announce no writes: answers kept from one
        # test's data would outlive it. The cache has tests of its own (tests/api/test_public_reads.py).
        public_cache_entries=0,
        # Webhook receivers in tests listen on 127.0.0.1 (the SSRF tests turn this off for themselves).
        webhooks_allow_private_urls=True,
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings, database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings, database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back after the test."""
    async with engine.connect() as conn:
        transaction = await conn.begin()
        yield conn
        if transaction.is_active:
            await transaction.rollback()


@pytest.fixture
def sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions whose commits are savepoints inside the test's transaction."""
    return async_sessionmaker(
        bind=connection,
        expire_on_commit=False,
        autoflush=False,
        join_transaction_mode="create_savepoint",
    )


@pytest.fixture
async def db(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        yield session


@pytest.fixture(scope="session")
async def app(
    settings: Settings, database_url: str, redis_url: str, queue_name: str
) -> AsyncIterator[FastAPI]:
    application = create_app(settings, database_url=database_url, redis_url=redis_url)
    async with LifespanManager(application):
        application.state.queue.queue_name = queue_name
        yield application
        await application.state.queue.purge()  # jobs published by requests whose rows were rolled back


@pytest.fixture
async def client(
    app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession], connection: AsyncConnection
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client to the app, whose requests run inside the test's rolled-back transaction (the
    signing endpoint's one statement too)."""

    @contextlib.asynccontextmanager
    async def signing_connection() -> AsyncIterator[Any]:
        yield await driver_connection(connection)

    real = app.state.sessionmaker, app.state.signing_connect
    app.state.sessionmaker = sessionmaker
    app.state.signing_connect = signing_connection
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http
    finally:
        app.state.sessionmaker, app.state.signing_connect = real


@pytest.fixture
async def committing_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose requests really commit (for tests that need other connections to see
    the data, e.g. the worker). Such tests clean up after themselves."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) of this test's own, started; see tests/smtp_server.py for its
    controls (refuse with 4xx/5xx, delay, stop/start) and what it recorded (``.messages``)."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()
