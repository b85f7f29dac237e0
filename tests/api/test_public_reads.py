"""Public reads: ``Cache-Control``, strong ``ETag`` and 304s; each process's cache of anonymous answers,
fresh after every kind of write (an API request, the worker's pipeline, plain SQL as a migration or the CLI
would write) in this process and in another one; and nothing confidential served from it.

Two apps with the cache on (as two ``loom serve`` processes), over data that really commits (the cache is
told of writes only at commit), cleaned up after each test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.api.app import create_app
from services.api.publicread import PublicCache, declared_public_read
from services.api.routing import LoomRoute
from services.core.campaigns.models import CampaignStatus, CountPolicy, Petition
from services.core.config import Settings
from services.core.generations import Generations, asyncpg_dsn
from services.core.network.models import MembershipStatus, Organisation
from services.core.signatures import pipeline
from services.core.users.models import User
from tests.factories import (
    auth_headers,
    drop_petition,
    make_organisation,
    make_petition,
    make_signature,
    make_user,
)

MAX_AGE = 60
WAIT = 5.0


@dataclass
class Process:
    app: FastAPI
    http: httpx.AsyncClient

    @property
    def cache(self) -> PublicCache:
        cache: PublicCache = self.app.state.public_cache
        return cache

    @property
    def generations(self) -> Generations:
        generations = self.cache.generations
        assert generations is not None
        return generations


@pytest.fixture
def factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@dataclass
class World:
    organisation: Organisation
    petition: Petition
    draft: Petition
    admin: User


@pytest.fixture
async def world(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[World]:
    async with factory.begin() as session:
        organisation = await make_organisation(session)
        petition = await make_petition(session, count_policy=CountPolicy.all_unique)
        draft = await make_petition(session, campaign_status=CampaignStatus.draft)
        admin = await make_user(session)
    yield World(organisation, petition, draft, admin)
    async with factory.begin() as session:
        for made in (petition, draft):
            await drop_petition(session, made.id)
        await session.execute(text("DELETE FROM users WHERE id = :id"), {"id": admin.id})
        await session.execute(text("DELETE FROM organisations WHERE id = :id"), {"id": organisation.id})


@pytest.fixture
async def processes(
    settings: Settings, database_url: str, redis_url: str, world: World
) -> AsyncIterator[tuple[Process, Process]]:
    """Two apps, each with its own cache and its own connection listening for writes (started after the
    world's data is written)."""
    cached = settings.model_copy(
        update={"public_cache_entries": 1000, "public_max_age": MAX_AGE, "public_cache_poll_seconds": 0.2}
    )
    apps = [create_app(cached, database_url=database_url, redis_url=redis_url) for _ in range(2)]
    async with LifespanManager(apps[0]), LifespanManager(apps[1]):
        made = []
        for app in apps:
            http = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://test"
            )
            made.append(Process(app, http))
            generations = app.state.public_cache.generations
            async with asyncio.timeout(WAIT):
                await generations.wait_live()
        try:
            yield made[0], made[1]
        finally:
            for process in made:
                await process.http.aclose()


async def _bumped(process: Process, domain: str, since: int) -> None:
    """The write was announced to ``process``, and nothing committed earlier is still on its way."""
    async with asyncio.timeout(WAIT):
        await process.generations.wait_for_change(domain, since)
        await process.generations.sync()


# --- headers ----------------------------------------------------------------------------------------------


