"""Errors are RFC 9457 problem details."""

from __future__ import annotations

import httpx


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 404
    assert body["code"] == "not-found"
    assert body["type"].endswith("/not-found")
    assert body["instance"] == "/no/such/thing"
