"""The FastAPI application factory: ``services.api.app:app`` for uvicorn, ``create_app`` for tests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.telemetry import TelemetryConfig
from redis.asyncio import Redis
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from services.api import problems
from services.api.auth.endpoints import router as auth_router
from services.api.bodylimit import ALLOWANCE
from services.api.campaigns.endpoints import router as campaigns_router
from services.api.integrations.endpoints import router as integrations_router
from services.api.mail.endpoints import router as mail_router
from services.api.mail.pages import router as mail_pages_router
from services.api.middleware import REQUEST_ID_HEADER, Edge
from services.api.network.endpoints import router as network_router
from services.api.ops.endpoints import router as ops_router
from services.api.ops.metrics import Metrics
from services.api.publicread import PublicCache, declared_public_read
from services.api.registry.disclosures import router as disclosures_router
from services.api.registry.endpoints import router as registry_router
from services.api.routing import AllowedMethods, HotRoutes
from services.api.signatures.endpoints import router as signatures_router
from services.api.signatures.imports import router as signature_imports_router
from services.api.signatures.privacy import router as privacy_router
from services.api.signatures.review import router as signature_reviews_router
from services.api.signatures.staff import router as signatures_staff_router
from services.api.signatures.webhooks import router as webhooks_router
from services.api.updates.endpoints import router as updates_router
from services.api.users.endpoints import router as users_router
from services.api.webhook_endpoints.endpoints import router as webhook_endpoints_router
from services.core import jsonbody
from services.core.addresses import database_address, redis_address
from services.core.config import Settings, get_settings
from services.core.db.engine import create_driver_pool, create_engine, create_sessionmaker
from services.core.generations import Generations
from services.core.jobs import JobQueue
from services.core.logging import configure_logging
from services.core.signatures.counts import CountMemo
from services.core.signatures.signing import SigningLimits
from services.core.users.ratelimit import RateLimiter

log = logging.getLogger(__name__)

API_DESCRIPTION = """
Loom stores the network's campaigns, petitions and signatures, pledges and worker cases.

