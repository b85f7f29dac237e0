"""Every partial update takes one shape: its body is a ``services.core.schemas.Patch`` (only the fields
sent change; ``null`` only where the model says a field may be cleared)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute

from services.core.schemas import Patch


def _routes(app: FastAPI) -> list[APIRoute]:
    return [
        context.original_route
        for route in app.routes
        for context in getattr(route, "effective_route_contexts", list)()
        if isinstance(context.original_route, APIRoute)
    ]


def test_every_patch_body_is_a_patch(app: FastAPI) -> None:
    patches = [route for route in _routes(app) if "PATCH" in (route.methods or set())]
    assert len(patches) >= 8
    for route in patches:
        assert route.body_field is not None, route.path
        body = route.body_field.field_info.annotation
        assert isinstance(body, type), (route.path, body)
        assert issubclass(body, Patch), (route.path, body)
