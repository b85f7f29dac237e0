"""What the OpenAPI document says is what the server does: the methods each path takes (`Allow` on a 405),
the query parameters each operation declares (and only those), and the constraints of request bodies."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from schemathesis import GenerationMode
from sqlalchemy.ext.asyncio import AsyncSession

from services.cli import OPENAPI_PATH
from services.core.signatures.names import NAME_PATTERN, name_for_mail
from services.core.users.models import Role
from tests.api.network.conftest import headers_for
from tests.api.network.helpers import HeadersFor
from tests.factories import PASSWORD, make_organisation, make_petition, make_signature, make_user

__all__ = ["headers_for"]

DOCUMENT = json.loads(OPENAPI_PATH.read_text())
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PATH_PARAM = re.compile(r"\{[^}]+\}")
AN_ID = "00000000-0000-4000-8000-000000000000"


def _methods(item: dict[str, object]) -> set[str]:
    return {method.upper() for method in item if method.upper() in HTTP_METHODS}


def _matches(template: str, path: str) -> bool:
    pattern = "".join(
        "[^/]+" if PATH_PARAM.fullmatch(part) else re.escape(part)
        for part in re.split(r"(\{[^}]+\})", template)
    )
    return re.fullmatch(pattern, path) is not None


def _allow(response: httpx.Response) -> set[str]:
    return {method.strip() for method in response.headers["allow"].split(",")}


async def test_a_405_names_every_method_the_openapi_gives_the_path(client: httpx.AsyncClient) -> None:
    """For every path of the document and every method it does not take: 405, and `Allow` lists exactly the
    methods the document gives that path (and any other template the same URL matches)."""
    checked = 0
    for template in DOCUMENT["paths"]:
        path = PATH_PARAM.sub(AN_ID, template)
        expected: set[str] = set()
        for other, item in DOCUMENT["paths"].items():
            if _matches(other, path):
                expected |= _methods(item)
        assert expected, template
        for method in HTTP_METHODS:
            if method in expected:
                continue
            response = await client.request(method, path)
            assert response.status_code == 405, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "method-not-allowed"
            assert _allow(response) == expected, (method, path)
            checked += 1
    assert checked > 50


async def test_delete_on_the_organisations_list_names_get_and_post(client: httpx.AsyncClient) -> None:
    response = await client.delete("/v1/organisations")
    assert response.status_code == 405
    assert _allow(response) == {"GET", "POST"}


async def test_a_405_on_paths_outside_the_document_names_their_methods(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """The HTML pages and the docs are not in the OpenAPI; their 405s name their routes' methods."""
    by_template: dict[str, set[str]] = {}
    for route in iter_route_contexts(app.routes):
        if route.path_format and route.methods:
            by_template.setdefault(route.path_format, set()).update(route.methods)
    outside = {t: m for t, m in by_template.items() if t not in DOCUMENT["paths"]}
    assert {"/confirm", "/unsubscribe", "/docs", "/openapi.json"} <= set(outside)
    for template, methods in outside.items():
        path = PATH_PARAM.sub(AN_ID, template)
        method = next(m for m in HTTP_METHODS if m not in methods)
        response = await client.request(method, path)
        assert response.status_code == 405, (method, path)
        assert _allow(response) == methods, (method, path)


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
async def test_head_and_options_are_not_operations(client: httpx.AsyncClient, method: str) -> None:
    """Only the document's methods are served: HEAD and OPTIONS get a 405 naming them."""
    response = await client.request(method, "/v1/organisations")
    assert response.status_code == 405
    assert _allow(response) == {"GET", "POST"}


# --- query parameters ---------------------------------------------------------------------------------