Errors are [RFC 9457](https://www.rfc-editor.org/rfc/rfc9457) problem details
(`application/problem+json`) with a stable `type` and `code` per kind of error.

Staff authenticate with `POST /v1/auth/token` (OAuth2 password flow) and send
`Authorization: Bearer <token>`; machine clients send `X-API-Key`.

Query parameters an operation does not declare are refused (422), except `_`, a cache-buster. A method a
path does not take is a 405 whose `Allow` lists those it does.
"""

TAGS = [
    {"name": "auth", "description": "Tokens and the current user."},
    {"name": "users", "description": "Staff users (admins only)."},
    {"name": "api-keys", "description": "API keys for machine clients (admins only)."},
    {"name": "organisations", "description": "The network's member organisations."},
    {"name": "coalitions", "description": "Regional and custom coalitions of organisations."},
    {"name": "network", "description": "Figures about the network."},
    {
        "name": "campaigns",
        "description": "Campaigns: texts per language, demands, targets, partner organisations and "
        "their lifecycle (draft, published, closed, archived).",
    },
    {
        "name": "petitions",
        "description": "Petitions of campaigns: goal, consent text and its versions, count policy and "
        "signing window.",
    },
    {
        "name": "companies",
        "description": "The registry's companies: brands, retailers, manufacturer groups and agents, "
        "their groups (a group owns brands) and identifiers (LEI, WikiRate, Open Supply Hub).",
    },
    {
        "name": "facilities",
        "description": "The registry's production and processing sites, with Open Supply Hub's OS ID and "
        "where each value came from.",
    },
    {
        "name": "integrations",
        "description": "Integrators delivering signatures by Standard Webhooks: their petition, partner "
        "organisation and signing secret (admins only).",
    },
    {
        "name": "signatures",
        "description": "Signing a petition, confirming by double opt-in, public counts and statistics, and "
        "the review queue of possible duplicates.",
    },
    {
        "name": "privacy",
        "description": "Erasing and exporting a signer's personal data, by email (admins only).",
    },
    {
        "name": "webhooks",
        "description": "Signatures delivered by integrations (native batches or Action Network), signed "
        "by Standard Webhooks.",
    },
    {
        "name": "campaign-updates",
        "description": "News to a campaign's confirmed, opted-in signers: compose per language, test, send "
        "in batches, follow the progress.",
    },
    {
        "name": "email",
        "description": "Email templates (staff preview) and one-click unsubscribe (RFC 8058).",
    },
    {"name": "ops", "description": "Health, readiness and metrics."},
]


# The public hot paths, dispatched ahead of the router (services.api.routing.HotRoutes).
HOT_ROUTES = (
    ("POST", "/v1/petitions/{petition}/signatures"),
    ("GET", "/v1/petitions/{petition}/count"),
)


def public_reads(router: APIRouter) -> list[tuple[str, str]]:
    """Every cacheable public read is hot too: a kept answer should not wait for the path to be matched
    against every route of the app (the petition reads sit behind ~40 of them)."""
    return [
        ("GET", route.path_format)
        for route in (context.original_route for context in iter_route_contexts(router.routes))
        if isinstance(route, APIRoute)
        and "GET" in (route.methods or ())
        and declared_public_read(route.dependant)
    ]


TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


class LoomAPI(FastAPI):
    """FastAPI with one edge layer outside everything else — request id, body limit, security headers,
    access log and metrics (``services.api.middleware.Edge``), so that even the 500 answer to an unhandled
    error (made by Starlette's outermost middleware) has them — and the hot routes dispatched in front of
    the router, inside the exception handlers (problem details)."""

    def build_middleware_stack(self) -> ASGIApp:
        settings: Settings = self.state.settings
        stack = super().build_middleware_stack()
        layer: Any = stack
        while getattr(layer, "app", None) is not self.router:  # the innermost middleware: the router's
            layer = layer.app
        layer.app = HotRoutes(self.router, [*HOT_ROUTES, *public_reads(self.router)])
        return Edge(
            stack,
            metrics=self.state.metrics,
            max_body_bytes=settings.max_body_bytes,
            hsts=settings.public_url.startswith("https://"),
        )


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}".replace("_", "-") if route.tags else route.name


def create_app(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings)  # here too, so every uvicorn worker process has it
        db_url = database_url or settings.database_url
        r_url = redis_url or settings.redis_url
        if db_url is None or r_url is None:  # development: the embedded servers (not in production)
            from services.core.embedded import resolve_urls

            resolved_db, resolved_redis = resolve_urls(settings)
            db_url = db_url or resolved_db
            r_url = r_url or resolved_redis
        log.info("API using PostgreSQL at %s and Redis at %s", database_address(db_url), redis_address(r_url))
        engine = create_engine(settings, db_url)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.queue = JobQueue.lazy(r_url)
        app.state.login_limiter = RateLimiter.from_url(r_url, settings.login_rate_limit, namespace="login")
        # Public signing: a plain asyncpg pool of its own (autocommit: one statement, one round trip).
        signing_pool = await create_driver_pool(settings, db_url, application_name="loom-signing")
        app.state.signing_connect = signing_pool.acquire
        app.state.signing_limits = SigningLimits.from_settings(settings, r_url)
        app.state.cache = Redis.from_url(r_url, socket_connect_timeout=1, socket_timeout=1)
        app.state.count_memo = CountMemo(ttl=settings.count_memo_seconds)
        generations = Generations(
            settings.public_cache_listen_url or db_url, poll_seconds=settings.public_cache_poll_seconds
        )
        app.state.public_cache = PublicCache(settings, generations)
        if settings.public_cache_entries > 0:
            await generations.start()
        try:
            yield
        finally:
            await generations.close()
            await app.state.cache.aclose()
            await app.state.signing_limits.close()
            await signing_pool.close()
            await app.state.login_limiter.close()
            await app.state.queue.close()
            await engine.dispose()

    app = LoomAPI(
        title="Loom API",
        version="0.1.0",
        description=API_DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        telemetry=None if settings.opentelemetry else TELEMETRY_OFF,
    )
    app.state.settings = settings
    app.state.public_cache = PublicCache(settings, None)  # headers only until the lifespan starts
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[REQUEST_ID_HEADER],
        )
    app.state.metrics = Metrics()  # counted by the edge layer, served by GET /metrics
    if settings.trusted_proxies:
        # Outside the other middleware: the client address every part of the app sees
        # (services.api.deps.client_address).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    problems.install_problem_handlers(app)
    app.include_router(ops_router)
    app.include_router(auth_router)
    app.include_router(users_router)
    app.include_router(network_router)
    app.include_router(campaigns_router)
    app.include_router(registry_router)
    app.include_router(disclosures_router)
    app.include_router(integrations_router)
    app.include_router(signatures_router)
    app.include_router(signature_reviews_router)
    app.include_router(privacy_router)
    app.include_router(signatures_staff_router)
    app.include_router(webhooks_router)
    app.include_router(signature_imports_router)
    app.include_router(webhook_endpoints_router)
    app.include_router(updates_router)
    app.include_router(mail_router)
    app.include_router(mail_pages_router)
    app.state.allowed_methods = AllowedMethods(app.routes)  # for 405s' Allow

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            app.openapi_schema = _problems_in_openapi(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


VALIDATION = "Validation error: see `errors`."


def _problems_in_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Every 4xx/5xx response is ``application/problem+json`` with the ``Problem`` schema, including
    FastAPI's automatic 422."""
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if "Problem" not in components:
        components["Problem"] = problems.Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        defs = components["Problem"].pop("$defs", {})
        components.update(defs)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            if "requestBody" in operation:
                _body_errors_in_openapi(operation)
            for status, response in operation.get("responses", {}).items():
                if str(status)[:1] not in {"4", "5"}:
                    continue
                response["content"] = {problems.PROBLEM_MEDIA_TYPE: {"schema": problem_ref}}
                if str(status) == "422" and not response.get("description", "").startswith(VALIDATION):
                    declared = response.get("description", "")  # an endpoint's own 422 problems
                    response["description"] = VALIDATION + (f" {declared}" if declared[:1] == "`" else "")
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema


def _body_errors_in_openapi(operation: dict[str, Any]) -> None:
    """What every operation with a body may answer, whatever its endpoint: 413 past the body size limit,
    422 for a body that is not UTF-8, not JSON, nested too deeply or holding NUL characters (routing.py)."""
    responses = operation.setdefault("responses", {})
    allowance = operation.get(ALLOWANCE)
    limit = f"{allowance:,} bytes" if allowance else "`LOOM_MAX_BODY_BYTES`, 1 MiB by default"
    too_large = f"`payload-too-large`: the body is larger than this operation accepts ({limit})"
    responses["413"] = {"description": too_large}
    unprocessable = responses.setdefault("422", {"description": ""})
    declared = unprocessable.get("description", "")
    # The signature webhook parses its raw body itself and answers `webhook-payload-invalid` instead.
    if (
        "application/json" in operation["requestBody"].get("content", {})
        and "payload-invalid" not in declared
    ):
        unprocessable["description"] = (
            f"{VALIDATION} A body that is not UTF-8, not JSON or nested deeper than {jsonbody.MAX_DEPTH} "
            "levels is a `json_invalid` error; a NUL character in any string, a `string_nul` error."
            + (f" {declared}" if declared[:1] == "`" else "")
        )


app = create_app()
