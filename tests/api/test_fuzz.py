"""Property-based fuzzing of every operation of the committed OpenAPI document (schemathesis): no request,
valid or not, anonymous or with staff credentials, may get a 5xx.

Schemathesis only generates the requests (inputs that fit the schema and inputs that do not); they go
through the ``client`` fixture, so each one runs against the real app, PostgreSQL and Redis inside the
test's rolled-back transaction, on the same event loop as the rest of the suite. Path parameters are
sometimes those of records the test made, so requests get past the 404s into the endpoints' code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from sqlalchemy.ext.asyncio import AsyncSession

from services.cli import OPENAPI_PATH
from services.core.campaigns.models import Campaign
from services.core.config import Settings
from services.core.integrations.models import Integration
from services.core.integrations.webhooks import generate_secret
from services.core.network.models import Coalition
from services.core.registry.models import (
    Company,
    Disclosure,
    DisclosureFormat,
    DisclosureRow,
    DisclosureState,
    Facility,
    RowOutcome,
)
from services.core.users.models import Role
from services.core.users.scopes import Scope
from services.core.webhooks.models import WebhookEndpoint
from tests.factories import (
    api_key_headers,
    auth_headers,
    make_api_key,
    make_organisation,
    make_petition,
    make_signature,
    make_user,
)

SCHEMA = schemathesis.openapi.from_path(OPENAPI_PATH)


def _operations() -> list[Any]:
    found = []
    for result in SCHEMA.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the committed document is broken
        found.append(result.ok())
    return found


OPERATIONS = _operations()
CALLERS = ("anonymous", "admin", "api-key")
# Examples per operation and caller: the whole test takes about three minutes on two cores.
EXAMPLES = 20


@dataclass
class World:
    """Records the requests can find, and the headers of each caller."""

    path_values: dict[str, str]
    headers: dict[str, dict[str, str]]

    def known(self, path: str, names: list[str]) -> dict[str, str]:
        values = dict(self.path_values)
        for prefix in ("organisations", "campaigns", "petitions", "coalitions", "companies", "facilities"):
            if path.startswith(f"/v1/{prefix}/{{ref}}"):
                values["ref"] = self.path_values[prefix]
        return {name: values[name] for name in names if name in values}


@pytest.fixture
async def world(db: AsyncSession, settings: Settings) -> World:
    admin = await make_user(db, Role.admin)
    key, secret = await make_api_key(db, [scope.value for scope in Scope])
    organisation = await make_organisation(db)
    petition = await make_petition(db)
    campaign_slug = (await db.get_one(Campaign, petition.campaign_id)).slug
    signature = await make_signature(db, petition, email=None, name="Jane Doe", postal_code="1212")
    integration = Integration(name="CRM", secret=generate_secret(), default_petition_id=petition.id)
    coalition = Coalition(name="Fuzzers' Coalition", slug="fuzzers")
    endpoint = WebhookEndpoint(
        url="https://crm.example.org/hook", event_types=["signature.confirmed"], secret=generate_secret()
    )
    company = Company(slug="fuzz-brand", name="Fuzz Brand", name_key="fuzz brand", search_text="fuzz brand")
    facility = Facility(
        name="Fuzz Factory", country="BD", os_id="BD2019189N7D07M", search_text="fuzz factory"
    )
    db.add_all([integration, coalition, endpoint, company, facility])
    await db.flush()
    disclosure = Disclosure(
        company_id=company.id,
        url="https://fuzz.example.org/list.csv",
        retrieved_on=date(2026, 11, 30),
        format=DisclosureFormat.csv,
        sha256="f" * 64,
        size_bytes=0,
        content=b"",
        row_count=1,
        machine_readable=True,
        state=DisclosureState.processed,
    )
    db.add(disclosure)
    await db.flush()
    db.add(
        DisclosureRow(
            disclosure_id=disclosure.id,
            row_number=1,
            row_key="0" * 64,
            fields={"name": "Fuzz Factry", "address": None, "country": "BD"},
            problems=[],
            outcome=RowOutcome.review,
            candidate_id=facility.id,
            score=80.0,
        )
    )
    await db.flush()
    await db.commit()
    return World(
        path_values={
            "user_id": str(admin.id),
            "api_key_id": str(key.id),
            "organisation": organisation.slug,
            "organisations": organisation.slug,
            "campaign": campaign_slug,
            "campaigns": campaign_slug,
            "petition": petition.slug,
            "petitions": petition.slug,
            "integration_id": str(integration.id),
            "coalitions": coalition.slug,
            "companies": company.slug,
            "facilities": facility.os_id or "",
            "endpoint_id": str(endpoint.id),
            "disclosure": str(disclosure.id),
            "review": f"{disclosure.id}:1",
            "signature_id": str(signature.id),
            "kind": "confirmation",
        },
        headers={
            "anonymous": {},
            "admin": auth_headers(settings, admin),
            "api-key": api_key_headers(secret),
        },
    )


def _header_bytes(value: str | bytes) -> str | bytes:
    if isinstance(value, bytes) or value.isascii():
        return value
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


def _request(case: Any, headers: dict[str, str]) -> dict[str, Any]:
    """httpx arguments for a schemathesis case (which serialises for ``requests``)."""
    kwargs = case.as_transport_kwargs(base_url="http://test", headers=headers)
    request: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        # Header values are bytes on the wire; schemathesis draws non-ASCII ones too (obs-text, which
        # servers must survive), which httpx would refuse to encode as str.
        "headers": {name: _header_bytes(value) for name, value in (kwargs.get("headers") or {}).items()},
        "params": kwargs.get("params") or None,
    }
    cookies = kwargs.get("cookies")
    if cookies:
        request["headers"]["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif "files" in kwargs:
        request["files"] = _files(kwargs["files"])
        request["data"] = kwargs.get("data")
    elif isinstance(kwargs.get("data"), bytes | str):
        request["content"] = kwargs["data"]
    elif kwargs.get("data") is not None:
        request["data"] = kwargs["data"]
    return request


def _files(files: Any) -> Any:
    """Multipart files as httpx can encode them: negative cases may give a number or null as a file's
    content, which the client (not the server) cannot send; they go as its text."""

    def content(value: Any) -> Any:
        if isinstance(value, tuple):
            return (value[0], content(value[1]), *value[2:])
        return value if isinstance(value, bytes | str) or hasattr(value, "read") else str(value)

    if not files:
        return None
    items = files.items() if isinstance(files, dict) else files
    return [(name, content(value)) for name, value in items]


def _cases(operation: Any, world: World) -> st.SearchStrategy[Any]:
    names = [parameter.name for parameter in operation.path_parameters]
    known = world.known(operation.path, names)
    strategies = [operation.as_strategy(GenerationMode.POSITIVE)]
    if known:
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known))
    strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    if known:
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=known))
    return st.one_of(strategies)


@pytest.mark.fuzz
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data())
async def test_no_request_gets_a_server_error(
    client: httpx.AsyncClient, world: World, operation: Any, caller: str, data: st.DataObject
) -> None:
    case = data.draw(_cases(operation, world), label="case")
    request = client.build_request(**_request(case, world.headers[caller]))
    request.read()  # a multipart body streams: read it so the failure report can show it
    response = await client.send(request)
    try:
        case.validate_response(response, checks=[not_a_server_error])
    except FailureGroup as failures:  # a BaseExceptionGroup: Hypothesis shrinks only an Exception
        raise AssertionError(str(failures)) from None


def test_every_operation_is_fuzzed() -> None:
    assert len(OPERATIONS) == sum(len(item) for item in SCHEMA.raw_schema["paths"].values())
