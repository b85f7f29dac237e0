"""One limit on the size of request bodies, for every route: 413 ``payload-too-large`` from
``Content-Length`` before the body is read, or as soon as a chunked body passes the limit.

``LOOM_MAX_BODY_BYTES`` by default; an upload route declares more with ``openapi_extra=body_allowance(n)``
(shown as ``x-max-body-bytes``). Why not Starlette's: docs/security.md, "Request bodies and parameters".
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOWANCE = "x-max-body-bytes"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than the {limit:,} bytes this endpoint accepts.")


def body_allowance(max_bytes: int) -> dict[str, Any]:
    """``openapi_extra`` for a route that accepts bodies of up to ``max_bytes`` (uploads)."""
    return {ALLOWANCE: max_bytes}


def body_limit(scope: Scope, default: int) -> int:
    """The largest body the route matched for ``scope`` accepts."""
    extra = getattr(scope.get("route"), "openapi_extra", None) or {}
    allowance = extra.get(ALLOWANCE)
    return allowance if isinstance(allowance, int) else default


def _declared_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length", "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            limit = body_limit(scope, self.max_bytes)
            if declared is not None and declared > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)
