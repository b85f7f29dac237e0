"""Facilities over HTTP: create, read by id or OS ID, search, validation, sources, roles."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.registry import service
from services.core.registry.identifiers import os_id_check_character
from services.core.registry.models import Company, Disclosure, DisclosureFormat, RecordType
from services.core.registry.schemas import FacilityCreate, FacilityUpdate
from services.core.users.models import Role
from tests.api.network.helpers import HeadersFor, assert_problem
from tests.factories import make_organisation

OS_ID = "BD2019189N7D07M"


def os_id(country: str, n: int) -> str:
    body = f"{country}2021100{n:05d}"
    return body + os_id_check_character(body)


@pytest.fixture
async def staff(headers_for: HeadersFor) -> dict[str, str]:
    return await headers_for(Role.coordinator)


async def create(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    fields.setdefault("country", "BD")
    response = await client.post("/v1/facilities", json=fields, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_and_read(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    brand = (await client.post("/v1/companies", json={"name": "Knit Group"}, headers=staff)).json()
    response = await client.post(
        "/v1/facilities",
        json={
            "name": "Dhaka Knitwear Ltd",
            "native_name": "ঢাকা নিটওয়্যার লিমিটেড",
            "address": "Plot 12, BSCIC, Narayanganj",
            "country": "bd",
            "latitude": 23.62,
            "longitude": 90.5,
            "parent_company": "knit-group",
            "facility_type": "production",
            "processing_types": ["knitting", "cut_make_trim", "knitting"],
            "product_types": ["apparel"],
            "worker_band": "1001-5000",
            "aliases": ["DKL"],
            "os_id": "bd-2019189-n7d07-m",
        },
        headers=staff,
    )
    assert response.status_code == 201, response.text
    facility = response.json()
    assert response.headers["location"] == f"/v1/facilities/{facility['id']}"
    assert facility["country"] == "BD"
    assert facility["os_id"] == OS_ID
    assert facility["parent_company"] == {"id": brand["id"], "slug": "knit-group", "name": "Knit Group"}
    assert facility["processing_types"] == ["knitting", "cut_make_trim"]
    assert (facility["latitude"], facility["longitude"]) == (23.62, 90.5)
    assert facility["closed"] is False
    # public reads, by id or OS ID (any spelling)
    for ref in (facility["id"], OS_ID, "bd-2019189-n7d07-m"):
        response = await client.get(f"/v1/facilities/{ref}")
        assert response.json() == {**facility, "sourced_by": []}, ref  # no list names it yet
    for ref in ("BD2019189N7D07Y", "no-such", "00000000-0000-0000-0000-000000000000"):
        assert_problem(await client.get(f"/v1/facilities/{ref}"), 404, "facility-not-found")


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"os_id": "BD2019189N7D07Y"}, "os_id"),  # check character wrong
        ({"os_id": "BD2019189N7D0"}, "os_id"),
        ({"latitude": 91, "longitude": 0}, "latitude"),
        ({"latitude": 0, "longitude": -180.5}, "longitude"),
        ({"latitude": 10}, "latitude and longitude go together"),
        ({"country": "XX"}, "country"),
        ({"worker_band": "5000"}, "worker_band"),
        ({"processing_types": ["smelting"]}, "processing_types"),
        ({"product_types": ["toys"]}, "product_types"),
        ({"name": "   "}, "name"),
    ],
)
async def test_invalid_values_are_refused(
    client: httpx.AsyncClient, staff: dict[str, str], fields: dict[str, Any], where: str
) -> None:
    body = {"name": "Factory", "country": "BD", **fields}
    problem = assert_problem(await client.post("/v1/facilities", json=body, headers=staff), 422)
    assert where in str(problem["errors"])


async def test_os_id_is_unique(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    await create(client, staff, name="One", os_id=OS_ID)
    assert_problem(
        await client.post(
            "/v1/facilities", json={"name": "Two", "country": "BD", "os_id": OS_ID}, headers=staff
        ),
        409,
        "os-id-taken",
    )
    other = await create(client, staff, name="Two")
    response = await client.patch(f"/v1/facilities/{other['id']}", json={"os_id": OS_ID}, headers=staff)
    assert_problem(response, 409, "os-id-taken")


async def test_search_by_name_country_os_id_and_company(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    await client.post("/v1/companies", json={"name": "Owner"}, headers=staff)
    await create(client, staff, name="Ananta Apparels", os_id=os_id("BD", 1), parent_company="owner")
    await create(client, staff, name="Anantá Denim", country="PK", aliases=["AD Karachi"])
    await create(client, staff, name="Shahi Exports", country="IN", native_name="शाही एक्सपोर्ट्स", closed=True)

    async def names(**params: Any) -> list[str]:
        response = await client.get("/v1/facilities", params=params)
        assert response.status_code == 200, response.text
        return [f["name"] for f in response.json()["items"]]

    assert await names(q="ananta") == ["Ananta Apparels", "Anantá Denim"]  # by country, then name
    assert await names(q="karachi") == ["Anantá Denim"]
    assert await names(q="शाही") == ["Shahi Exports"]
    assert await names(q="ananta", country=["PK", "in"]) == ["Anantá Denim"]
    assert await names(os_id=os_id("BD", 1).lower()) == ["Ananta Apparels"]
    assert await names(q=os_id("BD", 1)) == ["Ananta Apparels"]
    assert await names(company="owner") == ["Ananta Apparels"]
    assert await names(closed=True) == ["Shahi Exports"]
    assert_problem(await client.get("/v1/facilities", params={"os_id": "BD2019189N7D07Y"}), 422)


async def test_update_and_sources(
    client: httpx.AsyncClient, db: AsyncSession, staff: dict[str, str], headers_for: HeadersFor
) -> None:
    partner = await headers_for(Role.partner, await make_organisation(db))
    facility = await create(client, partner, name="Site", source="Union visit, 2026-11")
    ref = facility["id"]
    response = await client.patch(
        f"/v1/facilities/{ref}",
        json={"worker_band": "10001+", "latitude": 23.8, "longitude": 90.4, "closed": True, "name": "Site"},
        headers=staff,
    )
    assert response.status_code == 200, response.text
    assert (response.json()["worker_band"], response.json()["closed"]) == ("10001+", True)
    moved = await client.patch(f"/v1/facilities/{ref}", json={"longitude": 90.41}, headers=staff)
    assert (moved.json()["latitude"], moved.json()["longitude"]) == (23.8, 90.41)
    cleared = await client.patch(f"/v1/facilities/{ref}", json={"latitude": None}, headers=staff)
    assert (cleared.json()["latitude"], cleared.json()["longitude"]) == (None, None)  # both go
    response = await client.patch(f"/v1/facilities/{ref}", json={"latitude": 23.8}, headers=staff)
    assert_problem(response, 422, "coordinates-incomplete")

    sources = (await client.get(f"/v1/facilities/{ref}/sources", headers=staff)).json()["items"]
    by_field: dict[str, list[tuple[Any, str | None, bool]]] = {}
    for s in sources:
        by_field.setdefault(s["field"], []).append((s["value"], s["source_label"], s["user_id"] is not None))
    assert by_field["name"] == [("Site", "Union visit, 2026-11", True)]  # unchanged: not recorded again
    assert by_field["latitude"] == [(None, None, True), (23.8, None, True)]
    assert by_field["longitude"] == [(None, None, True), (90.41, None, True), (90.4, None, True)]
    assert by_field["worker_band"] == [("10001+", None, True)]
    assert by_field["country"] == [("BD", "Union visit, 2026-11", True)]
    assert_problem(await client.get(f"/v1/facilities/{ref}/sources", headers=partner), 403, "staff-only")


async def test_partners_write_facilities_not_companies(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    partner = await headers_for(Role.partner, await make_organisation(db))
    case_worker = await headers_for(Role.case_worker)
    await create(client, partner, name="Partner's Factory")
    assert_problem(
        await client.post("/v1/facilities", json={"name": "F", "country": "BD"}, headers=case_worker), 403
    )
    assert_problem(await client.post("/v1/facilities", json={"name": "F", "country": "BD"}), 401)


async def test_a_disclosure_can_be_the_source(db: AsyncSession) -> None:
    """What the worker will do with supplier lists (issue 11 §3): values sourced from a disclosure."""
    company = Company(id=uuid.uuid4(), slug="listing-brand", name="Listing Brand", name_key="listing brand")
    db.add(company)
    await db.flush()
    disclosure = uuid.uuid4()
    db.add(
        Disclosure(
            id=disclosure,
            company_id=company.id,
            url="https://example.org/list.csv",
            retrieved_on=date(2026, 11, 30),
            format=DisclosureFormat.csv,
            sha256="0" * 64,
            size_bytes=0,
            content=b"",
            row_count=0,
            machine_readable=True,
        )
    )
    await db.flush()
    source = service.Source(disclosure_id=disclosure, label="Brand list 2026-11")
    created = await service.create_facility(
        db, None, FacilityCreate(name="Listed", country="KH", worker_band="1-1000"), source=source
    )
    await service.update_facility(db, None, str(created.id), FacilityUpdate(closed=True), source=source)
    page = await service.list_sources(db, RecordType.facility, created.id, None, limit=10, offset=0)
    assert {(s.field, s.disclosure_id, s.user_id, s.api_key_id) for s in page.items} == {
        ("closed", disclosure, None, None),
        ("name", disclosure, None, None),
        ("country", disclosure, None, None),
        ("worker_band", disclosure, None, None),
    }
