"""One commit point per request.

``LoomRoute`` commits the request's database session right after the endpoint returns and *before* the
response is sent, so a failed commit becomes a 5xx problem, never a 200. On error it rolls back. After a
successful commit, jobs enqueued in the session's outbox are published to the queue.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.headers import declared_headers
from services.core import outbox


class LoomRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.response_headers = declared_headers(self.dependant)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
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
    kwargs.setdefault("route_class", LoomRoute)
    return APIRouter(**kwargs)  # type: ignore[arg-type]
