"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.api.middleware import REQUEST_ID_HEADER, route_template
from services.api.routing import AllowedMethods, BodyInvalid
from services.core.errors import LoomError
from services.core.logging import scrubbed_traceback

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://loom.cleanclothes.invalid/problems/"


def problem_type(code: str) -> str:
    return PROBLEM_BASE + code


class InvalidParam(BaseModel):
    """One invalid field of a request (RFC 9457 §3.2 extension member ``errors``)."""

    loc: list[str | int] = Field(description="Where the value is: body, query, path, header …")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI identifying the kind of problem; stable per error.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    code: str = Field(description="The last part of `type`, convenient for clients to switch on.")
    errors: list[InvalidParam] | None = None


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return ProblemResponse(body, status_code=status, headers=headers)


_HTTP_CODES = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
    503: "service-unavailable",
}


async def _loom_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, LoomError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    retry_after = exc.extra.pop("retry_after", None)
    if retry_after is not None:
        headers = {"Retry-After": str(int(retry_after))}
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        headers=headers,
        **exc.extra,
    )


def _message(error: Mapping[str, Any]) -> str:
    msg = str(error.get("msg", ""))
    if error.get("type") == "json_invalid":  # say why: not UTF-8, too deep, a NUL, or where the syntax fails
        reason = (error.get("ctx") or {}).get("error")
        return f"{msg}: {reason}" if reason else msg
    return msg


async def _validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError | BodyInvalid)
    errors = [
        {
            "loc": [str(p) if not isinstance(p, int) else p for p in err.get("loc", ())],
            "msg": _message(err),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    return problem_response(
        request,
        status=422,
        code="validation-error",
        title="Request validation failed",
        detail="One or more fields are invalid; see `errors`.",
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _HTTP_CODES.get(status, "http-error")
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    headers = exc.headers
    allowed = getattr(request.app.state, "allowed_methods", None)
    if status == 405 and isinstance(allowed, AllowedMethods):
        # Every method the path takes, not only those of the route Starlette happened to try first.
        headers = {**(headers or {}), "Allow": allowed.header(get_route_path(request.scope))}
    return problem_response(request, status=status, code=code, title=title, detail=detail, headers=headers)


async def _unhandled_error(request: Request, exc: Exception) -> ProblemResponse:
    # The route template, not the path: paths can hold tokens. This response is made outside the
    # request-id middleware, so the id is added here.
    # No exc_info: the exception's message may quote personal data (e.g. SQL parameters).
    log.error(
        "unhandled error: %s",
        type(exc).__name__,
        extra={"route": route_template(request.scope), "traceback": scrubbed_traceback(exc)},
    )
    request_id = correlation_id.get()
    return problem_response(
        request,
        status=500,
        code="internal-error",
        title="Internal server error",
        detail="The server could not complete the request. It has been logged.",
        headers={REQUEST_ID_HEADER: request_id} if request_id else None,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LoomError, _loom_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(BodyInvalid, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled_error)


def problem_responses(*errors: type[LoomError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for an endpoint's domain errors (grouped by status)."""
    by_status: dict[int, list[type[LoomError]]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).append(error)
    return {
        status: {
            "model": Problem,
            "description": "; ".join(f"`{e.code}`: {e.title}" for e in group),
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
        for status, group in sorted(by_status.items())
    }
