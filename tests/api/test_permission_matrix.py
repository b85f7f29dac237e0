"""The permission matrix: every endpoint by every caller (anonymous and one user per role).

Each domain lists its endpoints as ``Case``s in ``tests/api/<domain>/permission_cases.py`` (``CASES``).
A caller not in a case's ``allowed`` must get a 401 (anonymous, with ``WWW-Authenticate``) or a 403
problem; an allowed caller must get neither (nor a server error). A companion test checks that every route
of the app is covered by a case, so a new endpoint cannot be forgotten.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import Route

import services.api
from services.core.config import Settings
from services.core.network.models import Coalition
from services.core.users.models import Role
from services.core.users.security import create_refresh_token
from tests.factories import PASSWORD, auth_headers, make_api_key, make_organisation, make_user
from tests.permissions import CALLERS, Case

PROBLEM = "application/problem+json"
REQUIRED_DOMAINS = ("auth", "users")  # this branch's own; others join when their module exists


def _api_domains() -> list[str]:
    """The packages under ``services/api`` (one per domain with endpoints)."""
    return sorted(m.name for m in pkgutil.iter_modules(services.api.__path__) if m.ispkg)


def _load_case_modules() -> dict[str, ModuleType]:
    modules: dict[str, ModuleType] = {}
    for domain in _api_domains():
        name = f"tests.api.{domain}.permission_cases"
        try:
            modules[domain] = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name not in {name, f"tests.api.{domain}"}:
                raise  # the module exists but is broken
    return modules


CASE_MODULES = _load_case_modules()
CASES: list[Case] = [case for module in CASE_MODULES.values() for case in module.CASES]


def test_own_case_modules_are_present() -> None:
    assert set(REQUIRED_DOMAINS) <= set(CASE_MODULES)


# --- the world the placeholders refer to --------------------------------------------------------------


@dataclass
class World:
    values: dict[str, str]
    headers: dict[str, dict[str, str]]


@pytest.fixture
async def world(db: AsyncSession, settings: Settings) -> World:
    own_org = await make_organisation(db)
    other_org = await make_organisation(db)
    coalition = await db.scalar(
        select(Coalition.id).where(Coalition.is_regional).order_by(Coalition.slug).limit(1)
    )
    assert coalition is not None, "the regional coalitions are seeded by migration 0002"
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    for role in Role:
        caller = await make_user(db, role, organisation=own_org if role is Role.partner else None)
        headers[role.value] = auth_headers(settings, caller)
    assert set(headers) == set(CALLERS)
    # The user the cases act on: someone other than every caller.
    target = await make_user(db, Role.coordinator)
    api_key, _ = await make_api_key(db, ["organisations:read"])
    refresh_token, _ = create_refresh_token(settings, target)
    values = {
        "own_org": str(own_org.id),
        "other_org": str(other_org.id),
        "coalition": str(coalition),
        "user": str(target.id),
        "api_key": str(api_key.id),
        "user_email": target.email,
        "password": PASSWORD,
        "refresh_token": refresh_token,
    }
    return World(values=values, headers=headers)


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], value)
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


# --- the matrix -------------------------------------------------------------------------------------------


def _params() -> Iterator[Any]:
    for case in CASES:
        for caller in CALLERS:
            yield pytest.param(case, caller, id=f"{case.method} {case.path} as {caller}")


@pytest.mark.parametrize(("case", "caller"), list(_params()))
async def test_permission(client: httpx.AsyncClient, world: World, case: Case, caller: str) -> None:
    response = await client.request(
        case.method,
        _fill(case.path, world.values),
        json=_fill(case.json, world.values),
        data=_fill(case.form, world.values),
        headers=world.headers[caller],
    )
    if caller in case.allowed:
        assert response.status_code not in {401, 403}, response.text
        assert response.status_code < 500, response.text
        return
    expected = case.refused or (401 if caller == "anonymous" else 403)
    assert response.status_code == expected, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["status"] == expected
    if expected == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


# --- every route is in the matrix ------------------------------------------------------------------------


def _template(path: str) -> str:
    """The route a Case's path addresses: placeholders generalised, query string dropped."""
    return _PLACEHOLDER.sub("{}", path.partition("?")[0])


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    module: str

    @property
    def domain(self) -> str | None:
        parts = self.module.split(".")
        return parts[2] if len(parts) > 2 and parts[:2] == ["services", "api"] else None

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.module})"


def _operations(app: FastAPI) -> list[Operation]:
    """Every method and path the app answers, but for its documentation."""
    docs = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    found: list[Operation] = []

    def add(path: str, methods: set[str] | None, endpoint: Any) -> None:
        if path in docs:
            return
        for method in sorted((methods or set()) - {"HEAD", "OPTIONS"}):
            found.append(Operation(method, path, getattr(endpoint, "__module__", "?")))

    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:  # an included router (FastAPI keeps them as branches)
            for context in contexts():
                add(context.path, context.methods, context.endpoint)
        elif isinstance(route, APIRoute | Route):
            add(route.path, route.methods, route.endpoint)
    return found


def test_every_route_is_in_the_matrix(app: FastAPI) -> None:
    operations = _operations(app)
    assert Operation("POST", "/v1/auth/token", "services.api.auth.endpoints") in operations
    covered = {(case.method.upper(), _template(case.path)) for case in CASES}
    missing = [op for op in operations if (op.method, _template(op.path)) not in covered]
    theirs = [op for op in missing if op.domain is not None and op.domain not in CASE_MODULES]
    ours = [op for op in missing if op not in theirs]
    assert not ours, "routes without a permission Case:\n" + "\n".join(map(str, ours))
    if theirs:
        pytest.skip(
            "routes whose domain has no tests/api/<domain>/permission_cases.py yet:\n"
            + "\n".join(map(str, theirs))
        )


def test_every_case_is_a_route(app: FastAPI) -> None:
    routes = {(op.method, _template(op.path)) for op in _operations(app)}
    stale = [f"{c.method} {c.path}" for c in CASES if (c.method.upper(), _template(c.path)) not in routes]
    assert not stale, "permission Cases for routes that do not exist: " + ", ".join(stale)


def test_cases_are_unique_and_name_known_callers() -> None:
    # One endpoint may have several Cases: other placeholders (own vs other organisation), query or body.
    keys = [(c.method.upper(), c.path, repr(c.json), repr(c.form)) for c in CASES]
    assert len(keys) == len(set(keys)), "two Cases test the same request"
    for case in CASES:
        assert case.allowed <= set(CALLERS), case
        assert set(_PLACEHOLDER.findall(case.path)) <= {
            "own_org",
            "other_org",
            "coalition",
            "user",
            "api_key",
        }


def test_placeholders_resolve(world: World) -> None:
    for case in CASES:
        _fill(case.path, world.values)
        _fill(case.json, world.values)
        _fill(case.form, world.values)
    assert uuid.UUID(world.values["own_org"]) != uuid.UUID(world.values["other_org"])
