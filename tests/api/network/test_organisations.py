"""/v1/organisations: create, change, read, filter, search and page through member organisations."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.core.config import Settings
from services.core.network.models import (
    Coalition,
    CoalitionMembership,
    MembershipStatus,
    Organisation,
    OrganisationKind,
)
from services.core.users.models import Role, User
from tests.api.network.helpers import HeadersFor, KeyFor, assert_problem, new_organisation
from tests.factories import auth_headers, make_organisation, make_user


async def coalition(db: AsyncSession, slug: str) -> Coalition:
    found = await db.scalar(select(Coalition).where(Coalition.slug == slug))
    assert found is not None
    return found


# --- create -----------------------------------------------------------------------------------------


async def test_coordinator_creates_an_organisation(
    client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    headers = await headers_for(Role.coordinator)

    response = await client.post("/v1/organisations", json=new_organisation(), headers=headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["slug"] == "sramik-awaaz"
    assert body["country"] == "BD"
    assert body["website"] == "https://example.org/"
    assert body["status"] == "active"
    assert body["joined_on"] == "2021-03-08"
    assert body["coalitions"] == []
    assert response.headers["location"] == f"/v1/organisations/{body['id']}"
    by_id = await client.get(f"/v1/organisations/{body['id']}")
    by_slug = await client.get("/v1/organisations/sramik-awaaz")
    assert by_id.status_code == by_slug.status_code == 200
    assert by_id.json() == by_slug.json() == body


async def test_generated_slugs_stay_unique_and_transliterate(
    client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    headers = await headers_for(Role.admin)
    slugs = []
    for _ in range(3):
        response = await client.post("/v1/organisations", json=new_organisation(), headers=headers)
        assert response.status_code == 201, response.text
        slugs.append(response.json()["slug"])
    bangla = await client.post("/v1/organisations", json=new_organisation(name="শ্রমিক আওয়াজ"), headers=headers)
    symbols = await client.post("/v1/organisations", json=new_organisation(name="!!!"), headers=headers)

    assert slugs == ["sramik-awaaz", "sramik-awaaz-2", "sramik-awaaz-3"]
    assert bangla.json()["slug"] == "shrmik-aaoyaaj"
    assert symbols.json()["slug"] == "organisation"


async def test_a_slug_in_use_is_a_409(client: httpx.AsyncClient, headers_for: HeadersFor) -> None:
    headers = await headers_for(Role.coordinator)
    first = await client.post("/v1/organisations", json=new_organisation(slug="awaaz"), headers=headers)
    assert first.status_code == 201

    again = await client.post(
        "/v1/organisations", json=new_organisation(name="Other", slug="awaaz"), headers=headers
    )
    other = await client.post("/v1/organisations", json=new_organisation(slug="other"), headers=headers)
    rename = await client.patch(
        f"/v1/organisations/{other.json()['id']}", json={"slug": "awaaz"}, headers=headers
    )

    assert_problem(again, 409, "slug-taken")
    assert_problem(rename, 409, "slug-taken")
    assert (await client.get("/v1/organisations/other")).status_code == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("country", "XX"),
        ("country", "BGD"),
        ("country", ""),
        ("kind", "company"),
        ("website", "not a url"),
        ("website", "ftp://example.org"),
        ("slug", "Not A Slug"),
        ("slug", str(uuid.uuid4())),
        ("name", "   "),
        ("name", "x" * 201),
        ("description", "nul \x00 byte"),
        ("status", "dormant"),
        ("joined_on", "yesterday"),
    ],
)
async def test_invalid_fields_are_422_problems(
    client: httpx.AsyncClient, headers_for: HeadersFor, field: str, value: str
) -> None:
    headers = await headers_for(Role.coordinator)

    response = await client.post(
        "/v1/organisations", json=new_organisation(**{field: value}), headers=headers
    )

    body = assert_problem(response, 422, "validation-error")
    assert ["body", field] == body["errors"][0]["loc"][:2]


async def test_unknown_country_is_a_422_problem_on_update_too(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    organisation = await make_organisation(db)
    headers = await headers_for(Role.coordinator)

    response = await client.patch(
        f"/v1/organisations/{organisation.id}", json={"country": "ZZ"}, headers=headers
    )

    body = assert_problem(response, 422, "validation-error")
    assert "ISO 3166-1" in body["errors"][0]["msg"]


async def test_only_coordinators_and_admins_create(
    client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    anonymous = await client.post("/v1/organisations", json=new_organisation())
    assert_problem(anonymous, 401, "unauthenticated")
    assert anonymous.headers["www-authenticate"] == "Bearer"
    for role in (Role.campaigner, Role.case_worker, Role.partner):
        response = await client.post(
            "/v1/organisations", json=new_organisation(), headers=await headers_for(role)
        )
        assert_problem(response, 403)
    listed = await client.get("/v1/organisations", params={"q": "Sramik"})
    assert listed.json()["total"] == 0


# --- update -----------------------------------------------------------------------------------------


async def test_coordinator_changes_any_field(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    organisation = await make_organisation(db, website="https://old.example/")
    headers = await headers_for(Role.coordinator)

    response = await client.patch(
        f"/v1/organisations/{organisation.slug}",
        json={"status": "suspended", "slug": "renamed", "city": None, "website": None, "country": "kh"},
        headers=headers,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["slug"], body["city"], body["website"], body["country"]) == (
        "suspended",
        "renamed",
        None,
        None,
        "KH",
    )
    assert body["name"] == organisation.name  # untouched
    assert (await client.get("/v1/organisations/renamed", headers=headers)).json()["status"] == "suspended"


async def test_required_fields_cannot_be_nulled(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    organisation = await make_organisation(db)
    headers = await headers_for(Role.admin)

    for field in ("name", "kind", "country", "status", "slug", "description"):
        response = await client.patch(
            f"/v1/organisations/{organisation.id}", json={field: None}, headers=headers
        )
        assert_problem(response, 422, "validation-error")
    unknown = await client.patch(
        f"/v1/organisations/{organisation.id}", json={"colour": "red"}, headers=headers
    )
    assert_problem(unknown, 422, "validation-error")


async def test_partner_changes_its_own_public_fields_only(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    own = await make_organisation(db)
    other = await make_organisation(db)
    headers = await headers_for(Role.partner, own)

    changed = await client.patch(
        f"/v1/organisations/{own.id}",
        json={"description": "We organise garment workers.", "website": "https://awaaz.example"},
        headers=headers,
    )
    status = await client.patch(f"/v1/organisations/{own.id}", json={"status": "former"}, headers=headers)
    slug = await client.patch(f"/v1/organisations/{own.id}", json={"slug": "mine"}, headers=headers)
    foreign = await client.patch(
        f"/v1/organisations/{other.id}", json={"description": "hijacked"}, headers=headers
    )

    assert changed.status_code == 200, changed.text
    assert changed.json()["description"] == "We organise garment workers."
    assert_problem(status, 403, "field-not-editable")
    assert_problem(slug, 403, "field-not-editable")
    assert_problem(foreign, 403, "not-your-organisation")
    after = (await client.get(f"/v1/organisations/{other.id}")).json()
    assert after["description"] == ""
    assert (await client.get(f"/v1/organisations/{own.id}")).json()["status"] == "active"


async def test_read_only_staff_and_anonymous_cannot_update(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    organisation = await make_organisation(db)
    path = f"/v1/organisations/{organisation.id}"

    assert_problem(await client.patch(path, json={"description": "x"}), 401)
    for role in (Role.campaigner, Role.case_worker):
        assert_problem(
            await client.patch(path, json={"description": "x"}, headers=await headers_for(role)), 403
        )


async def test_updating_a_missing_organisation_is_a_404(
    client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    headers = await headers_for(Role.coordinator)

    response = await client.patch(f"/v1/organisations/{uuid.uuid4()}", json={"city": "Pune"}, headers=headers)

    assert_problem(response, 404, "organisation-not-found")


async def test_api_keys_with_the_write_scope(
    client: httpx.AsyncClient, db: AsyncSession, api_key_for: KeyFor
) -> None:
    own = await make_organisation(db)
    other = await make_organisation(db)
    partner_key = await api_key_for(["organisations:write"], own)
    coordinator_key = await api_key_for(["organisations:write"])
    scopeless_key = await api_key_for(["signatures:write"])

    assert (
        await client.patch(f"/v1/organisations/{own.id}", json={"city": "Gazipur"}, headers=partner_key)
    ).status_code == 200
    assert_problem(
        await client.patch(f"/v1/organisations/{other.id}", json={"city": "x"}, headers=partner_key), 403
    )
    assert_problem(await client.post("/v1/organisations", json=new_organisation(), headers=partner_key), 403)
    created = await client.post("/v1/organisations", json=new_organisation(), headers=coordinator_key)
    assert created.status_code == 201, created.text
    assert_problem(
        await client.post("/v1/organisations", json=new_organisation(), headers=scopeless_key), 403
    )
    assert_problem(await client.get("/v1/organisations", headers={"X-API-Key": "loom_nope_nope"}), 401)


# --- visibility -------------------------------------------------------------------------------------


async def test_anonymous_callers_see_active_members_only(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    active = await make_organisation(db, name="Visible Union")
    suspended = await make_organisation(db, name="Visible Suspended", status=MembershipStatus.suspended)
    former = await make_organisation(db, name="Visible Former", status=MembershipStatus.former)

    public = await client.get("/v1/organisations", params={"q": "Visible"})
    assert [o["id"] for o in public.json()["items"]] == [str(active.id)]
    assert public.json()["total"] == 1
    assert_problem(await client.get(f"/v1/organisations/{suspended.id}"), 404, "organisation-not-found")
    assert_problem(await client.get(f"/v1/organisations/{former.slug}"), 404, "organisation-not-found")
    assert_problem(await client.get("/v1/organisations", params={"status": "suspended"}), 401)

    for role in (Role.admin, Role.coordinator, Role.campaigner, Role.case_worker):
        headers = await headers_for(role)
        staff = await client.get("/v1/organisations", params={"q": "Visible"}, headers=headers)
        assert staff.json()["total"] == 3
        only = await client.get(
            "/v1/organisations", params={"q": "Visible", "status": ["suspended", "former"]}, headers=headers
        )
        assert {o["id"] for o in only.json()["items"]} == {str(suspended.id), str(former.id)}
        assert (await client.get(f"/v1/organisations/{suspended.id}", headers=headers)).status_code == 200


async def test_partners_also_see_their_own_organisation_whatever_its_status(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    own = await make_organisation(db, name="Seen Own", status=MembershipStatus.suspended)
    other = await make_organisation(db, name="Seen Other", status=MembershipStatus.suspended)
    await make_organisation(db, name="Seen Active")
    headers = await headers_for(Role.partner, own)

    listed = await client.get("/v1/organisations", params={"q": "Seen"}, headers=headers)

    assert [o["name"] for o in listed.json()["items"]] == ["Seen Active", "Seen Own"]
    assert (await client.get(f"/v1/organisations/{own.id}", headers=headers)).status_code == 200
    assert_problem(await client.get(f"/v1/organisations/{other.id}", headers=headers), 404)
    assert_problem(
        await client.get("/v1/organisations", params={"status": "former"}, headers=headers), 403, "staff-only"
    )


async def test_unknown_or_odd_references_are_404s(client: httpx.AsyncClient) -> None:
    for ref in (str(uuid.uuid4()), "no-such-org", "Not%20a%20slug", "x" * 300):
        assert_problem(await client.get(f"/v1/organisations/{ref}"), 404, "organisation-not-found")
    # A NUL character is refused in every path parameter, like in every query parameter and body.
    assert_problem(await client.get("/v1/organisations/%00"), 422, "validation-error")


# --- filters, search, pages -------------------------------------------------------------------------


async def test_filters_by_country_kind_and_coalition(client: httpx.AsyncClient, db: AsyncSession) -> None:
    bd_union = await make_organisation(db, name="Filter A", country="BD", kind=OrganisationKind.trade_union)
    kh_ngo = await make_organisation(db, name="Filter B", country="KH", kind=OrganisationKind.ngo)
    nl_ngo = await make_organisation(db, name="Filter C", country="NL", kind=OrganisationKind.ngo)
    europe = await coalition(db, "europe")
    south_asia = await coalition(db, "south-asia")
    db.add_all(
        [
            CoalitionMembership(coalition_id=europe.id, organisation_id=nl_ngo.id),
            CoalitionMembership(coalition_id=south_asia.id, organisation_id=bd_union.id),
            CoalitionMembership(coalition_id=europe.id, organisation_id=bd_union.id),
        ]
    )
    await db.flush()

    async def names(**params: Any) -> list[str]:
        response = await client.get("/v1/organisations", params={"q": "Filter", **params})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == len(body["items"])
        return [o["name"] for o in body["items"]]

    assert await names(country="kh") == ["Filter B"]
    assert await names(country=["BD", "NL"]) == ["Filter A", "Filter C"]
    assert await names(kind="ngo") == ["Filter B", "Filter C"]
    assert await names(kind="ngo", country="NL") == ["Filter C"]
    assert await names(coalition="europe") == ["Filter A", "Filter C"]
    assert await names(coalition=str(south_asia.id)) == ["Filter A"]
    assert await names(coalition="east-asia") == []
    assert await names(coalition="no-such-coalition") == []
    assert_problem(await client.get("/v1/organisations", params={"country": "XX"}), 422)
    assert_problem(await client.get("/v1/organisations", params={"kind": "company"}), 422)

    detail = (await client.get(f"/v1/organisations/{bd_union.id}")).json()
    assert [c["slug"] for c in detail["coalitions"]] == ["europe", "south-asia"]
    listed = (await client.get("/v1/organisations", params={"q": "Filter B"})).json()
    assert listed["items"][0]["id"] == str(kh_ngo.id)
    assert listed["items"][0]["coalitions"] == []


async def test_search_covers_name_city_and_description_and_escapes_wildcards(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_organisation(db, name="Cotton 100% Union", city="Tirupur")
    await make_organisation(db, name="Worker_Voice", city="Phnom Penh")
    await make_organisation(db, name="Plain", city="Colombo", description="Back\\slash and MIGRANT workers")

    async def names(q: str) -> list[str]:
        response = await client.get("/v1/organisations", params={"q": q})
        assert response.status_code == 200, response.text
        return [o["name"] for o in response.json()["items"]]

    assert await names("cotton") == ["Cotton 100% Union"]
    assert await names("PHNOM") == ["Worker_Voice"]
    assert await names("migrant") == ["Plain"]
    assert await names("%") == ["Cotton 100% Union"]
    assert await names("_") == ["Worker_Voice"]
    assert await names("0%") == ["Cotton 100% Union"]
    assert await names("\\") == ["Plain"]
    assert await names("no such thing") == []
    assert_problem(await client.get("/v1/organisations", params={"q": "a\x00b"}), 422)
    assert_problem(await client.get("/v1/organisations", params={"q": "x" * 201}), 422)


async def test_pages_are_stable_and_complete(client: httpx.AsyncClient, db: AsyncSession) -> None:
    # Equal names force the tie-breaker (id) to decide the order.
    created = [await make_organisation(db, name=f"Paged {i % 3}") for i in range(11)]

    seen: list[str] = []
    for offset in range(0, 12, 4):
        response = await client.get("/v1/organisations", params={"q": "Paged", "limit": 4, "offset": offset})
        body = response.json()
        assert (body["total"], body["limit"], body["offset"]) == (11, 4, offset)
        seen += [o["id"] for o in body["items"]]
    again = await client.get("/v1/organisations", params={"q": "Paged", "limit": 100})

    assert len(seen) == len(set(seen)) == 11
    assert set(seen) == {str(o.id) for o in created}
    assert seen == [o["id"] for o in again.json()["items"]]
    names = [o["name"] for o in again.json()["items"]]
    assert names == sorted(names)
    beyond = (await client.get("/v1/organisations", params={"q": "Paged", "offset": 50})).json()
    assert (beyond["items"], beyond["total"]) == ([], 11)


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 201}, {"offset": -1}, {"offset": 10**20}, {"limit": "many"}],
)
async def test_page_bounds_are_validated(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    assert_problem(await client.get("/v1/organisations", params=params), 422, "validation-error")


async def test_default_page_size(client: httpx.AsyncClient, db: AsyncSession) -> None:
    for i in range(3):
        db.add(Organisation(name=f"Default {i}", slug=f"default-{i}", kind="ngo", country="IN"))
    await db.flush()

    body = (await client.get("/v1/organisations")).json()

    assert (body["limit"], body["offset"]) == (50, 0)
    assert body["total"] >= 3


async def test_conflicts_roll_back_cleanly_in_real_transactions(
    committing_client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    """Outside the test harness's savepoints: a 409 leaves nothing behind and the next write works."""
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session:
        user = await make_user(session, Role.coordinator)
        await session.commit()
    headers = auth_headers(settings, user)
    slug = f"committed-{uuid.uuid4().hex[:8]}"
    try:
        first = await committing_client.post(
            "/v1/organisations", json=new_organisation(slug=slug), headers=headers
        )
        clash = await committing_client.post(
            "/v1/organisations", json=new_organisation(slug=slug), headers=headers
        )
        after = await committing_client.patch(
            f"/v1/organisations/{slug}", json={"city": "Chittagong"}, headers=headers
        )

        assert first.status_code == 201, first.text
        assert_problem(clash, 409, "slug-taken")
        assert after.status_code == 200, after.text
        assert after.json()["city"] == "Chittagong"
    finally:
        async with sessions() as session:
            await session.execute(delete(Organisation).where(Organisation.slug == slug))
            await session.execute(delete(User).where(User.id == user.id))
            await session.commit()
