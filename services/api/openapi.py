"""Render the OpenAPI document deterministically (``make openapi`` writes it to openapi/openapi.json)."""

from __future__ import annotations

import json

from services.api.app import create_app


def render_openapi() -> str:
    document = create_app().openapi()
    return json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
