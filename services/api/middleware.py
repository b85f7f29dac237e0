"""Request ids, one access-log line and request metrics per HTTP request.

A safe incoming ``X-Request-ID`` is kept, else one is made; it is on every response and log record. The
``loom.access`` line has method, route template, status and duration — never query strings, bodies or
headers. docs/security.md, "Logs".
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.ops.metrics import Metrics

access_log = logging.getLogger("loom.access")

REQUEST_ID_HEADER = "X-Request-ID"
UNMATCHED_ROUTE = "<unmatched>"
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})

_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def valid_request_id(value: str) -> bool:
    return _REQUEST_ID.fullmatch(value) is not None


def route_template(scope: Scope) -> str:
    """The path template of the route that handled the request (``/v1/organisations/{id}``), or
    ``<unmatched>``: a bounded set of values, safe for logs and metric labels."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class AccessMiddleware:
    """Logs one line and records metrics per HTTP request. Sits inside the request-id middleware."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: int | None = None

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            self.metrics.in_progress.dec()
            seconds = time.perf_counter() - start
            # No response started: the app raised, and the error middleware outside answers 500.
            final = status if status is not None else 500
            self._record(scope, final, seconds)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        method = str(scope.get("method", ""))
        route = route_template(scope)
        self.metrics.observe(method, route, status, seconds)
        quiet = route in QUIET_ROUTES and status < 400
        duration_ms = round(seconds * 1000, 2)
        extra: dict[str, Any] = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
        }
        access_log.log(
            logging.DEBUG if quiet else logging.INFO,
            "%s %s %s %.1fms",
            method,
            route,
            status,
            duration_ms,
            extra=extra,
        )


def install_middleware(app: FastAPI) -> None:
    """Add request ids, access logging and request metrics to ``app`` (call after other middleware, so
    these wrap it). The app's metrics are at ``app.state.metrics``."""
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(AccessMiddleware, metrics=metrics)
    app.add_middleware(
        CorrelationIdMiddleware,
        header_name=REQUEST_ID_HEADER,
        validator=valid_request_id,
    )
