"""One limit on the size of request bodies, for every route: 413 ``payload-too-large`` from
``Content-Length`` before the body is read, or as soon as a chunked body passes the limit.

Applied by the edge layer (``services.api.middleware.Edge``). ``LOOM_MAX_BODY_BYTES`` by default; an
upload route declares more with ``openapi_extra=body_allowance(n)`` (shown as ``x-max-body-bytes``).
Why not Starlette's: docs/security.md, "Request bodies and parameters".
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import Scope

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


def declared_length(value: bytes) -> int | None:
    """A ``Content-Length`` header's value, if it is a number."""
    value = value.strip()
    return int(value) if value.isdigit() else None
