"""Companies over HTTP: create, read, search, groups without cycles, identifiers, sources, roles."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.users.models import Role
from tests.api.network.helpers import HeadersFor, KeyFor, assert_problem
from tests.factories import make_organisation

LEI = "5493001KJTIIGC8Y1R12"


@pytest.fixture
async def staff(headers_for: HeadersFor) -> dict[str, str]:
    return await headers_for(Role.campaigner)


async def create(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/companies", json=fields, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_and_read(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    group = await create(client, staff, name="Inditex", kind="manufacturer_group", hq_country="es")
    response = await client.post(
        "/v1/companies",
        json={
            "name": "Zara",
            "aliases": ["ZARA", "Zara Home", "zara home"],
            "kind": "brand",
            "hq_country": "ES",
            "website": "https://www.zara.com",
            "parent": group["slug"],
            "lei": LEI.lower(),
            "wikirate_id": 12345,
            "os_hub_contributor_id": 678,
        },
        headers=staff,
    )
    assert response.status_code == 201, response.text
    zara = response.json()
    assert response.headers["location"] == f"/v1/companies/{zara['id']}"
    assert zara["slug"] == "zara"
    assert zara["aliases"] == ["ZARA", "Zara Home"]  # repeats, ignoring case, are dropped
    assert zara["hq_country"] == "ES"
    assert zara["website"] == "https://www.zara.com/"
    assert zara["parent"] == {"id": group["id"], "slug": "inditex", "name": "Inditex"}
    assert zara["lei"] == LEI
    assert (zara["wikirate_id"], zara["os_hub_contributor_id"]) == (12345, 678)
    # public reads, by slug or id
    by_slug = await client.get("/v1/companies/zara")
    by_id = await client.get(f"/v1/companies/{zara['id']}")
    assert by_slug.json() == by_id.json() == zara
    assert_problem(await client.get("/v1/companies/no-such-company"), 404, "company-not-found")
    # a group's brands
    brands = (await client.get("/v1/companies", params={"parent": "inditex"})).json()
    assert [c["slug"] for c in brands["items"]] == ["zara"]


async def test_search_by_name_alias_country_and_kind(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    await create(client, staff, name="Hennes & Mauritz", aliases=["H&M"], kind="retailer", hq_country="SE")
    await create(client, staff, name="Müller Sportswear", kind="brand", hq_country="DE")
    await create(client, staff, name="Primark", kind="retailer", hq_country="IE")

    async def names(**params: Any) -> list[str]:
        response = await client.get("/v1/companies", params=params)
        assert response.status_code == 200, response.text
        return [c["name"] for c in response.json()["items"]]

    assert await names(q="h&m") == ["Hennes & Mauritz"]
    assert await names(q="MULLER") == ["Müller Sportswear"]  # accents and case ignored
    assert await names(q="müll") == ["Müller Sportswear"]
    assert await names(q="primark") == ["Primark"]
    assert await names(q="%") == []  # LIKE wildcards are text
    assert await names(kind="retailer") == ["Hennes & Mauritz", "Primark"]
    assert await names(country="de") == ["Müller Sportswear"]
    assert await names(q="sportswear", kind=["brand", "agent"]) == ["Müller Sportswear"]


async def test_the_same_name_is_the_same_company(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    await create(client, staff, name="H&M")
    response = await client.post("/v1/companies", json={"name": "h & m"}, headers=staff)
    assert_problem(response, 409, "company-name-taken")
    response = await client.post("/v1/companies", json={"name": "Other", "slug": "h-m"}, headers=staff)
    assert_problem(response, 409, "company-slug-taken")


async def test_identifiers_are_checked_and_unique(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    bad = await client.post("/v1/companies", json={"name": "A", "lei": "5493001KJTIIGC8Y1R13"}, headers=staff)
    body = assert_problem(bad, 422)
    assert "check digits" in str(body["errors"])
    await create(client, staff, name="A", lei=LEI, wikirate_id=1, os_hub_contributor_id=2)
    for field, value in (("lei", LEI), ("wikirate_id", 1), ("os_hub_contributor_id", 2)):
        response = await client.post(
            "/v1/companies", json={"name": f"B {field}", field: value}, headers=staff
        )
        assert assert_problem(response, 409, "company-identifier-taken")["field"] == field


async def test_groups_refuse_cycles(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    group = await create(client, staff, name="Group")
    brand = await create(client, staff, name="Brand", parent=group["slug"])
    sub = await create(client, staff, name="Sub-brand", parent=brand["id"])
    for ref, parent in (("group", sub["slug"]), ("group", brand["slug"]), ("brand", "brand")):
        response = await client.patch(f"/v1/companies/{ref}", json={"parent": parent}, headers=staff)
        assert_problem(response, 409, "company-parent-cycle")
    response = await client.patch("/v1/companies/brand", json={"parent": "no-such"}, headers=staff)
    assert_problem(response, 422, "parent-company-not-found")
    # moving a brand to another group, and out of any
    other = await create(client, staff, name="Other Group")
    moved = await client.patch("/v1/companies/sub-brand", json={"parent": other["slug"]}, headers=staff)
    assert moved.json()["parent"]["slug"] == "other-group"
    freed = await client.patch("/v1/companies/sub-brand", json={"parent": None}, headers=staff)
    assert freed.json()["parent"] is None
    # now the group may belong to the sub-brand
    response = await client.patch("/v1/companies/group", json={"parent": "sub-brand"}, headers=staff)
    assert response.status_code == 200, response.text


async def test_update_changes_only_what_is_sent(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    await create(client, staff, name="Brand X", kind="brand", hq_country="NL", website="https://x.example")
    response = await client.patch(
        "/v1/companies/brand-x", json={"name": "Brand X Europe", "website": None}, headers=staff
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["slug"], body["kind"], body["hq_country"], body["website"]) == (
        "Brand X Europe",
        "brand-x",
        "brand",
        "NL",
        None,
    )
    assert [
        c["name"] for c in (await client.get("/v1/companies", params={"q": "europe"})).json()["items"]
    ] == ["Brand X Europe"]
    assert_problem(await client.patch("/v1/companies/brand-x", json={"name": None}, headers=staff), 422)
    assert_problem(await client.patch("/v1/companies/nope", json={"kind": "agent"}, headers=staff), 404)


async def test_sources_say_who_set_each_value_and_when(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor, api_key_for: KeyFor
) -> None:
    editor = await headers_for(Role.coordinator)
    key = await api_key_for(["pledges:write"])
    await create(client, editor, name="Sourced", kind="brand", source="Annual report 2025")
    response = await client.patch(
        "/v1/companies/sourced", json={"kind": "retailer", "name": "Sourced"}, headers=key
    )
    assert response.status_code == 200, response.text

    response = await client.get("/v1/companies/sourced/sources", headers=editor)
    assert response.status_code == 200, response.text
    sources = response.json()
    entries = [
        (s["field"], s["value"], s["source_label"], bool(s["user_id"]), bool(s["api_key_id"]))
        for s in sources["items"]
    ]
    # newest first; the unchanged name was not recorded again
    assert entries[0] == ("kind", "retailer", None, False, True)
    assert sorted(entries[1:]) == [
        ("kind", "brand", "Annual report 2025", True, False),
        ("name", "Sourced", "Annual report 2025", True, False),
        ("slug", "sourced", "Annual report 2025", True, False),
    ]
    only_kind = (await client.get("/v1/companies/sourced/sources?field=kind", headers=editor)).json()
    assert [s["value"] for s in only_kind["items"]] == ["retailer", "brand"]
    # not for the public or partners
    assert_problem(await client.get("/v1/companies/sourced/sources"), 401)
    partner = await headers_for(Role.partner, await make_organisation(db))
    assert_problem(await client.get("/v1/companies/sourced/sources", headers=partner), 403, "staff-only")
    no_scope = await api_key_for(["campaigns:read"])
    assert_problem(await client.get("/v1/companies/sourced/sources", headers=no_scope), 403, "staff-only")


async def test_who_may_write(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor, api_key_for: KeyFor
) -> None:
    partner = await headers_for(Role.partner, await make_organisation(db))
    assert_problem(await client.post("/v1/companies", json={"name": "P"}, headers=partner), 403)
    read_key = await api_key_for(["pledges:read"])
    assert_problem(await client.post("/v1/companies", json={"name": "P"}, headers=read_key), 403)
    write_key = await api_key_for(["pledges:write"])
    assert (await client.post("/v1/companies", json={"name": "P"}, headers=write_key)).status_code == 201
