"""One commit point per request, and the request rules every route shares.

``LoomRoute`` commits the request's session after the endpoint returns and before the response is sent
(a failed commit is a 5xx problem, never a 200), then publishes the outbox jobs; it refuses NUL characters
in parameters and bodies, reads JSON with :mod:`services.core.jsonbody`, checks query strings against the
operation and answers 405 for other methods. Why: docs/architecture.md, docs/security.md.
"""

from __future__ import annotations

import functools
import logging
import re
import types
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Union, get_args, get_origin

from fastapi import APIRouter, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from services.api.deps import request_session
from services.api.headers import declared_headers
from services.api.publicread import (
    NOT_MODIFIED,
    Ask,
    PublicCache,
    declared_public_read,
    openapi_extra,
    private,
)
from services.core import jsonbody, outbox
from services.core.jobs import JobQueue

log = logging.getLogger(__name__)

# Ignored wherever it appears: the usual name of a cache-busting parameter (jQuery's ``cache: false``).
CACHE_BUSTER = "_"


NUL_MESSAGE = "must not contain NUL characters"


def _nul_error(loc: tuple[str | int, ...]) -> dict[str, Any]:
    return {"type": "string_nul", "loc": loc, "msg": NUL_MESSAGE}


class BodyInvalid(HTTPException):
    """A body field no endpoint can take (a NUL character): a 422 ``validation-error`` problem naming the
    field. An ``HTTPException``, since FastAPI turns other errors of body parsing into an undocumented 400."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(422)
        self._errors = errors

    def errors(self) -> list[dict[str, Any]]:
        return self._errors


class LoomRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = jsonbody.loads(await self.body(), allow_nul=False)
            except jsonbody.JsonHasNul as exc:
                raise BodyInvalid([_nul_error(("body", *exc.path))]) from None
        return self._json

    async def _get_form(
        self,
        *,
        max_files: int | float = 1000,
        max_fields: int | float = 1000,
        max_part_size: int = 1024 * 1024,
    ) -> FormData:
        form = await super()._get_form(
            max_files=max_files, max_fields=max_fields, max_part_size=max_part_size
        )
        errors = [
            _nul_error(("body", name))
            for name, value in form.multi_items()
            if isinstance(value, str) and "\x00" in value
        ]
        if errors:
            raise BodyInvalid(errors)
        return form


def _refuse_nul(request: Request, query_names: frozenset[str]) -> None:
    errors = [
        _nul_error(("query", name))
        for name, value in (request.query_params.multi_items() if request.scope["query_string"] else ())
        if name in query_names and "\x00" in value
    ]
    errors += [
        _nul_error(("path", name))
        for name, value in request.path_params.items()
        if isinstance(value, str) and "\x00" in value
    ]
    if errors:
        raise RequestValidationError(errors)


async def _publish_after_commit(session: AsyncSession, queue: JobQueue | None) -> None:
    """Publish the jobs the committed request enqueued and mark them published (a second, small
    transaction). Never raises: what could not be published or marked is left to the worker's relay."""
    published = await outbox.publish_pending(session, queue)
    if not published:
        return
    try:
        await outbox.mark_published(session, published)
        await session.commit()
    except Exception as exc:
        await session.rollback()
        log.warning(
            "could not mark outbox jobs published; the relay will re-publish them",
            extra={"error": type(exc).__name__, "jobs": len(published)},
        )


class LoomRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.response_headers = declared_headers(self.dependant)
        if self.include_in_schema:
            # Every operation may answer 422, even one without parameters: its query string is checked.
            self.responses.setdefault(422, {"description": "Validation error: see `errors`."})
            if declared_public_read(self.dependant) is not None:
                self.responses.setdefault(304, {"description": NOT_MODIFIED})
                self.openapi_extra = openapi_extra(self.openapi_extra)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        # The documented API refuses query parameters it does not declare; the HTML pages (not in the
        # OpenAPI) take links from mail, where trackers may append parameters of their own.
        declared = DeclaredQuery.of(self.dependant)
        strict = self.include_in_schema

        public = declared_public_read(self.dependant)

        async def handle(request: Request) -> Response:
            request = LoomRequest(request.scope, request.receive)
            if public is not None:
                ask = Ask.of(request.scope)
                if ask.anonymous:
                    cache: PublicCache = request.app.state.public_cache
                    found = cache.lookup(request.scope, public, ask)
                    if isinstance(found, Response):
                        return found  # the request of a kept answer passed the checks below
                    check(request)
                    return await cache.answer(public, ask, found, functools.partial(run, request))
                check(request)
                return private(await run(request))
            check(request)
            return await run(request)

        def check(request: Request) -> None:
            if strict:
                declared.check(request)
            _refuse_nul(request, declared.names)  # the parameters the endpoint reads, NUL or not

        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except BaseException:
                session = request_session(request)
                if session is not None:
                    await session.rollback()
                raise
            session = request_session(request)
            if session is not None:
                await session.commit()
                await _publish_after_commit(session, request.app.state.queue)
            return response

        return handle


def router(**kwargs: object) -> APIRouter:
    """An ``APIRouter`` whose routes use the one-commit-point route class."""
    kwargs.setdefault("route_class", LoomRoute)
    return APIRouter(**kwargs)  # type: ignore[arg-type]


