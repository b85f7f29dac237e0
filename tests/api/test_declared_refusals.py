"""The 401 and 403 codes an operation declares in the OpenAPI are the ones its callers get.

Every permission Case is sent by every caller of the matrix, by a caller with a broken token and by an API
key without any scope the case needs; each 401/403 answer's ``code`` must be declared for that operation
and status, and each declared code must be answered by some caller (or be one that depends on the data
sent, listed below with the test that reaches it).
"""

from __future__ import annotations

import re
from collections import defaultdict

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tests.api.test_permission_matrix import CASES, World, _fill, _template, world  # noqa: F401
from tests.factories import make_api_key
from tests.permissions import CALLERS

# Refusals that depend on what the request asks for, not on who asks; each has tests of its own.
DATA_DEPENDENT = {
    "current-password-required",  # handing an admin's power over without the password: tests/api/users
    "webhook-signature-invalid",  # a signed delivery with a bad signature: tests/api/signatures
    "webhook-timestamp-out-of-tolerance",  # a signed delivery sent too late: tests/api/signatures
}

_CODE = re.compile(r"`([a-z0-9-]+)`:")


def _declared(app: FastAPI) -> dict[tuple[str, str], dict[int, set[str]]]:
    declared: dict[tuple[str, str], dict[int, set[str]]] = {}
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            declared[(method.upper(), _template(path))] = {
                int(status): set(_CODE.findall(response.get("description", "")))
                for status, response in operation["responses"].items()
                if status in {"401", "403"}
            }
    return declared


async def test_declared_refusals_are_the_answered_ones(
    app: FastAPI,
    client: httpx.AsyncClient,
    world: World,  # noqa: F811 (the matrix's fixture, imported above)
    db: AsyncSession,
    connection: AsyncConnection,
) -> None:
    _, unscoped_key = await make_api_key(db, [])
    await db.flush()
    callers = {
        **{caller: world.headers[caller] for caller in CALLERS},
        "broken token": {"Authorization": "Bearer not-a-token"},
        "API key without scopes": {"X-API-Key": unscoped_key},
    }
    declared = _declared(app)
    answered: dict[tuple[str, str], dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    undeclared = []
    for case in CASES:
        operation = (case.method.upper(), _template(case.path))
        for caller, headers in callers.items():
            savepoint = await connection.begin_nested()  # every caller meets the same world
            response = await client.request(
                case.method,
                _fill(case.path, world.values),
                json=_fill(case.json, world.values),
                data=_fill(case.form, world.values),
                headers=headers,
            )
            await savepoint.rollback()
            if response.status_code not in {401, 403}:
                continue
            code = response.json()["code"]
            answered[operation][response.status_code].add(code)
            if code not in declared[operation].get(response.status_code, set()):
                undeclared.append(f"{' '.join(operation)} as {caller}: {response.status_code} {code}")
    unreachable = [
        f"{' '.join(operation)}: {status} {code}"
        for operation in answered
        for status, codes in declared[operation].items()
        for code in sorted(codes - answered[operation][status] - DATA_DEPENDENT)
    ]
    assert undeclared == [], "answered but not declared in the OpenAPI"
    assert unreachable == [], "declared in the OpenAPI but answered to no caller"