OPERATIONS = [
    (method.upper(), path, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if method.upper() in HTTP_METHODS
]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = {
            **DOCUMENT["components"]["schemas"][name],
            **{k: v for k, v in schema.items() if k != "$ref"},
        }
    branches = [b for b in schema.get("anyOf", ()) if b != {"type": "null"}]
    if len(branches) == 1:
        return _resolve(branches[0])
    return schema


def _wrong_values(schema: dict[str, Any]) -> list[str]:
    """Values of the wrong type (or outside the enum or pattern) for a query parameter's schema; none for
    free text, which only has lengths."""
    schema = _resolve(schema)
    if schema.get("type") == "array":
        return _wrong_values(schema["items"])
    if "enum" in schema:
        return ["not-one-of-them"]
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "integer":
        return ["twelve", "1.5"]
    if kind == "boolean":
        return ["maybe"]
    if fmt == "uuid":
        return ["not-an-id"]
    if fmt == "date-time":
        # Numbers would be Unix times, a bare date midnight, and a time without offset ambiguous: the
        # schema's `date-time` is none of them.
        return ["yesterday", "1700000000", "2026-05-01", "2026-05-01T09:30:00"]
    if "pattern" in schema:
        assert not re.search(schema["pattern"], "Not Valid!")
        return ["Not Valid!"]
    return []


@pytest.fixture
async def admin_headers(headers_for: HeadersFor) -> dict[str, str]:
    return await headers_for(Role.admin)


async def test_wrongly_typed_query_parameters_are_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """Every typed query parameter of every operation, given a value of the wrong type: 422 naming it."""
    checked = set()
    for method, template, operation in OPERATIONS:
        path = PATH_PARAM.sub(AN_ID, template)
        for parameter in operation.get("parameters", ()):
            if parameter["in"] != "query":
                continue
            for value in _wrong_values(parameter["schema"]):
                name = parameter["name"]
                response = await client.request(method, path, params={name: value}, headers=admin_headers)
                assert response.status_code == 422, (method, template, name, value, response.text)
                assert ["query", name] in [e["loc"][:2] for e in response.json()["errors"]], (
                    method,
                    template,
                )
                checked.add((template, name))
    assert ("/v1/petitions/{petition}/signatures", "created_before") in checked
    assert ("/v1/integrations", "active") in checked
    assert len(checked) > 40


async def test_undeclared_query_parameters_are_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """A parameter an operation does not declare (a typo, a body field put in the query) is a 422, on every
    operation, before anything else happens."""
    for method, template, operation in OPERATIONS:
        assert "422" in operation["responses"], (method, template)  # declared, parameters or not
        path = PATH_PARAM.sub(AN_ID, template)
        response = await client.request(
            method, path, params={"no_such_parameter": "1"}, headers=admin_headers
        )
        assert response.status_code == 422, (method, template, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["code"] == "validation-error"
        assert body["errors"] == [
            {
                "loc": ["query", "no_such_parameter"],
                "msg": "Unknown query parameter",
                "type": "extra_forbidden",
            }
        ]
        anonymous = await client.request(method, path, params={"no_such_parameter": "1"})
        assert anonymous.status_code == 422, (method, template)


async def test_patching_an_integration_with_active_in_the_query_changes_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await client.post("/v1/integrations", json={"name": "CRM"}, headers=admin_headers)
    integration = created.json()["id"]
    response = await client.patch(
        f"/v1/integrations/{integration}", params={"active": "false"}, json={}, headers=admin_headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "active"]
    after = await client.get(f"/v1/integrations/{integration}", headers=admin_headers)
    assert after.json()["active"] is True


async def test_a_single_valued_parameter_given_twice_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    twice = await client.get("/v1/organisations", params=[("limit", "5"), ("limit", "6")])
    assert twice.status_code == 422
    assert twice.json()["errors"] == [
        {"loc": ["query", "limit"], "msg": "Give this parameter once", "type": "repeated_value"}
    ]
    repeatable = await client.get("/v1/organisations", params=[("country", "BD"), ("country", "kh")])
    assert repeatable.status_code == 200


async def test_a_cache_buster_is_ignored(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/organisations", params={"_": "1767225600000"})
    assert response.status_code == 200


async def test_the_html_pages_ignore_parameters_that_mail_trackers_add(client: httpx.AsyncClient) -> None:
    plain = await client.get("/unsubscribe", params={"token": "x"})
    tracked = await client.get("/unsubscribe", params={"token": "x", "utm_source": "newsletter"})
    assert plain.status_code == tracked.status_code == 400  # the token's own answer, not a 422
    assert tracked.headers["content-type"].startswith("text/html")


async def test_signature_list_times_need_a_date_time_with_offset(
    client: httpx.AsyncClient, db: AsyncSession, admin_headers: dict[str, str]
) -> None:
    petition = await make_petition(db)
    signature = await make_signature(db, petition)
    await db.commit()
    url = f"/v1/petitions/{petition.slug}/signatures"
    for wrong in ["99999999999", "1", "2999-01-01"]:
        response = await client.get(url, params={"created_before": wrong}, headers=admin_headers)
        assert response.status_code == 422, wrong
    later = (signature.created_at + timedelta(seconds=1)).isoformat()
    found = await client.get(url, params={"created_before": later}, headers=admin_headers)
    assert [item["id"] for item in found.json()["items"]] == [str(signature.id)]
    as_z = await client.get(url, params={"created_after": "2000-01-01T00:00:00Z"}, headers=admin_headers)
    assert as_z.json()["total"] == 1


# --- request bodies -------------------------------------------------------------------------------------

PATCHES = [(template, operation) for method, template, operation in OPERATIONS if method == "PATCH"]


def _body_schema(operation: dict[str, Any]) -> dict[str, Any]:
    return _resolve(operation["requestBody"]["content"]["application/json"]["schema"])


def _nullable(prop: dict[str, Any]) -> bool:
    return {"type": "null"} in prop.get("anyOf", ())


async def test_patch_refuses_null_where_the_schema_does_not_admit_it(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """For every PATCH schema, `null` for a field the schema does not make nullable is a 422 at that field
    (it would otherwise be taken for "leave it" or, worse, clear a required column)."""
    checked = 0
    for template, operation in PATCHES:
        schema = _body_schema(operation)
        assert schema.get("additionalProperties") is False, template
        for name, prop in schema["properties"].items():
            assert "default" not in prop, (template, name)  # a field left out stays as it is
            if _nullable(prop):
                continue
            path = PATH_PARAM.sub(AN_ID, template)
            response = await client.patch(path, json={name: None}, headers=admin_headers)
            assert response.status_code == 422, (template, name, response.text)
            assert [error["loc"] for error in response.json()["errors"]] == [["body", name]], (template, name)
            checked += 1
    assert checked > 30


PatchTarget = Callable[[httpx.AsyncClient, AsyncSession, dict[str, str]], Awaitable[str]]


async def _user(client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]) -> str:
    return f"/v1/users/{(await make_user(db, Role.campaigner)).id}"


async def _organisation(client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]) -> str:
    return f"/v1/organisations/{(await make_organisation(db, website='https://example.org/')).slug}"


async def _coalition(client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]) -> str:
    created = await client.post(
        "/v1/coalitions", json={"name": "Brands", "region": "Europe"}, headers=headers
    )
    return f"/v1/coalitions/{created.json()['id']}"


async def _petition(client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]) -> str:
    return f"/v1/petitions/{(await make_petition(db)).slug}"


