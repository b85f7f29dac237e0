"""Request ids and the access log: one JSON line per request with the route template, and no personal
data or secrets from the query string, body, headers or path."""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from services.api.app import create_app
from services.core.config import Settings
from services.core.logging import configure_logging

EMAIL = "jane.doe@example.org"
NAME = "Jane Doe-Personal"
TOKEN = "s3cr3t-unsubscribe-token-5f1c"


class Signup(BaseModel):
    email: str
    name: str
    age: int


@pytest.fixture
def log_lines(settings: Settings) -> Iterator[io.StringIO]:
    """Logs as production writes them (JSON, DEBUG so the quiet probe lines show too) into a buffer;
    the test settings' logging is restored afterwards."""
    buffer = io.StringIO()
    configure_logging(settings.model_copy(update={"log_json": True, "log_level": "DEBUG"}), stream=buffer)
    try:
        yield buffer
    finally:
        configure_logging(settings)


def records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def access_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [r for r in records(buffer) if r["logger"] == "loom.access"]


@pytest.fixture
async def echo_client(
    settings: Settings, database_url: str, redis_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app plus two routes that take personal data and a token in the path (the app's own
    domain routes are written elsewhere)."""
    app: FastAPI = create_app(settings, database_url=database_url, redis_url=redis_url)

    async def sign_up(item_id: int, body: Signup) -> dict[str, str]:
        return {"status": "ok"}

    async def unsubscribe(token: str) -> None:
        raise RuntimeError("simulated failure")  # its message holds no personal data

    app.add_api_route("/test/items/{item_id}/signups", sign_up, methods=["POST"], status_code=201)
    app.add_api_route("/test/unsubscribe/{token}", unsubscribe, methods=["POST"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_request_id_is_accepted_returned_and_logged(
    client: httpx.AsyncClient, log_lines: io.StringIO
) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "edge-7f3a.2b_9"})
    assert response.headers["x-request-id"] == "edge-7f3a.2b_9"
    [line] = access_lines(log_lines)
    assert line["request_id"] == "edge-7f3a.2b_9"
    assert line["method"] == "GET"
    assert line["route"] == "/healthz"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], int | float)
    assert line["level"] == "DEBUG"  # a successful probe: quiet at INFO


async def test_request_id_is_generated_when_absent(client: httpx.AsyncClient, log_lines: io.StringIO) -> None:
    response = await client.get("/no/such/thing")
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    [line] = access_lines(log_lines)
    assert line["request_id"] == request_id
    assert line["route"] == "<unmatched>"
    assert line["status"] == 404
    assert line["level"] == "INFO"


async def test_an_unsafe_incoming_request_id_is_replaced(
    client: httpx.AsyncClient, log_lines: io.StringIO
) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": EMAIL})
    assert response.headers["x-request-id"] != EMAIL
    assert EMAIL not in log_lines.getvalue()
    assert access_lines(log_lines)[-1]["request_id"] == response.headers["x-request-id"]


async def test_no_personal_data_from_query_or_body_reaches_the_logs(
    echo_client: httpx.AsyncClient, log_lines: io.StringIO
) -> None:
    query = {"email": EMAIL, "name": NAME, "token": TOKEN}
    body = {"email": EMAIL, "name": NAME, "age": 41}
    ok = await echo_client.post("/test/items/17/signups", params=query, json=body)
    invalid = await echo_client.post(
        "/test/items/17/signups", params=query, json={**body, "age": "not a number"}
    )
    wrong_method = await echo_client.get("/test/items/17/signups", params=query)
    unknown = await echo_client.post(f"/test/{EMAIL}", params=query, json=body)
    assert [ok.status_code, invalid.status_code, wrong_method.status_code, unknown.status_code] == [
        201,
        422,
        405,
        404,
    ]
    assert EMAIL not in invalid.text  # nor echoed in the problem

    text = log_lines.getvalue()
    for secret in (EMAIL, "jane.doe", "example.org", NAME, TOKEN, "?"):
        assert secret not in text, f"{secret!r} leaked into the logs:\n{text}"
    lines = access_lines(log_lines)
    assert [(x["route"], x["status"]) for x in lines] == [
        ("/test/items/{item_id}/signups", 201),
        ("/test/items/{item_id}/signups", 422),
        ("/test/items/{item_id}/signups", 405),
        ("<unmatched>", 404),
    ]
    responses = (ok, invalid, wrong_method, unknown)
    assert [x["request_id"] for x in lines] == [r.headers["x-request-id"] for r in responses]
    # One access line per request, carrying only these fields.
    assert {key for x in lines for key in x} == {
        "time",
        "level",
        "logger",
        "message",
        "method",
        "route",
        "status",
        "duration_ms",
        "request_id",
    }


async def test_an_unhandled_error_keeps_its_request_id_and_logs_no_token(
    echo_client: httpx.AsyncClient, log_lines: io.StringIO
) -> None:
    response = await echo_client.post(f"/test/unsubscribe/{TOKEN}", params={"email": EMAIL})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    request_id = response.headers["x-request-id"]

    text = log_lines.getvalue()
    assert TOKEN not in text
    assert EMAIL not in text
    [access] = access_lines(log_lines)
    assert access["route"] == "/test/unsubscribe/{token}"
    assert access["status"] == 500
    assert access["request_id"] == request_id
    [error] = [r for r in records(log_lines) if r["level"] == "ERROR"]
    assert error["request_id"] == request_id
    assert error["route"] == "/test/unsubscribe/{token}"
    assert "RuntimeError" in error["traceback"]
    assert "exc_info" not in error  # the message could quote personal data; the scrubbed stack is enough


async def test_text_logs_carry_the_request_id_too(client: httpx.AsyncClient, settings: Settings) -> None:
    buffer = io.StringIO()
    configure_logging(settings.model_copy(update={"log_json": False}), stream=buffer)
    try:
        response = await client.get("/no/such/thing", params={"email": EMAIL})
    finally:
        configure_logging(settings)
    [line] = buffer.getvalue().splitlines()
    assert f"[{response.headers['x-request-id']}]" in line
    assert "loom.access" in line
    assert "GET <unmatched> 404" in line
    assert EMAIL not in line
