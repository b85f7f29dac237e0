"""Security headers, set in one place: the outermost ASGI layer (``services.api.middleware.Edge``), so
every response has them (errors, 404s, 405s and 500s included).

``nosniff`` and HSTS (``https:`` public URL) everywhere; a route's own headers (``dependencies=[NoStore]``,
:func:`html_page`) on every answer of that route. docs/security.md, "Security headers".
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import Depends
from fastapi.dependencies.models import Dependant

HSTS = "max-age=31536000; includeSubDomains"


class ResponseHeaders:
    """A route dependency that only declares headers for all the route's answers (it does nothing when
    called)."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = dict(headers)

    async def __call__(self) -> None:
        return None


# Pragma too: RFC 6749 §5.1 asks for both on answers holding tokens or credentials.
NoStore = Depends(ResponseHeaders({"Cache-Control": "no-store", "Pragma": "no-cache"}))
"""For routes whose answers carry personal data (names, emails, postal codes) or credentials."""


def html_page(*, styles: Iterable[str] = (), inline_styles: bool = False, images: bool = False) -> Any:
    """The headers of an HTML page the API serves (its URL may hold a token): nothing but the page's own
    ``<style>`` elements (by hash; any inline style with ``inline_styles``, as mail HTML needs) and, with
    ``images``, https images loads — never a script; its forms post only to this origin; no site may frame
    it (clickjacking); no link from it reveals its URL; nothing keeps a copy."""
    hashes = [
        f"'sha256-{base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()}'" for style in styles
    ]
    sources = " ".join(hashes + (["'unsafe-inline'"] if inline_styles else [])) or "'none'"
    policy = "; ".join(
        [
            "default-src 'none'",
            f"style-src {sources}",
            *(["img-src https: data:"] if images else []),
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )
    return Depends(
        ResponseHeaders(
            {
                "Content-Security-Policy": policy,
                "X-Frame-Options": "DENY",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-store",
            }
        )
    )


def declared_headers(dependant: Dependant) -> dict[str, str]:
    """The headers the ``ResponseHeaders`` among a route's dependencies (at any depth) declare."""
    headers: dict[str, str] = {}
    for dependency in dependant.dependencies:
        headers.update(declared_headers(dependency))
        if isinstance(dependency.call, ResponseHeaders):
            headers.update(dependency.call.headers)
    return headers


def security_headers(*, hsts: bool) -> dict[str, str]:
    """The headers every HTTP response has (set by the edge layer, ``services.api.middleware.Edge``)."""
    return {"X-Content-Type-Options": "nosniff"} | ({"Strict-Transport-Security": HSTS} if hsts else {})
