"""Endpoints: ops (to be filled)."""

from services.api.routing import router as make_router

router = make_router()
