"""Domain errors. Each has a stable ``code`` (the last part of its problem ``type`` URI), an HTTP status
and a human title; the API turns them into RFC 9457 problem details. Core code raises these and never
knows about HTTP frameworks."""

from __future__ import annotations

from typing import Any, ClassVar


class LoomError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class BadRequest(LoomError):
    status = 400
    code = "bad-request"
    title = "Bad request"


class Unauthenticated(LoomError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"


class InvalidCredentials(Unauthenticated):
    code = "invalid-credentials"
    title = "Invalid credentials"


class InvalidToken(Unauthenticated):
    code = "invalid-token"
    title = "Invalid or expired token"


class Forbidden(LoomError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(LoomError):
    status = 404
    code = "not-found"
    title = "Not found"


class Conflict(LoomError):
    status = 409
    code = "conflict"
    title = "Conflict"


class RateLimited(LoomError):
    status = 429
    code = "rate-limited"
    title = "Too many requests"


class ServiceUnavailable(LoomError):
    status = 503
    code = "service-unavailable"
    title = "Service unavailable"