async def _integration(client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]) -> str:
    petition, organisation = await make_petition(db), await make_organisation(db)
    body = {"name": "CRM", "default_petition_id": str(petition.id), "organisation_id": str(organisation.id)}
    return (
        f"/v1/integrations/{(await client.post('/v1/integrations', json=body, headers=headers)).json()['id']}"
    )


async def _webhook_endpoint(client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]) -> str:
    body = {"url": "http://127.0.0.1:9/hook", "event_types": ["signature.confirmed"], "description": "CRM"}
    created = await client.post("/v1/webhook-endpoints", json=body, headers=headers)
    return f"/v1/webhook-endpoints/{created.json()['id']}"


async def _company(client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]) -> str:
    await client.post("/v1/companies", json={"name": "Group"}, headers=headers)
    body = {
        "name": "Brand",
        "kind": "brand",
        "hq_country": "DE",
        "website": "https://example.org/",
        "parent": "group",
        "lei": "5493001KJTIIGC8Y1R12",
        "wikirate_id": 1,
        "os_hub_contributor_id": 2,
    }
    return f"/v1/companies/{(await client.post('/v1/companies', json=body, headers=headers)).json()['id']}"


async def _facility(client: httpx.AsyncClient, db: AsyncSession, headers: dict[str, str]) -> str:
    await client.post("/v1/companies", json={"name": "Owner"}, headers=headers)
    body = {
        "name": "Site",
        "native_name": "সাইট",
        "country": "BD",
        "latitude": 23.8,
        "longitude": 90.4,
        "parent_company": "owner",
        "facility_type": "production",
        "worker_band": "1-1000",
        "os_id": "BD2019189N7D07M",
    }
    return f"/v1/facilities/{(await client.post('/v1/facilities', json=body, headers=headers)).json()['id']}"


