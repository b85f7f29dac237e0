"""The edge of the app: ONE outermost ASGI layer doing in a single pass what every request needs — its
request id (a safe incoming ``X-Request-ID`` is kept), its size limit (413, ``bodylimit``), the security
headers (``headers``), one ``loom.access`` line (method, route template, status, duration — never query
strings, bodies or headers) and its metrics. One layer, not four: each costs a call, a closure and a
wrapped ``send`` per request (docs/architecture.md, "Hot paths"; docs/security.md, "Logs").
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any

from asgi_correlation_id import correlation_id
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.bodylimit import BodyTooLarge, body_limit, declared_length
from services.api.headers import security_headers
from services.api.ops.metrics import Metrics

access_log = logging.getLogger("loom.access")
request_log = logging.getLogger(__name__)

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


class Edge:
    """Request id, body limit, security headers, access log and metrics for every HTTP request (see the
    module's docstring). Outermost, so even the 500 answer to an unhandled error (made by Starlette's
    error middleware, inside) has its request id and headers and is logged and counted."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int, hsts: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.always = security_headers(hsts=hsts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        given: str | None = None
        declared: int | None = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
            elif name == b"content-length":
                declared = declared_length(value)
        if given and valid_request_id(given):
            request_id = given
        else:
            request_id = os.urandom(16).hex()  # 32 hex digits, as a uuid4's hex (minus the object)
            if given:
                request_log.warning("Generated new request ID (%s): the given one is not valid", request_id)
            MutableHeaders(scope=scope)[REQUEST_ID_HEADER] = request_id  # what the app reads is the id
        correlation_id.set(request_id)
        status: int | None = None
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            limit = body_limit(scope, self.max_body_bytes)
            if declared is not None and declared > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = MutableHeaders(scope=message)
                # The route is in the scope once routing found it (404s have none).
                route_headers: Mapping[str, str] = getattr(scope.get("route"), "response_headers", None) or {}
                for name, value in (*route_headers.items(), *self.always.items()):
                    headers[name] = value
                headers[REQUEST_ID_HEADER] = request_id
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, limited_receive, send_with_headers)
        finally:
            self.metrics.in_progress.dec()
            seconds = time.perf_counter() - start
            # No response started: the app raised and nothing answered (the client went away).
            self._record(scope, status if status is not None else 500, seconds)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        method = str(scope.get("method", ""))
        route = route_template(scope)
        self.metrics.observe(method, route, status, seconds)
        quiet = route in QUIET_ROUTES and status < 400
        level = logging.DEBUG if quiet else logging.INFO
        if not access_log.isEnabledFor(level):
            return
        duration_ms = round(seconds * 1000, 2)
        extra: dict[str, Any] = {
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
        }
        access_log.log(level, "%s %s %s %.1fms", method, route, status, duration_ms, extra=extra)
