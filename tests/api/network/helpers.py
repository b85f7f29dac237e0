"""Assertions and request bodies shared by the network API tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

HeadersFor = Callable[..., Awaitable[dict[str, str]]]
KeyFor = Callable[..., Awaitable[dict[str, str]]]

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return body


def new_organisation(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Sramik Awaaz",
        "kind": "trade_union",
        "country": "bd",
        "city": "Dhaka",
        "website": "https://Example.org",
        "joined_on": "2021-03-08",
        "description": "Garment workers' voice.",
    }
    body.update(fields)
    return body