def _is_list(annotation: Any) -> bool:
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_list(arg) for arg in get_args(annotation) if arg is not type(None))
    return get_origin(annotation) in (list, tuple, set, frozenset, Sequence)


class DeclaredQuery:
    """The query parameters an operation declares. An undeclared one (a typo, a body field sent in the
    query string) or a single-valued one given twice would otherwise be silently ignored — the caller
    believing a filter or a change applied — so both are 422 validation problems."""

    def __init__(self, names: frozenset[str], lists: frozenset[str]) -> None:
        self.names = names
        self.lists = lists

    @classmethod
    def of(cls, dependant: Dependant) -> DeclaredQuery:
        names: set[str] = set()
        lists: set[str] = set()
        pending = [dependant]
        fields = []
        while pending:  # the operation's own parameters and its dependencies'
            current = pending.pop()
            fields.extend(current.query_params)
            pending.extend(current.dependencies)
        for field in fields:
            annotation = field.field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):  # a query model
                for name, info in annotation.model_fields.items():
                    names.add(info.alias or name)
                    if _is_list(info.annotation):
                        lists.add(info.alias or name)
                continue
            names.add(field.alias)
            if _is_list(annotation):
                lists.add(field.alias)
        return cls(frozenset(names), frozenset(lists))

    def check(self, request: Request) -> None:
        if not request.scope["query_string"]:  # nothing to check (most requests): no parsing
            return
        given = Counter(name for name, _ in request.query_params.multi_items())
        errors: list[dict[str, Any]] = []
        for name, times in given.items():
            if name == CACHE_BUSTER:
                continue
            if name not in self.names:
                errors.append(
                    {"loc": ("query", name), "msg": "Unknown query parameter", "type": "extra_forbidden"}
                )
            elif times > 1 and name not in self.lists:
                errors.append(
                    {"loc": ("query", name), "msg": "Give this parameter once", "type": "repeated_value"}
                )
        if errors:
            raise RequestValidationError(errors)


class AllowedMethods:
    """The methods each path allows, over every route of the app, worked out once at start-up. Starlette
    answers a method a path does not take from the first route whose path matches, and names only that
    route's methods in ``Allow`` (``DELETE /v1/organisations`` said ``Allow: GET``, without ``POST``)."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        by_template: dict[str, tuple[re.Pattern[str], set[str]]] = {}
        for route in iter_route_contexts(routes):
            regex, methods = getattr(route, "path_regex", None), route.methods
            if route.path_format is None or not isinstance(regex, re.Pattern) or not methods:
                continue
            by_template.setdefault(route.path_format, (regex, set()))[1].update(methods)
        self._templates = [(regex, frozenset(methods)) for regex, methods in by_template.values()]

    def for_path(self, path: str) -> frozenset[str]:
        """Every method of every route whose template matches ``path``."""
        return frozenset().union(*(methods for regex, methods in self._templates if regex.match(path)))

    def header(self, path: str) -> str:
        return ", ".join(sorted(self.for_path(path)))


class HotRoutes:
    """In front of the router: a request for one of a few hot routes (public signing, the public count)
    goes straight to that route, without matching the path against every route of the app first. The
    route itself is the one the router would have chosen — same validation, dependencies, problem details
    and response model, and the same OpenAPI operation — so only the search for it is skipped; anything
    else (another method on a hot path included) goes to the router as before."""

    def __init__(self, router: APIRouter, hot: Sequence[tuple[str, str]]) -> None:
        self.router = router
        wanted = set(hot)
        self._hot: list[tuple[str, RouteContext]] = []
        earlier: list[tuple[str, str]] = []
        for context in iter_route_contexts(router.routes):
            route = context.original_route
            if not isinstance(route, APIRoute):
                continue
            for method in route.methods or ():
                if (method, route.path_format) in wanted:
                    shadowed = [
                        path for m, path in earlier if m == method and _may_overlap(path, route.path_format)
                    ]
                    if shadowed:
                        # The router would answer some of its requests with an earlier route: going
                        # ahead of the router would change which route answers.
                        raise ValueError(f"{method} {route.path_format} is not hot: {shadowed} come first")
                    wanted.discard((method, route.path_format))
                    self._hot.append((method, context))
                earlier.append((method, route.path_format))
        if wanted:
            raise LookupError(f"no route for the hot paths {sorted(wanted)}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            for hot_method, context in self._hot:
                if method != hot_method:
                    continue
                match, child_scope = context.matches(scope)
                if match is Match.FULL:
                    scope.setdefault("router", self.router)
                    scope.update(child_scope)
                    scope["route"] = context.original_route
                    await context.app(scope, receive, send)  # the route's app, as resolved by inclusion
                    return
        await self.router(scope, receive, send)


def _may_overlap(first: str, second: str) -> bool:
    """Whether one request path could match both path formats: as many segments, each equal or a
    parameter in either (a ``{…:path}`` parameter may span segments, so it may match anything)."""
    if ":path}" in first or ":path}" in second:
        return True
    one, two = first.split("/"), second.split("/")
    return len(one) == len(two) and all(
        a == b or a.startswith("{") or b.startswith("{") for a, b in zip(one, two, strict=True)
    )
