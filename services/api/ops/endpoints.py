"""Endpoints: ops — liveness, readiness and Prometheus metrics (no ``/v1`` prefix, no authentication).

``/healthz`` does no I/O; ``/readyz`` checks PostgreSQL, Redis and the migration head, each under a short
timeout; ``/metrics`` reads its gauges at scrape time (a failed read never fails the scrape) and needs
``LOOM_METRICS_TOKEN`` when set. README, "Operations".
"""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from services.api.deps import SettingsDep
from services.api.ops import checks
from services.api.ops.checks import CheckResult
from services.api.ops.metrics import Metrics
from services.api.problems import problem_responses
from services.api.routing import router as make_router
from services.core.errors import ServiceUnavailable, Unauthenticated

router = make_router(tags=["ops"])

NO_STORE = {"Cache-Control": "no-store"}


class NotReady(ServiceUnavailable):
    code = "not-ready"
    title = "Not ready"


class MetricsTokenInvalid(Unauthenticated):
    code = "metrics-token-invalid"
    title = "The metrics need the metrics token"


_metrics_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsToken",
    description="`LOOM_METRICS_TOKEN`, when it is set.",
)


async def metrics_access(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_metrics_bearer)],
) -> None:
    """Open unless ``LOOM_METRICS_TOKEN`` is set; then only that bearer token (compared in constant time)."""
    expected = settings.metrics_token
    if expected is None:
        return
    sent = credentials.credentials if credentials else ""
    if not hmac.compare_digest(sent.encode(), expected.get_secret_value().encode()):
        raise MetricsTokenInvalid("Send Authorization: Bearer <LOOM_METRICS_TOKEN>.")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ReadinessChecks(BaseModel):
    database: CheckResult = Field(description="PostgreSQL answers a query.")
    migrations: CheckResult = Field(description="The database is at the code's migration head.")
    redis: CheckResult = Field(description="Redis (the job queue) answers a ping.")


class Readiness(BaseModel):
    status: Literal["ok"] = "ok"
    checks: ReadinessChecks


@router.get("/healthz", summary="Liveness: the process is up", response_model=Health)
async def healthz(response: Response) -> Health:
    """Always 200 while the process serves HTTP. Touches neither the database nor Redis."""
    response.headers.update(NO_STORE)
    return Health()


@router.get(
    "/readyz",
    summary="Readiness: database, migrations and Redis",
    response_model=Readiness,
    responses=problem_responses(NotReady),
)
async def readyz(request: Request, response: Response) -> Readiness:
    """200 when PostgreSQL and Redis answer and migrations are at head; otherwise a 503 problem
    (`not-ready`) whose `checks` member says which check failed (`failed`, `timeout`, `behind`,
    `skipped`). Each check gives up after a couple of seconds, so this never hangs."""
    result = await checks.readiness(request.app.state)
    if not result.ready:
        failing = ", ".join(f"{name} ({value})" for name, value in result.as_dict().items() if value != "ok")
        raise NotReady(f"Not ready: {failing}.", checks=result.as_dict())
    response.headers.update(NO_STORE)
    return Readiness(checks=ReadinessChecks(**result.as_dict()))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "The Prometheus text exposition (OpenMetrics when asked for in `Accept`).",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **problem_responses(MetricsTokenInvalid),
    },
    dependencies=[Depends(metrics_access)],
)
async def metrics(request: Request) -> Response:
    """Request counts and latencies by route template, method and status; outbox backlog; queue depth.
    The gauges are read now; when a source cannot be read its gauge is NaN and
    `loom_metrics_read_ok{source=…}` is 0. With `LOOM_METRICS_TOKEN` set, send it as a bearer token
    (else 401 `metrics-token-invalid`)."""
    registry: Metrics = request.app.state.metrics
    await registry.refresh(request.app.state)
    body, content_type = registry.render(request.headers.get("accept"))
    return Response(body, media_type=content_type, headers=NO_STORE)
