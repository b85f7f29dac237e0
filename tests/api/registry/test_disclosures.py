"""Supplier-list disclosures over HTTP: uploading CSV, XLSX and JSON lists, the limits as problem details,
progress, the review queue's decisions, and the facility read naming the companies that source from it."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from openpyxl import Workbook
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.config import Settings
from services.core.registry import disclosures
from services.core.users.models import Role
from tests.api.network.helpers import HeadersFor, assert_problem

FORM = {"url": "https://example.org/suppliers", "retrieved_on": "2026-11-30"}
CSV_LIST = (
    "Factory Name;Full Address;Country;Parent Company;Product Type;Number of Workers\n"
    "Dhaka Knitwear Ltd.;Plot 12, BSCIC, Narayanganj;Bangladesh;Knit Group;Apparel;1200\n"
    "DHAKA KNITWEAR LIMITED;Plot 12 BSCIC Narayanganj;BD;;Apparel;\n"
    "Saigon Shoes Factory 2;12 Road 5, Binh Duong;Viet Nam;;Footwear;> 10000\n"
    "Nameless Country Mill;Somewhere;;;;\n"
)


@pytest.fixture
async def staff(headers_for: HeadersFor) -> dict[str, str]:
    return await headers_for(Role.coordinator)


@pytest.fixture
async def company(client: httpx.AsyncClient, staff: dict[str, str]) -> dict[str, Any]:
    response = await client.post("/v1/companies", json={"name": "Example Sportswear"}, headers=staff)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], slug: str, content: bytes, name: str = "list.csv"
) -> httpx.Response:
    return await client.post(
        f"/v1/companies/{slug}/disclosures", data=FORM, files={"file": (name, content)}, headers=headers
    )


async def test_upload_then_progress_then_review(
    client: httpx.AsyncClient,
    db: AsyncSession,
    settings: Settings,
    staff: dict[str, str],
    company: dict[str, Any],
) -> None:
    known = await client.post(
        "/v1/facilities",
        json={"name": "Saigon Shoes Factory 2", "address": "12 Road 5, Binh Duong", "country": "VN"},
        headers=staff,
    )
    fuzzy = await client.post(
        "/v1/facilities",
        json={"name": "Dhaka Knitting Wear Ltd", "address": "Narayanganj", "country": "BD"},
        headers=staff,
    )
    response = await upload(client, staff, company["slug"], CSV_LIST.encode())
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["state"] == "queued"
    assert created["format"] == "csv"
    assert created["row_count"] == 4
    assert created["machine_readable"]
    assert len(created["sha256"]) == 64
    location = response.headers["Location"]

    again = await upload(client, staff, company["slug"], CSV_LIST.encode(), name="copy.csv")
    assert assert_problem(again, 409, "disclosure-duplicate")["disclosure_id"] == created["id"]

    while not (await disclosures.process_batch(db, settings, created["id"])).done:
        pass
    progress = (await client.get(location, headers=staff)).json()
    assert progress["state"] == "processed"
    assert progress["rows_done"] == 4
    # rows 1 and 2 are one row spelt two ways (the same after cleaning), close to a known facility but not
    # sure enough: both wait for review; row 3 is known exactly; row 4 has no country
    assert progress["outcomes"] == {"review": 2, "matched": 1, "invalid": 1}
    assert progress["problems"]["country"] == {"missing": 1, "invalid": 0}
    assert progress["problems"]["worker_band"] == {"missing": 2, "invalid": 0}

    facility = (await client.get(f"/v1/facilities/{known.json()['id']}")).json()  # public
    assert [s["company"]["slug"] for s in facility["sourced_by"]] == [company["slug"]]
    assert facility["sourced_by"][0]["first_seen"] == "2026-11-30"
    assert (await client.get(f"/v1/facilities/{fuzzy.json()['id']}")).json()["sourced_by"] == []

    listed = await client.get(f"/v1/companies/{company['slug']}/disclosures", headers=staff)
    assert listed.json()["total"] == 1
    queue = (await client.get(f"/v1/disclosure-reviews?company={company['id']}", headers=staff)).json()
    assert queue["total"] == 2
    assert queue["items"][0]["candidate"]["id"] == fuzzy.json()["id"]
    confirmed = await client.post(f"/v1/disclosure-reviews/{queue['items'][0]['id']}/confirm", headers=staff)
    assert confirmed.status_code == 200, confirmed.text
    queue = (await client.get(f"/v1/disclosure-reviews?company={company['id']}", headers=staff)).json()
    assert queue["total"] == 0, "asked twice"
    facility = (await client.get(f"/v1/facilities/{fuzzy.json()['id']}")).json()
    assert [s["company"]["slug"] for s in facility["sourced_by"]] == [company["slug"]]
    assert_problem(await client.get(location), 401, "unauthenticated")


async def test_review_confirm_and_reject(
    client: httpx.AsyncClient,
    app: FastAPI,
    db: AsyncSession,
    settings: Settings,
    staff: dict[str, str],
    company: dict[str, Any],
) -> None:
    for name in ("Rahman Knit Composite Ltd", "Chittagong Denim Ltd"):
        response = await client.post(
            "/v1/facilities",
            json={"name": name, "address": "Plot 5, BSCIC, Gazipur", "country": "BD"},
            headers=staff,
        )
        assert response.status_code == 201
    content = (
        b"Supplier name,Address,Country\n"
        b"Rahman Knitwear Composite Mills,BSCIC Gazipur,BD\n"
        b"Chittagong Denim Washing Mills,BSCIC Gazipur,BD\n"
    )
    created = (await upload(client, staff, company["slug"], content)).json()
    tight = settings.model_copy(update={"disclosure_match_auto": 99, "disclosure_match_review": 60})
    while not (await disclosures.process_batch(db, tight, created["id"])).done:
        pass
    queue = (await client.get(f"/v1/disclosure-reviews?company={company['slug']}", headers=staff)).json()
    assert queue["total"] == 2
    first, second = queue["items"]
    assert first["candidate"]["name"] == "Rahman Knit Composite Ltd"

    confirmed = await client.post(f"/v1/disclosure-reviews/{first['id']}/confirm", headers=staff)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["outcome"] == "confirmed"
    assert confirmed.json()["facility_id"] == first["candidate"]["id"]
    rejected = await client.post(f"/v1/disclosure-reviews/{second['id']}/reject", headers=staff)
    assert rejected.json()["outcome"] == "rejected"
    assert rejected.json()["facility_id"] != second["candidate"]["id"]
    made = (await client.get(f"/v1/facilities/{rejected.json()['facility_id']}")).json()
    assert made["name"] == "Chittagong Denim Washing Mills"
    sources = await client.get(f"/v1/facilities/{made['id']}/sources?field=name", headers=staff)
    assert sources.json()["items"][0]["disclosure_id"] == created["id"]

    assert_problem(await client.post(f"/v1/disclosure-reviews/{first['id']}/confirm", headers=staff), 404)
    queue = (await client.get(f"/v1/disclosure-reviews?company={company['id']}", headers=staff)).json()
    assert queue["total"] == 0
    again = await client.post(f"/v1/disclosure-reviews/{first['id']}/reject", headers=staff)
    assert_problem(again, 404, "review-not-found")


async def test_xlsx_with_a_title_row_and_json(
    client: httpx.AsyncClient, staff: dict[str, str], company: dict[str, Any]
) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Example Sportswear — production units, November 2026"])
    sheet.append([])
    sheet.append(["Name of production unit", "Site address", "Country code", "Number of employees"])
    sheet.append(["Phnom Penh Garments", "Street 1", "KH", 3500])
    sheet.append(["Ho Chi Minh Textiles", "Street 2", "VNM", None])
    buffer = io.BytesIO()
    book.save(buffer)
    response = await upload(client, staff, company["slug"], buffer.getvalue(), name="list.xlsx")
    assert response.status_code == 202, response.text
    assert response.json()["format"] == "xlsx"
    assert response.json()["row_count"] == 2

    listed = {
        "facilities": [{"facility_name": "Lahore Denim", "country": "Pakistan", "products": ["apparel"]}]
    }
    response = await upload(client, staff, company["slug"], json.dumps(listed).encode(), name="list.json")
    assert response.status_code == 202, response.text
    assert response.json()["format"] == "json"
    assert response.json()["row_count"] == 1


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"Brand,Colour\nA,red\n", "disclosure-unreadable"),
        (b"PK\x03\x04 not really a workbook", "disclosure-unreadable"),
        (b'{"facilities": 3}', "disclosure-unreadable"),
        (b"[1, 2]", "disclosure-unreadable"),
    ],
)
async def test_unreadable_lists_are_422(
    client: httpx.AsyncClient, staff: dict[str, str], company: dict[str, Any], content: bytes, code: str
) -> None:
    assert_problem(await upload(client, staff, company["slug"], content), 422, code)


async def test_limits(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    staff: dict[str, str],
    company: dict[str, Any],
) -> None:
    app.state.settings = settings.model_copy(update={"disclosure_max_rows": 3})
    try:
        rows = "Facility name,Country\n" + "".join(f"Mill {i},BD\n" for i in range(4))
        assert_problem(
            await upload(client, staff, company["slug"], rows.encode()), 422, "disclosure-too-many-rows"
        )
    finally:
        app.state.settings = settings
    big = b"Facility name,Country\n" + b"x" * (disclosures.MAX_UPLOAD_BYTES + 128 * 1024)
    assert_problem(await upload(client, staff, company["slug"], big), 413)
    assert_problem(
        await upload(client, staff, "no-such-company", CSV_LIST.encode()), 404, "company-not-found"
    )
    missing = await client.post(f"/v1/companies/{company['slug']}/disclosures", data=FORM, headers=staff)
    assert_problem(missing, 422)
    bad_date = await client.post(
        f"/v1/companies/{company['slug']}/disclosures",
        data={**FORM, "retrieved_on": "yesterday"},
        files={"file": ("l.csv", CSV_LIST.encode())},
        headers=staff,
    )
    assert_problem(bad_date, 422)
