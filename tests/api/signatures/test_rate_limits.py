"""The public signing endpoint's rate limits (issue 3 §10): per client address (hashed), per email domain
and per petition, each a 429 problem with ``Retry-After``; and signing still works when Redis is down.

Each test builds an app of its own with low limits, whose requests run in the test's rolled-back
transaction (like the ``client`` fixture). Limiter keys live in Redis for a minute, so every test uses a
fresh address, domain or petition."""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from services.api.app import create_app
from services.core.config import Settings
from services.core.signatures.models import Signature
from tests.api.signatures.test_signing import body
from tests.factories import driver_connection, make_petition

HIGH = "100000/minute"
CLOSED_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def _address() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


@contextlib.asynccontextmanager
async def limited_client(
    settings: Settings,
    database_url: str,
    redis_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    connection: AsyncConnection,
    *,
    address: str | None = None,
    **limits: str,
) -> AsyncIterator[httpx.AsyncClient]:
    values = {
        "signing_rate_limit_ip": HIGH,
        "signing_rate_limit_email_domain": HIGH,
        "signing_rate_limit_petition": HIGH,
    }
    values.update(limits)
    app = create_app(settings.model_copy(update=values), database_url=database_url, redis_url=redis_url)

    @contextlib.asynccontextmanager
    async def signing_connection() -> AsyncIterator[Any]:
        yield await driver_connection(connection)

    async with LifespanManager(app):
        app.state.sessionmaker = sessionmaker
        app.state.signing_connect = signing_connection
        transport = httpx.ASGITransport(
            app=app, raise_app_exceptions=False, client=(address or _address(), 4321)
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def _count(db: AsyncSession, petition_id: uuid.UUID) -> int:
    return await db.scalar(select(func.count()).where(Signature.petition_id == petition_id)) or 0


def _assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "rate-limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60


async def test_per_address(
    settings: Settings,
    database_url: str,
    redis_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    connection: AsyncConnection,
    db: AsyncSession,
) -> None:
    petition = await make_petition(db)
    await db.commit()
    address = _address()
    kwargs: dict[str, Any] = {"signing_rate_limit_ip": "2/minute"}
    async with limited_client(
        settings, database_url, redis_url, sessionmaker, connection, address=address, **kwargs
    ) as http:
        for i in range(2):
            response = await http.post(
                f"/v1/petitions/{petition.slug}/signatures", json=body(email=f"p{i}@example.org")
            )
            assert response.status_code == 202, response.text
        limited = await http.post(
            f"/v1/petitions/{petition.slug}/signatures", json=body(email="p9@example.org")
        )
        _assert_limited(limited)
        # Another petition from the same address: still the same address.
        _assert_limited(await http.post("/v1/petitions/any-other/signatures", json=body()))
    assert await _count(db, petition.id) == 2
    # Another address is not limited.
    async with limited_client(settings, database_url, redis_url, sessionmaker, connection, **kwargs) as http:
        response = await http.post(
            f"/v1/petitions/{petition.slug}/signatures", json=body(email="q@example.org")
        )
        assert response.status_code == 202, response.text


async def test_per_email_domain(
    settings: Settings,
    database_url: str,
    redis_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    connection: AsyncConnection,
    db: AsyncSession,
) -> None:
    petition = await make_petition(db)
    await db.commit()
    domain = f"d{uuid.uuid4().hex[:10]}.example"
    async with limited_client(
        settings,
        database_url,
        redis_url,
        sessionmaker,
        connection,
        signing_rate_limit_email_domain="2/minute",
    ) as http:
        url = f"/v1/petitions/{petition.slug}/signatures"
        assert (await http.post(url, json=body(email=f"a@{domain}"))).status_code == 202
        assert (await http.post(url, json=body(email=f"b@{domain.upper()}"))).status_code == 202
        _assert_limited(await http.post(url, json=body(email=f"c@{domain}")))
        # Other domains go on.
        assert (
            await http.post(url, json=body(email=f"c@o{uuid.uuid4().hex[:10]}.example"))
        ).status_code == 202
    assert await _count(db, petition.id) == 3


async def test_per_petition(
    settings: Settings,
    database_url: str,
    redis_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    connection: AsyncConnection,
    db: AsyncSession,
) -> None:
    petition = await make_petition(db)
    other = await make_petition(db)
    await db.commit()
    async with limited_client(
        settings, database_url, redis_url, sessionmaker, connection, signing_rate_limit_petition="3/minute"
    ) as http:
        for i in range(3):
            response = await http.post(
                f"/v1/petitions/{petition.slug}/signatures", json=body(email=f"p{i}@example.org")
            )
            assert response.status_code == 202, response.text
        _assert_limited(
            await http.post(f"/v1/petitions/{petition.slug}/signatures", json=body(email="p9@example.org"))
        )
        response = await http.post(
            f"/v1/petitions/{other.slug}/signatures", json=body(email="p9@example.org")
        )
        assert response.status_code == 202, response.text
    assert await _count(db, petition.id) == 3
    assert await _count(db, other.id) == 1


async def test_signing_fails_open_when_redis_is_unreachable(
    settings: Settings,
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    connection: AsyncConnection,
    db: AsyncSession,
) -> None:
    petition = await make_petition(db)
    await db.commit()
    async with limited_client(
        settings,
        database_url,
        CLOSED_REDIS,
        sessionmaker,
        connection,
        signing_rate_limit_ip="1/minute",
        signing_rate_limit_email_domain="1/minute",
        signing_rate_limit_petition="1/minute",
    ) as http:
        for i in range(3):
            response = await http.post(
                f"/v1/petitions/{petition.slug}/signatures", json=body(email=f"p{i}@example.org")
            )
            assert response.status_code == 202, response.text
            assert response.json() == {"status": "pending_confirmation"}
    assert await _count(db, petition.id) == 3
