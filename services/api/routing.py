"""One commit point per request, and one way of reading what a request carries.

``LoomRoute`` commits the request's database session right after the endpoint returns and *before* the
response is sent, so a failed commit becomes a 5xx problem, never a 200. On error it rolls back. After a
successful commit, jobs enqueued in the session's outbox are published to the queue.

Before the endpoint runs, it refuses (422 ``validation-error``) a NUL character in any path parameter and
any query parameter the endpoint reads (PostgreSQL can neither store nor compare one), and it hands the
endpoint a ``LoomRequest``: JSON bodies are read by :func:`services.core.jsonbody.loads` (UTF-8, nested at
most 32 levels), and JSON and form bodies may not carry NUL characters either. Every route gets these rules
by being a ``LoomRoute``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from services.core import jsonbody, outbox

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
        for name, value in request.query_params.multi_items()
        if name in query_names and "\x00" in value
    ]
    errors += [
        _nul_error(("path", name))
        for name, value in request.path_params.items()
        if isinstance(value, str) and "\x00" in value
    ]
    if errors:
        raise RequestValidationError(errors)


def _query_names(dependant: Dependant) -> frozenset[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


class LoomRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        # The query parameters the endpoint reads (others are ignored, NUL or not).
        query_names = _query_names(self.dependant)

        async def handle(request: Request) -> Response:
            request = LoomRequest(request.scope, request.receive)
            try:
                _refuse_nul(request, query_names)
                response = await handler(request)
            except BaseException:
                session = request.state._state.get("session")
                if isinstance(session, AsyncSession):
                    await session.rollback()
                raise
            session = request.state._state.get("session")
            if isinstance(session, AsyncSession):
                await session.commit()
                await outbox.publish_after_commit(session, request.app.state.queue)
            return response

        return handle


def router(**kwargs: object) -> APIRouter:
    """An ``APIRouter`` whose routes use the one-commit-point route class."""
    return APIRouter(route_class=LoomRoute, **kwargs)  # type: ignore[arg-type]
