"""One commit point per request: right after the endpoint returns, before the response is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.deps import SessionDep
from services.api.routing import router as make_router
from services.core.network.models import Coalition
from services.core.users.models import Role, User


@pytest.fixture
async def probe_client(
    app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """The app plus two probe routes, on a copy of its router so the real app is untouched."""
    probe = make_router(prefix="/_probe")

    @probe.post("/duplicate")
    async def duplicate(session: SessionDep) -> dict[str, bool]:
        # Not flushed here: the unique violation only surfaces when the route commits.
        session.add(Coalition(name="Europe", slug="europe"))
        return {"ok": True}

    @probe.post("/create")
    async def create(session: SessionDep) -> dict[str, bool]:
        session.add(Coalition(name="Probe coalition", slug="probe-coalition"))
        return {"ok": True}

    @probe.post("/fail")
    async def fail(session: SessionDep) -> dict[str, bool]:
        session.add(Coalition(name="Never stored", slug="never-stored"))
        await session.flush()
        raise RuntimeError("boom: secret internals")

    test_app = FastAPI(lifespan=None)
    test_app.state._state.update(app.state._state)
    test_app.state.sessionmaker = sessionmaker
    test_app.exception_handlers.update(app.exception_handlers)
    test_app.include_router(probe)
    transport = httpx.ASGITransport(app=test_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_a_failed_commit_is_a_5xx_problem_never_a_200(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post("/_probe/duplicate")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "IntegrityError" not in response.text
    assert "INSERT" not in response.text


async def test_the_endpoints_work_is_committed(probe_client: httpx.AsyncClient, db: AsyncSession) -> None:
    response = await probe_client.post("/_probe/create")
    assert response.status_code == 200
    count = await db.scalar(
        select(func.count()).select_from(Coalition).where(Coalition.slug == "probe-coalition")
    )
    assert count == 1


async def test_an_error_rolls_back_and_hides_internals(
    probe_client: httpx.AsyncClient, db: AsyncSession
) -> None:
    response = await probe_client.post("/_probe/fail")
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal-error"
    assert "boom" not in response.text
    assert "Traceback" not in response.text
    count = await db.scalar(
        select(func.count()).select_from(Coalition).where(Coalition.slug == "never-stored")
    )
    assert count == 0


async def test_an_unhandled_database_error_is_logged_without_personal_data(
    app: FastAPI,
    sessionmaker: async_sessionmaker[AsyncSession],
    db: AsyncSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database's message for a unique violation quotes the row's values; the log must not."""
    from services.core.logging import build_formatter
    from tests.factories import make_user

    existing = await make_user(db, email="private.person@example.org")
    probe = make_router(prefix="/_probe")

    @probe.post("/clash")
    async def clash(session: SessionDep) -> dict[str, bool]:
        session.add(
            User(email=existing.email, full_name="Private Person", password_hash="x", role=Role.admin)
        )
        return {"ok": True}

    test_app = FastAPI()
    test_app.state.sessionmaker = sessionmaker
    test_app.state.queue = app.state.queue
    test_app.exception_handlers.update(app.exception_handlers)
    test_app.include_router(probe)
    transport = httpx.ASGITransport(app=test_app, raise_app_exceptions=False)
    with caplog.at_level("INFO"):
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.post("/_probe/clash")
    assert response.status_code == 500
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert errors[0].exc_info is None
    assert "IntegrityError" in getattr(errors[0], "traceback", "")
    assert "23505" in getattr(errors[0], "traceback", "")  # unique_violation, by SQLSTATE only
    for formatter in (build_formatter(json=True), build_formatter(json=False)):
        for record in caplog.records:
            line = formatter.format(record)
            assert "private.person" not in line
            assert "Private Person" not in line