# A resource to clear fields of, for each PATCH operation that has nullable fields.
PATCH_TARGETS: dict[str, PatchTarget] = {
    "/v1/users/{user_id}": _user,
    "/v1/organisations/{ref}": _organisation,
    "/v1/coalitions/{ref}": _coalition,
    "/v1/petitions/{ref}": _petition,
    "/v1/integrations/{integration_id}": _integration,
    "/v1/webhook-endpoints/{endpoint_id}": _webhook_endpoint,
    "/v1/companies/{ref}": _company,
    "/v1/facilities/{ref}": _facility,
}


async def test_patch_takes_null_where_the_schema_admits_it(
    client: httpx.AsyncClient, db: AsyncSession, admin_headers: dict[str, str]
) -> None:
    """For every PATCH schema, `null` for a field the schema makes nullable is accepted and clears it."""
    cleared = set()
    for template, operation in PATCHES:
        nullable = [name for name, prop in _body_schema(operation)["properties"].items() if _nullable(prop)]
        if not nullable:
            continue
        assert template in PATCH_TARGETS, f"add a resource for {template} to PATCH_TARGETS"
        path = await PATCH_TARGETS[template](client, db, admin_headers)
        for name in nullable:
            response = await client.patch(path, json={name: None}, headers=admin_headers)
            assert response.status_code == 200, (template, name, response.text)
            if name in response.json():
                assert response.json()[name] is None, (template, name)
            cleared.add((template, name))
    assert ("/v1/petitions/{ref}", "goal") in cleared
    assert ("/v1/integrations/{integration_id}", "organisation_id") in cleared


# --- values valid by the schema are accepted ------------------------------------------------------------

GENERATOR = schemathesis.openapi.from_dict(DOCUMENT)
GENERATOR.config.generation.update(allow_x00=False)  # NUL: refused by every text field, see no_nul
EXAMPLES = 40
# The schema says a language tag's shape; whether its subtags are registered (the server asks langcodes)
# is more than a pattern can say, so generated tags are swapped for registered ones.
REGISTERED_TAGS = ("en", "fr", "pt-BR", "bn", "km", "zh-Hant-TW", "es-419", "sr-Latn")


