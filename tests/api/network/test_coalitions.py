"""/v1/coalitions: regional and custom coalitions and their members."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.network.models import CoalitionMembership, MembershipStatus
from services.core.users.models import Role
from tests.api.network.helpers import HeadersFor, assert_problem
from tests.factories import make_organisation

REGIONAL = ["east-asia", "europe", "south-asia", "south-east-asia"]


async def test_the_regional_coalitions_are_seeded_and_public(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/coalitions", params={"regional": "true"})

    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 4
    assert [c["slug"] for c in body["items"]] == REGIONAL
    assert all(c["is_regional"] for c in body["items"])
    europe = await client.get("/v1/coalitions/europe")
    assert europe.json()["name"] == "Europe"
    assert (await client.get(f"/v1/coalitions/{europe.json()['id']}")).json() == europe.json()
    assert_problem(await client.get("/v1/coalitions/atlantis"), 404, "coalition-not-found")
    assert_problem(await client.get(f"/v1/coalitions/{uuid.uuid4()}"), 404, "coalition-not-found")


async def test_coordinators_create_change_and_delete_custom_coalitions(
    client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    headers = await headers_for(Role.coordinator)

    created = await client.post(
        "/v1/coalitions",
        json={"name": "Latin America Solidarity", "region": "Latin America", "description": "New group."},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["slug"], body["is_regional"]) == ("latin-america-solidarity", False)
    assert created.headers["location"] == f"/v1/coalitions/{body['id']}"

    changed = await client.patch(
        "/v1/coalitions/latin-america-solidarity",
        json={"name": "Americas Solidarity", "slug": "americas", "region": None},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["slug"], changed.json()["region"]) == (
        "Americas Solidarity",
        "americas",
        None,
    )
    custom = await client.get("/v1/coalitions", params={"regional": "false"})
    assert [c["slug"] for c in custom.json()["items"]] == ["americas"]

    deleted = await client.delete(f"/v1/coalitions/{body['id']}", headers=headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(await client.get("/v1/coalitions/americas"), 404)
    assert_problem(await client.delete("/v1/coalitions/americas", headers=headers), 404)


async def test_coalition_names_and_slugs_are_unique(
    client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    headers = await headers_for(Role.admin)

    same_name = await client.post("/v1/coalitions", json={"name": "Europe"}, headers=headers)
    same_slug = await client.post(
        "/v1/coalitions", json={"name": "Europa", "slug": "europe"}, headers=headers
    )
    generated = await client.post("/v1/coalitions", json={"name": "Europe!"}, headers=headers)

    assert_problem(same_name, 409, "coalition-name-taken")
    assert_problem(same_slug, 409, "slug-taken")
    assert generated.status_code == 201
    assert generated.json()["slug"] == "europe-2"
    rename = await client.patch(
        f"/v1/coalitions/{generated.json()['id']}", json={"name": "South Asia"}, headers=headers
    )
    assert_problem(rename, 409, "coalition-name-taken")


async def test_regional_coalitions_cannot_be_deleted_or_renamed(
    client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    headers = await headers_for(Role.admin)

    for ref in ("europe", (await client.get("/v1/coalitions/east-asia")).json()["id"]):
        assert_problem(
            await client.delete(f"/v1/coalitions/{ref}", headers=headers), 409, "regional-coalition-protected"
        )
    for change in ({"name": "Europa"}, {"slug": "eu"}, {"region": "EU"}):
        response = await client.patch("/v1/coalitions/europe", json=change, headers=headers)
        assert_problem(response, 409, "regional-coalition-protected")
    described = await client.patch(
        "/v1/coalitions/europe",
        json={"name": "Europe", "description": "Clean Clothes Europe."},
        headers=headers,
    )
    assert described.status_code == 200, described.text
    assert described.json()["description"] == "Clean Clothes Europe."
    assert (await client.get("/v1/coalitions/europe")).status_code == 200


async def test_only_coordinators_and_admins_write_coalitions(
    client: httpx.AsyncClient, headers_for: HeadersFor
) -> None:
    assert_problem(await client.post("/v1/coalitions", json={"name": "X"}), 401)
    assert_problem(await client.patch("/v1/coalitions/europe", json={"description": "x"}), 401)
    for role in (Role.campaigner, Role.case_worker, Role.partner):
        headers = await headers_for(role)
        assert_problem(await client.post("/v1/coalitions", json={"name": "X"}, headers=headers), 403)
        assert_problem(await client.delete("/v1/coalitions/europe", headers=headers), 403)
    assert (await client.get("/v1/coalitions", params={"regional": "false"})).json()["total"] == 0


async def test_memberships_are_added_listed_and_removed(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    organisation = await make_organisation(db, name="Member Union")
    headers = await headers_for(Role.coordinator)
    path = f"/v1/coalitions/south-asia/members/{organisation.slug}"

    added = await client.put(path, json={"joined_on": "2019-05-01"}, headers=headers)
    again = await client.put(path, headers=headers)
    redated = await client.put(path, json={"joined_on": "2018-01-01"}, headers=headers)
    also = await client.put(f"/v1/coalitions/europe/members/{organisation.id}", headers=headers)

    assert added.status_code == 201, added.text
    assert added.json()["organisation_id"] == str(organisation.id)
    assert added.json()["joined_on"] == "2019-05-01"
    assert again.status_code == 200
    assert again.json()["joined_on"] == "2019-05-01"
    assert redated.json()["joined_on"] == "2018-01-01"
    assert also.status_code == 201
    members = (await client.get("/v1/coalitions/south-asia/members")).json()
    assert [m["id"] for m in members["items"]] == [str(organisation.id)]
    assert members["total"] == 1
    detail = (await client.get(f"/v1/organisations/{organisation.id}")).json()
    assert [c["slug"] for c in detail["coalitions"]] == ["europe", "south-asia"]

    removed = await client.delete(path, headers=headers)
    assert removed.status_code == 204
    assert_problem(await client.delete(path, headers=headers), 404, "membership-not-found")
    assert (await client.get("/v1/coalitions/south-asia/members")).json()["total"] == 0
    detail = (await client.get(f"/v1/organisations/{organisation.id}")).json()
    assert [c["slug"] for c in detail["coalitions"]] == ["europe"]


async def test_membership_errors(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    organisation = await make_organisation(db)
    headers = await headers_for(Role.admin)

    assert_problem(
        await client.put(f"/v1/coalitions/atlantis/members/{organisation.id}", headers=headers),
        404,
        "coalition-not-found",
    )
    assert_problem(
        await client.put("/v1/coalitions/europe/members/no-such-org", headers=headers),
        404,
        "organisation-not-found",
    )
    assert_problem(
        await client.put(
            f"/v1/coalitions/europe/members/{organisation.id}", json={"joined_on": "soon"}, headers=headers
        ),
        422,
    )
    assert_problem(await client.put(f"/v1/coalitions/europe/members/{organisation.id}"), 401)
    partner = await headers_for(Role.partner, organisation)
    assert_problem(await client.put(f"/v1/coalitions/europe/members/{organisation.id}", headers=partner), 403)
    assert_problem(await client.get("/v1/coalitions/atlantis/members"), 404, "coalition-not-found")


async def test_deleting_a_custom_coalition_removes_its_memberships_not_its_members(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    organisation = await make_organisation(db)
    headers = await headers_for(Role.coordinator)
    created = (await client.post("/v1/coalitions", json={"name": "Short Lived"}, headers=headers)).json()
    await client.put(f"/v1/coalitions/short-lived/members/{organisation.id}", headers=headers)
    await client.put(f"/v1/coalitions/europe/members/{organisation.id}", headers=headers)

    assert (await client.delete("/v1/coalitions/short-lived", headers=headers)).status_code == 204

    left = await db.scalar(
        select(func.count())
        .select_from(CoalitionMembership)
        .where(CoalitionMembership.coalition_id == uuid.UUID(created["id"]))
    )
    assert left == 0
    detail = (await client.get(f"/v1/organisations/{organisation.id}")).json()
    assert [c["slug"] for c in detail["coalitions"]] == ["europe"]


async def test_member_lists_hide_inactive_members_from_the_public(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    active = await make_organisation(db, name="A Active", country="NL")
    former = await make_organisation(db, name="B Former", status=MembershipStatus.former)
    headers = await headers_for(Role.coordinator)
    for organisation in (active, former):
        await client.put(f"/v1/coalitions/europe/members/{organisation.id}", headers=headers)

    public = (await client.get("/v1/coalitions/europe/members")).json()
    staff = (await client.get("/v1/coalitions/europe/members", headers=headers)).json()
    filtered = (
        await client.get(
            "/v1/coalitions/europe/members", params={"status": "former", "limit": 1}, headers=headers
        )
    ).json()

    assert [m["name"] for m in public["items"]] == ["A Active"]
    assert [m["name"] for m in staff["items"]] == ["A Active", "B Former"]
    assert (filtered["total"], [m["name"] for m in filtered["items"]]) == (1, ["B Former"])
    assert_problem(await client.get("/v1/coalitions/europe/members", params={"status": "former"}), 401)
    assert (await client.get("/v1/coalitions/europe/members", params={"country": "nl"})).json()["total"] == 1