async def test_a_public_read_is_cacheable_with_a_strong_etag_and_answers_304(
    processes: tuple[Process, Process], world: World
) -> None:
    a, _ = processes
    path = f"/v1/organisations/{world.organisation.slug}"
    first = await a.http.get(path)
    assert first.status_code == 200, first.text
    assert first.headers["cache-control"] == f"public, max-age={MAX_AGE}, stale-while-revalidate=30"
    etag = first.headers["etag"]
    assert etag[0] == etag[-1] == '"'  # strong: the same bytes, always
    assert "Authorization" in first.headers["vary"]
    assert first.headers["x-content-type-options"] == "nosniff"

    for if_none_match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = await a.http.get(path, headers={"If-None-Match": if_none_match})
        assert again.status_code == 304, if_none_match
        assert again.content == b""
        assert again.headers["etag"] == etag
        assert again.headers["cache-control"].startswith("public")
    changed = await a.http.get(path, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200
    assert changed.json() == first.json()


async def test_the_headers_come_without_the_process_cache_too(client: httpx.AsyncClient) -> None:
    """The suite's app runs with the cache off: the answers still say how to cache them."""
    first = await client.get("/v1/network/stats")
    assert first.status_code == 200
    assert first.headers["cache-control"].startswith("public, max-age=")
    again = await client.get("/v1/network/stats", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


async def test_campaign_reads_vary_by_language(processes: tuple[Process, Process], world: World) -> None:
    a, _ = processes
    response = await a.http.get(f"/v1/petitions/{world.petition.slug}")
    assert response.status_code == 200, response.text
    assert response.headers["vary"].startswith("Accept-Language")
    assert response.headers["content-language"] == "en"
    hit = await a.http.get(f"/v1/petitions/{world.petition.slug}")
    assert hit.headers["content-language"] == "en"
    assert hit.headers["content-type"] == "application/json"


async def test_staff_reads_are_private_and_never_kept(
    processes: tuple[Process, Process], world: World, settings: Settings
) -> None:
    a, _ = processes
    staff = auth_headers(settings, world.admin)
    response = await a.http.get(f"/v1/petitions/{world.draft.slug}", headers=staff)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-store"
    assert "etag" not in response.headers
    misses = a.cache.misses
    # ... and a bad credential is still refused, cache or not
    refused = await a.http.get("/v1/organisations", headers={"Authorization": "Bearer nonsense"})
    assert refused.status_code == 401
    assert a.cache.misses == misses


# --- the process cache ------------------------------------------------------------------------------------


async def test_repeated_reads_are_kept_by_normalised_query(
    processes: tuple[Process, Process], world: World
) -> None:
    a, _ = processes
    first = await a.http.get("/v1/organisations?limit=5&offset=0")
    assert first.status_code == 200
    hits = a.cache.hits
    for query in ("offset=0&limit=5", "limit=5&offset=0&_=123"):
        again = await a.http.get(f"/v1/organisations?{query}")
        assert again.content == first.content
    assert a.cache.hits == hits + 2
    # the operation's rules still apply in front of the cache
    refused = await a.http.get("/v1/organisations?limit=5&offset=0&colour=red")
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    bad = await a.http.get("/v1/organisations?limit=0")
    assert bad.status_code == 422
    # a value holding what reads as more parameters is kept apart from those parameters
    searched = await a.http.get("/v1/organisations", params={"q": "a&status=former"})
    assert searched.status_code == 200
    staff_only = await a.http.get("/v1/organisations?q=a&status=former")
    assert staff_only.status_code == 401, staff_only.text
    repeated = await a.http.get("/v1/organisations?limit=5&limit=5")
    assert repeated.status_code == 422


async def test_requests_in_flight_share_one_database_read(
    processes: tuple[Process, Process], world: World
) -> None:
    a, _ = processes
    misses = a.cache.misses
    answers = await asyncio.gather(*(a.http.get("/v1/coalitions") for _ in range(20)))
    assert {r.status_code for r in answers} == {200}
    assert len({r.content for r in answers}) == 1
    assert a.cache.misses == misses + 1


async def test_an_api_write_makes_the_next_read_fresh_in_every_process(
    processes: tuple[Process, Process], world: World, settings: Settings
) -> None:
    a, b = processes
    path = f"/v1/organisations/{world.organisation.slug}"
    for process in (a, b):
        await process.http.get(path)
        kept = await process.http.get(path)
        assert kept.json()["city"] == "Dhaka"
    since_a, since_b = a.generations.tokens["network"], b.generations.tokens["network"]
    changed = await a.http.patch(
        path, json={"city": "Chittagong"}, headers=auth_headers(settings, world.admin)
    )
    assert changed.status_code == 200, changed.text
    await _bumped(a, "network", since_a)
    await _bumped(b, "network", since_b)
    for process in (a, b):
        assert (await process.http.get(path)).json()["city"] == "Chittagong"


async def test_a_write_outside_the_api_makes_the_next_read_fresh(
    processes: tuple[Process, Process], world: World, database_url: str
) -> None:
    """A migration, the CLI or psql: any SQL that commits."""
    _, b = processes
    path = f"/v1/organisations/{world.organisation.slug}"
    await b.http.get(path)
    since = b.generations.tokens["network"]
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute(
            "UPDATE organisations SET city = 'Gazipur' WHERE id = $1", world.organisation.id
        )
    finally:
        await connection.close()
    await _bumped(b, "network", since)
    assert (await b.http.get(path)).json()["city"] == "Gazipur"


async def test_the_workers_counting_makes_the_statistics_fresh(
    processes: tuple[Process, Process], world: World, factory: async_sessionmaker[AsyncSession]
) -> None:
    _, b = processes
    path = f"/v1/petitions/{world.petition.slug}/stats"
    async with factory.begin() as session:
        await make_signature(session, world.petition)  # state 'new': not counted yet
    before = await b.http.get(path)
    assert before.status_code == 200, before.text
    assert before.json()["count"] == 0
    assert (await b.http.get(path)).json()["count"] == 0
    since = b.generations.tokens["signatures"]
    async with factory.begin() as session:  # the worker's pipeline, in a transaction of its own
        await pipeline.process_batch(session, limit=100)
    await _bumped(b, "signatures", since)
    assert (await b.http.get(path)).json()["count"] == 1


async def test_a_registry_write_makes_company_reads_fresh_in_every_process(
    processes: tuple[Process, Process],
    world: World,
    settings: Settings,
    factory: async_sessionmaker[AsyncSession],
) -> None:
    a, b = processes
    staff = auth_headers(settings, world.admin)
    made = await a.http.post(
        "/v1/companies", json={"name": f"Brand {world.organisation.slug}"}, headers=staff
    )
    assert made.status_code == 201, made.text
    company = made.json()
    try:
        path = f"/v1/companies/{company['slug']}"
        for _ in range(2):
            assert (await b.http.get(path)).json()["website"] is None
        since = b.generations.tokens["registry"]
        changed = await a.http.patch(path, json={"website": "https://brand.example.org"}, headers=staff)
        assert changed.status_code == 200, changed.text
        await _bumped(b, "registry", since)
        assert (await b.http.get(path)).json()["website"] == "https://brand.example.org/"
    finally:
        async with factory.begin() as session:
            await session.execute(
                text("DELETE FROM registry_field_sources WHERE record_id = :id"), {"id": company["id"]}
            )
            await session.execute(text("DELETE FROM companies WHERE id = :id"), {"id": company["id"]})


async def test_a_write_rolled_back_leaves_the_answers_right(
    processes: tuple[Process, Process], world: World, factory: async_sessionmaker[AsyncSession]
) -> None:
    _, b = processes
    path = f"/v1/organisations/{world.organisation.slug}"
    await b.http.get(path)
    async with factory() as session:
        await session.execute(
            text("UPDATE organisations SET city = 'Nowhere' WHERE id = :id"), {"id": world.organisation.id}
        )
        await session.rollback()
    assert (await b.http.get(path)).json()["city"] == "Dhaka"


async def test_without_its_listening_connection_a_process_keeps_nothing(
    processes: tuple[Process, Process], world: World
) -> None:
    a, _ = processes
    await a.http.get("/v1/network/stats")
    a.generations._lost(None)  # what the connection's end does
    hits, misses = a.cache.hits, a.cache.misses
    for _ in range(2):
        assert (await a.http.get("/v1/network/stats")).status_code == 200
    assert (a.cache.hits, a.cache.misses) == (hits, misses)  # not even looked up


# --- confidential data ------------------------------------------------------------------------------------


async def test_drafts_never_reach_anonymous_callers_through_the_cache(
    processes: tuple[Process, Process], world: World, settings: Settings
) -> None:
    a, b = processes
    staff = auth_headers(settings, world.admin)
    draft = f"/v1/petitions/{world.draft.slug}"
    seen_by_staff = await a.http.get("/v1/petitions?limit=100", headers=staff)
    assert world.draft.slug in {p["slug"] for p in seen_by_staff.json()["items"]}
    assert (await a.http.get(draft, headers=staff)).status_code == 200
    for _ in range(2):
        listed = await a.http.get("/v1/petitions?limit=100")
        assert world.draft.slug not in {p["slug"] for p in listed.json()["items"]}
        assert (await a.http.get(draft)).status_code == 404

    # a published campaign archived: gone for the public in every process at once
    campaign = f"/v1/campaigns/{world.petition.campaign_id}"
    published = f"/v1/petitions/{world.petition.slug}"
    for process in (a, b):
        assert (await process.http.get(published)).status_code == 200
        assert (await process.http.get(campaign)).status_code == 200
    since = b.generations.tokens["campaigns"]
    closed = await a.http.post(f"{campaign}/close", headers=staff)
    assert closed.status_code == 200, closed.text
    archived = await a.http.post(f"{campaign}/archive", headers=staff)
    assert archived.status_code == 200, archived.text
    await _bumped(b, "campaigns", since)
    for process in (a, b):
        assert (await process.http.get(published)).status_code == 404
        assert (await process.http.get(campaign)).status_code == 404
        assert (await process.http.get(f"{published}/stats")).status_code == 404


async def test_a_suspended_organisation_leaves_the_public_directory_at_once(
    processes: tuple[Process, Process], world: World, settings: Settings
) -> None:
    a, b = processes
    path = f"/v1/organisations/{world.organisation.slug}"
    listed = f"/v1/organisations?q={world.organisation.slug[4:]}"
    for process in (a, b):
        assert (await process.http.get(path)).status_code == 200
        assert len((await process.http.get(listed)).json()["items"]) == 1
    since = b.generations.tokens["network"]
    changed = await a.http.patch(
        path, json={"status": MembershipStatus.suspended.value}, headers=auth_headers(settings, world.admin)
    )
    assert changed.status_code == 200, changed.text
    await _bumped(b, "network", since)
    for process in (a, b):
        assert (await process.http.get(path)).status_code == 404
        assert (await process.http.get(listed)).json()["items"] == []


def test_every_public_read_names_its_domains(app: FastAPI) -> None:
    """The routes the cache serves, so a new public read is added here on purpose."""
    marked = {
        context.original_route.path
        for route in app.routes
        for context in getattr(route, "effective_route_contexts", list)()
        if isinstance(context.original_route, LoomRoute)
        and declared_public_read(context.original_route.dependant) is not None
    }
    assert marked == {
        "/v1/organisations",
        "/v1/organisations/{ref}",
        "/v1/coalitions",
        "/v1/coalitions/{ref}",
        "/v1/coalitions/{ref}/members",
        "/v1/network/stats",
        "/v1/campaigns",
        "/v1/campaigns/{ref}",
        "/v1/petitions",
        "/v1/petitions/{ref}",
        "/v1/petitions/{petition}/stats",
        "/v1/companies",
        "/v1/companies/{ref}",
        "/v1/facilities",
        "/v1/facilities/{ref}",
    }


def test_the_openapi_documents_the_caching_of_each_public_read(app: FastAPI) -> None:
    schema = app.openapi()
    for path in ("/v1/organisations", "/v1/petitions/{ref}", "/v1/petitions/{petition}/stats"):
        operation = schema["paths"][path]["get"]
        assert "304" in operation["responses"], path
        assert {"ETag", "Cache-Control"} <= set(operation["responses"]["200"]["headers"]), path
        assert "If-None-Match" in {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert "304" not in schema["paths"]["/v1/users"]["get"]["responses"]


async def test_metrics_show_the_cache(processes: tuple[Process, Process], world: World) -> None:
    a, _ = processes
    await a.http.get("/v1/coalitions")
    await a.http.get("/v1/coalitions")
    text_ = (await a.http.get("/metrics")).text
    assert 'loom_public_cache{what="live"} 1.0' in text_
    assert f'loom_public_cache{{what="hits"}} {float(a.cache.hits)}' in text_


async def test_the_listening_connection_goes_where_it_is_told(
    settings: Settings, database_url: str, redis_url: str
) -> None:
    """``LOOM_PUBLIC_CACHE_LISTEN_URL`` (PgBouncer in transaction mode cannot LISTEN): here a database that
    does not exist, so the cache stays off while the app answers from its own database."""
    elsewhere = database_url.rsplit("/", 1)[0] + "/loom_no_such_database"
    app = create_app(
        settings.model_copy(update={"public_cache_entries": 100, "public_cache_listen_url": elsewhere}),
        database_url=database_url,
        redis_url=redis_url,
    )
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            await asyncio.sleep(0.5)
            for _ in range(2):
                response = await http.get("/v1/network/stats")
                assert response.status_code == 200
                assert response.headers["cache-control"].startswith("public")
        assert not app.state.public_cache.on
        assert app.state.public_cache.hits == 0