def _bodies(method: str, template: str) -> list[Any]:
    """Request bodies generated from the committed document for one operation (the same ones every run)."""
    bodies: list[Any] = []

    @hypothesis.settings(
        max_examples=EXAMPLES,
        database=None,
        derandomize=True,
        deadline=None,
        phases=[hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(GENERATOR[template][method].as_strategy(generation_mode=GenerationMode.POSITIVE))
    def collect(case: Any) -> None:
        bodies.append(case.body)

    collect()
    return bodies


def _accepted(response: httpx.Response, *conflicts: str) -> bool:
    """2xx, or one of the named conflicts (a generated slug or name already taken)."""
    if response.status_code < 300:
        return True
    return response.status_code == 409 and response.json()["code"] in conflicts


async def test_signatures_valid_by_the_schema_are_taken(client: httpx.AsyncClient, db: AsyncSession) -> None:
    petition = await make_petition(db, email_required=False)
    partner = await make_organisation(db)
    await db.commit()
    for number, body in enumerate(_bodies("POST", "/v1/petitions/{petition}/signatures")):
        if body.get("language") is not None:
            body["language"] = REGISTERED_TAGS[number % len(REGISTERED_TAGS)]
        if body.get("partner") is not None:
            body["partner"] = partner.slug  # an unknown partner is refused (422) by design
        name = body.get("name")
        if isinstance(name, str) and name_for_mail(name) is None:
            # The schema's pattern says what it can; symbols, emoji and domain-like text only the name
            # rule decides (its description says so).
            assert re.fullmatch(NAME_PATTERN, name), name
            body["name"] = "Ngozi Okonkwo-Adeyemi"
        response = await client.post(f"/v1/petitions/{petition.slug}/signatures", json=body)
        assert response.status_code == 202, (body, response.text)


async def test_organisations_valid_by_the_schema_are_taken(
    client: httpx.AsyncClient, db: AsyncSession, admin_headers: dict[str, str]
) -> None:
    for body in _bodies("POST", "/v1/organisations"):
        response = await client.post("/v1/organisations", json=body, headers=admin_headers)
        assert _accepted(response, "slug-taken"), (body, response.text)
    organisation = await make_organisation(db)
    for body in _bodies("PATCH", "/v1/organisations/{ref}"):
        response = await client.patch(
            f"/v1/organisations/{organisation.id}", json=body, headers=admin_headers
        )
        assert _accepted(response, "slug-taken"), (body, response.text)


async def test_coalitions_valid_by_the_schema_are_taken(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for body in _bodies("POST", "/v1/coalitions"):
        response = await client.post("/v1/coalitions", json=body, headers=admin_headers)
        assert _accepted(response, "slug-taken", "coalition-name-taken"), (body, response.text)


async def test_integrations_valid_by_the_schema_are_taken(
    client: httpx.AsyncClient, db: AsyncSession, admin_headers: dict[str, str]
) -> None:
    petition, organisation = await make_petition(db), await make_organisation(db)
    known = {"default_petition_id": str(petition.id), "organisation_id": str(organisation.id)}

    def with_known_references(body: dict[str, Any]) -> dict[str, Any]:
        # Unknown references are 404s by design; the schema cannot know which ids exist.
        return {**body, **{k: v for k, v in known.items() if body.get(k) is not None}}

    for body in _bodies("POST", "/v1/integrations"):
        response = await client.post(
            "/v1/integrations", json=with_known_references(body), headers=admin_headers
        )
        assert response.status_code == 201, (body, response.text)
    integration = response.json()["id"]
    for body in _bodies("PATCH", "/v1/integrations/{integration_id}"):
        response = await client.patch(
            f"/v1/integrations/{integration}", json=with_known_references(body), headers=admin_headers
        )
        assert response.status_code == 200, (body, response.text)


async def test_staff_requests_valid_by_the_schema_are_taken(
    client: httpx.AsyncClient, db: AsyncSession, admin_headers: dict[str, str]
) -> None:
    """Invalidations (at least one filter), privacy requests (an address email-validator takes) and users
    (an organisation for partners only)."""
    petition, organisation = await make_petition(db), await make_organisation(db)
    for body in _bodies("POST", "/v1/petitions/{petition}/invalidations"):
        response = await client.post(
            f"/v1/petitions/{petition.slug}/invalidations", json=body, headers=admin_headers
        )
        assert response.status_code == 201, (body, response.text)
    for body in _bodies("POST", "/v1/privacy/export"):
        response = await client.post("/v1/privacy/export", json=body, headers=admin_headers)
        assert response.status_code == 200, (body, response.text)
    for body in _bodies("POST", "/v1/users"):
        if body.get("organisation_id") is not None:
            body["organisation_id"] = str(organisation.id)  # an unknown organisation is a 422 by design
        if body.get("role") == Role.admin:
            body["current_password"] = PASSWORD  # making an admin asks for the caller's own password
        response = await client.post("/v1/users", json=body, headers=admin_headers)
        assert _accepted(response, "email-taken"), (body, response.text)


def _with_registered_languages(body: dict[str, Any], key: str = "translations") -> dict[str, Any]:
    """Generated language tags swapped for registered ones, the default language among the texts (a rule
    between two fields, which the schema cannot say)."""
    if body.get(key) is not None:
        body[key] = {REGISTERED_TAGS[i % len(REGISTERED_TAGS)]: v for i, v in enumerate(body[key].values())}
    if body.get("default_language") is not None:
        body["default_language"] = next(iter(body.get(key) or {"en": None}))
    return body


async def test_campaigns_and_petitions_valid_by_the_schema_are_taken(
    client: httpx.AsyncClient, db: AsyncSession, admin_headers: dict[str, str]
) -> None:
    """Besides registered languages: partners and targets are left out (unknown organisations and
    companies are refused), a petition's
    window is put in order (`closes_at` after `opens_at`), and an update's texts include the campaign's
    default language — rules between fields or records, which the schema cannot say."""
    petition = await make_petition(db)
    campaign = petition.campaign_id
    for body in _bodies("POST", "/v1/campaigns"):
        body = {**_with_registered_languages(body), "partners": [], "targets": []}
        response = await client.post("/v1/campaigns", json=body, headers=admin_headers)
        assert _accepted(response, "slug-taken"), (body, response.text)
    for body in _bodies("PATCH", "/v1/campaigns/{ref}"):
        body = _with_registered_languages(body)
        for key in ("partners", "targets"):  # other records, which generated references name rarely
            if body.get(key) is not None:
                body[key] = []
        if body.get("translations") is not None and body.get("default_language") is None:
            body["default_language"] = next(iter(body["translations"]))
        response = await client.patch(f"/v1/campaigns/{campaign}", json=body, headers=admin_headers)
        assert _accepted(response, "slug-taken"), (body, response.text)
    for body in _bodies("POST", "/v1/petitions"):
        body = {**_with_registered_languages(body), "campaign": str(campaign)}
        opens, closes = body.get("opens_at"), body.get("closes_at")
        if opens and closes and datetime.fromisoformat(closes) <= datetime.fromisoformat(opens):
            body["closes_at"] = None
        response = await client.post("/v1/petitions", json=body, headers=admin_headers)
        assert _accepted(response, "slug-taken"), (body, response.text)
    for body in _bodies("PATCH", "/v1/petitions/{ref}"):
        body = _with_registered_languages(body)
        if body.get("translations") is not None and body.get("default_language") is None:
            body["default_language"] = next(iter(body["translations"]))
        # The window against the petition's current one too: clear the other end.
        if body.get("opens_at") is not None:
            body["closes_at"] = None
        elif body.get("closes_at") is not None:
            body["opens_at"] = None
        response = await client.patch(f"/v1/petitions/{petition.id}", json=body, headers=admin_headers)
        assert _accepted(response, "slug-taken"), (body, response.text)
    for body in _bodies("POST", "/v1/campaigns/{campaign}/updates"):
        body = _with_registered_languages(body, key="content")  # the first is `en`, the default language
        response = await client.post(f"/v1/campaigns/{campaign}/updates", json=body, headers=admin_headers)
        assert response.status_code == 201, (body, response.text)
    update = response.json()["id"]
    for body in _bodies("PATCH", "/v1/campaigns/{campaign}/updates/{update}"):
        body = _with_registered_languages(body, key="content")
        response = await client.patch(
            f"/v1/campaigns/{campaign}/updates/{update}", json=body, headers=admin_headers
        )
        assert response.status_code == 200, (body, response.text)
