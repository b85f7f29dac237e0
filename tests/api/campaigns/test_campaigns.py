"""Campaigns over HTTP: create, read, change, visibility, languages, lifecycle, problems."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.users.models import Role
from tests.api.campaigns.helpers import new_campaign
from tests.api.network.helpers import HeadersFor, KeyFor, assert_problem
from tests.factories import make_organisation


@pytest.fixture
async def staff(headers_for: HeadersFor) -> dict[str, str]:
    return await headers_for(Role.campaigner)


async def _create(client: httpx.AsyncClient, headers: dict[str, str], **fields: object) -> dict[str, object]:
    response = await client.post("/v1/campaigns", json=new_campaign(**fields), headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def _publish(client: httpx.AsyncClient, headers: dict[str, str], ref: object) -> None:
    response = await client.post(f"/v1/campaigns/{ref}/publish", headers=headers)
    assert response.status_code == 200, response.text


async def test_create_and_read(client: httpx.AsyncClient, db: AsyncSession, staff: dict[str, str]) -> None:
    lead = await make_organisation(db)
    partner = await make_organisation(db)
    body = new_campaign(
        partners=[
            {"organisation": lead.slug, "role": "lead"},
            {"organisation": str(partner.id)},
        ]
    )
    response = await client.post("/v1/campaigns", json=body, headers=staff)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"/v1/campaigns/{created['id']}"
    assert created["slug"] == "pay-your-workers"
    assert created["status"] == "draft"
    assert created["language"] == "en"
    assert created["languages"] == ["en", "fr", "pt-BR"]
    assert created["title"] == "Pay Your Workers"
    assert created["demands"] == ["Pay the wages owed", "Sign a severance guarantee fund"]
    assert created["target_companies"] == ["Example Sportswear", "Another Brand"]
    assert [(p["organisation"]["slug"], p["role"]) for p in created["partners"]] == [
        (lead.slug, "lead"),
        (partner.slug, "partner"),
    ]
    assert created["published_at"] is None

    by_slug = await client.get("/v1/campaigns/pay-your-workers", headers=staff)
    by_id = await client.get(f"/v1/campaigns/{created['id']}", headers=staff)
    assert by_slug.json() == by_id.json() == created


async def test_generated_slugs_do_not_clash_and_given_ones_do(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    first = await _create(client, staff)
    second = await _create(client, staff)
    assert (first["slug"], second["slug"]) == ("pay-your-workers", "pay-your-workers-2")
    response = await client.post("/v1/campaigns", json=new_campaign(slug="pay-your-workers"), headers=staff)
    assert_problem(response, 409, "slug-taken")


async def test_public_sees_published_and_closed_only(
    client: httpx.AsyncClient, headers_for: HeadersFor, staff: dict[str, str], db: AsyncSession
) -> None:
    draft = await _create(client, staff, slug="draft-one")
    published = await _create(client, staff, slug="published-one")
    await _publish(client, staff, published["id"])
    closed = await _create(client, staff, slug="closed-one")
    await _publish(client, staff, closed["id"])
    assert (await client.post(f"/v1/campaigns/{closed['id']}/close", headers=staff)).status_code == 200
    archived = await _create(client, staff, slug="archived-one")
    assert (await client.post(f"/v1/campaigns/{archived['id']}/archive", headers=staff)).status_code == 200

    partner = await headers_for(Role.partner, await make_organisation(db))
    for headers in ({}, partner):
        listed = (await client.get("/v1/campaigns", headers=headers)).json()
        assert {c["slug"] for c in listed["items"]} == {"published-one", "closed-one"}
        assert listed["total"] == 2
        assert_problem(
            await client.get("/v1/campaigns/draft-one", headers=headers), 404, "campaign-not-found"
        )
        assert_problem(await client.get("/v1/campaigns/archived-one", headers=headers), 404)
        assert (await client.get("/v1/campaigns/closed-one", headers=headers)).status_code == 200
    assert_problem(await client.get("/v1/campaigns?status=draft"), 401, "unauthenticated")
    assert_problem(await client.get("/v1/campaigns?status=draft", headers=partner), 403, "staff-only")

    case_worker = await headers_for(Role.case_worker)
    everything = (await client.get("/v1/campaigns", headers=case_worker)).json()
    assert {c["slug"] for c in everything["items"]} == {
        "draft-one",
        "published-one",
        "closed-one",
        "archived-one",
    }
    drafts = (await client.get("/v1/campaigns?status=draft&status=archived", headers=staff)).json()
    assert {c["slug"] for c in drafts["items"]} == {"draft-one", "archived-one"}
    assert draft["status"] == "draft"


async def test_api_key_needs_a_campaign_scope_to_see_drafts(
    client: httpx.AsyncClient, api_key_for: KeyFor, staff: dict[str, str]
) -> None:
    await _create(client, staff, slug="secret-draft")
    without = await api_key_for(["organisations:read"])
    with_scope = await api_key_for(["campaigns:read"])
    assert_problem(await client.get("/v1/campaigns/secret-draft", headers=without), 404)
    assert (await client.get("/v1/campaigns/secret-draft", headers=with_scope)).status_code == 200
    # Writing needs campaigns:write.
    assert_problem(await client.post("/v1/campaigns", json=new_campaign(), headers=with_scope), 403)
    writer = await api_key_for(["campaigns:write"])
    assert (await client.post("/v1/campaigns", json=new_campaign(), headers=writer)).status_code == 201


async def test_language_selection(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    campaign = await _create(client, staff, slug="languages")
    await _publish(client, staff, campaign["id"])

    async def title(**kwargs: object) -> tuple[str, str]:
        response = await client.get("/v1/campaigns/languages", **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 200, response.text
        body = response.json()
        assert response.headers["content-language"] == body["language"]
        return body["language"], body["title"]

    assert await title() == ("en", "Pay Your Workers")
    assert await title(headers={"Accept-Language": "fr-CH, fr;q=0.9, en;q=0.8"}) == (
        "fr",
        "Payez vos travailleurs",
    )
    assert await title(headers={"Accept-Language": "de, en;q=0.5, fr;q=0.7"}) == (
        "fr",
        "Payez vos travailleurs",
    )
    assert await title(headers={"Accept-Language": "pt"}) == ("pt-BR", "Paguem seus trabalhadores")
    assert await title(headers={"Accept-Language": "fr;q=0, de"}) == ("en", "Pay Your Workers")
    assert await title(headers={"Accept-Language": "garbage;;q=x, *"}) == ("en", "Pay Your Workers")
    assert await title(params={"lang": "fr"}, headers={"Accept-Language": "en"}) == (
        "fr",
        "Payez vos travailleurs",
    )
    listed = (await client.get("/v1/campaigns", params={"lang": "pt-br"})).json()
    assert listed["items"][0]["title"] == "Paguem seus trabalhadores"
    assert listed["items"][0]["summary"] == ""
    assert_problem(await client.get("/v1/campaigns/languages", params={"lang": "xx-!!"}), 422)


async def test_staff_read_all_translations(
    client: httpx.AsyncClient, staff: dict[str, str], headers_for: HeadersFor
) -> None:
    campaign = await _create(client, staff)
    response = await client.get(f"/v1/campaigns/{campaign['slug']}/translations", headers=staff)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["default_language"] == "en"
    assert set(body["translations"]) == {"en", "fr", "pt-BR"}
    assert body["translations"]["fr"]["body"] == "# Payez"
    partner = await headers_for(Role.partner)
    assert_problem(await client.get(f"/v1/campaigns/{campaign['slug']}/translations", headers=partner), 403)
    assert_problem(await client.get(f"/v1/campaigns/{campaign['slug']}/translations"), 401)
    assert_problem(await client.get("/v1/campaigns/missing/translations", headers=staff), 404)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"default_language": "de"}, "body"),
        ({"default_language": "not a tag"}, "default_language"),
        ({"translations": {"en": {"title": "x"}, "en_US": {"title": "y"}}}, "translations"),
        ({"translations": {"en": {"title": "x"}, "EN": {"title": "y"}}}, "translations"),
        ({"translations": {"en": {"title": ""}}}, "title"),
        ({"translations": {}}, "translations"),
        ({"demands": [""]}, "demands"),
        ({"partners": [{"organisation": "a"}, {"organisation": "a"}]}, "partners"),
        ({"partners": [{"organisation": "a", "role": "boss"}]}, "role"),
        ({"slug": "Not A Slug"}, "slug"),
        ({"status": "published"}, "status"),
    ],
)
async def test_invalid_bodies_are_422(
    client: httpx.AsyncClient, staff: dict[str, str], fields: dict[str, object], field: str
) -> None:
    response = await client.post("/v1/campaigns", json=new_campaign(**fields), headers=staff)
    problem = assert_problem(response, 422, "validation-error")
    assert field in str(problem["errors"])


async def test_unknown_partner_organisation_is_404(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    response = await client.post(
        "/v1/campaigns", json=new_campaign(partners=[{"organisation": "nobody"}]), headers=staff
    )
    assert_problem(response, 404, "partner-organisation-not-found")


async def test_same_partner_by_id_and_slug_is_422(
    client: httpx.AsyncClient, db: AsyncSession, staff: dict[str, str]
) -> None:
    org = await make_organisation(db)
    partners = [{"organisation": org.slug}, {"organisation": str(org.id), "role": "lead"}]
    response = await client.post("/v1/campaigns", json=new_campaign(partners=partners), headers=staff)
    assert_problem(response, 422, "duplicate-partner")


async def test_update(client: httpx.AsyncClient, db: AsyncSession, staff: dict[str, str]) -> None:
    campaign = await _create(client, staff)
    org = await make_organisation(db)
    response = await client.patch(
        f"/v1/campaigns/{campaign['id']}",
        json={
            "demands": ["One demand"],
            "partners": [{"organisation": org.slug, "role": "lead"}],
            "default_language": "fr",
            "slug": "new-slug",
        },
        headers=staff,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["demands"] == ["One demand"]
    assert body["partners"][0]["organisation"]["id"] == str(org.id)
    assert (body["default_language"], body["language"], body["slug"]) == ("fr", "fr", "new-slug")
    assert body["target_companies"] == campaign["target_companies"]

    # Translations without the default language, or a new default without a translation: 422.
    assert_problem(
        await client.patch(
            "/v1/campaigns/new-slug", json={"translations": {"en": {"title": "Only English"}}}, headers=staff
        ),
        422,
        "default-language-missing",
    )
    assert_problem(
        await client.patch("/v1/campaigns/new-slug", json={"default_language": "de"}, headers=staff),
        422,
        "default-language-missing",
    )
    assert_problem(await client.patch("/v1/campaigns/new-slug", json={"slug": None}, headers=staff), 422)
    assert_problem(await client.patch("/v1/campaigns/missing", json={}, headers=staff), 404)
    # Filters: partner organisation and text.
    assert (await client.get(f"/v1/campaigns?organisation={org.slug}", headers=staff)).json()["total"] == 1
    assert (await client.get(f"/v1/campaigns?organisation={org.id}", headers=staff)).json()["total"] == 1
    assert (await client.get("/v1/campaigns?q=PAYEZ", headers=staff)).json()["total"] == 1
    assert (await client.get("/v1/campaigns?q=another brand", headers=staff)).json()["total"] == 1
    assert (await client.get("/v1/campaigns?q=nothing-like-this", headers=staff)).json()["total"] == 0


async def test_lifecycle(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    campaign = await _create(client, staff)
    ref = campaign["slug"]
    assert_problem(await client.post(f"/v1/campaigns/{ref}/close", headers=staff), 409, "invalid-transition")

    published = (await client.post(f"/v1/campaigns/{ref}/publish", headers=staff)).json()
    assert published["status"] == "published"
    assert published["published_at"] is not None
    assert_problem(
        await client.post(f"/v1/campaigns/{ref}/publish", headers=staff), 409, "invalid-transition"
    )
    assert_problem(
        await client.post(f"/v1/campaigns/{ref}/archive", headers=staff), 409, "invalid-transition"
    )

    closed = (await client.post(f"/v1/campaigns/{ref}/close", headers=staff)).json()
    assert closed["status"] == "closed"
    assert closed["closed_at"] >= closed["published_at"]

    archived = (await client.post(f"/v1/campaigns/{ref}/archive", headers=staff)).json()
    assert archived["status"] == "archived"
    assert archived["archived_at"] is not None
    for verb in ("publish", "close", "archive"):
        assert_problem(await client.post(f"/v1/campaigns/{ref}/{verb}", headers=staff), 409)
    assert_problem(
        await client.patch(f"/v1/campaigns/{ref}", json={"demands": []}, headers=staff),
        409,
        "campaign-archived",
    )
    assert_problem(await client.post("/v1/campaigns/missing/publish", headers=staff), 404)


async def test_pagination(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    for n in range(5):
        await _create(client, staff, slug=f"page-{n}")
    first = (await client.get("/v1/campaigns?limit=2", headers=staff)).json()
    rest = (await client.get("/v1/campaigns?limit=10&offset=2", headers=staff)).json()
    assert (first["total"], first["limit"], first["offset"]) == (5, 2, 0)
    slugs = [c["slug"] for c in first["items"] + rest["items"]]
    assert sorted(slugs) == [f"page-{n}" for n in range(5)]
    assert_problem(await client.get("/v1/campaigns?limit=0"), 422)


async def test_targets_are_companies_of_the_registry(
    client: httpx.AsyncClient, staff: dict[str, str]
) -> None:
    """Targets by id or slug; names (deprecated) name the company of that name, or make a new one."""
    known = (
        await client.post("/v1/companies", json={"name": "H&M", "kind": "retailer"}, headers=staff)
    ).json()
    other = (await client.post("/v1/companies", json={"name": "Zalando"}, headers=staff)).json()
    body = new_campaign(targets=[other["id"]], target_companies=["h & m", "New Brand", "zalando"])
    created = await client.post("/v1/campaigns", json=body, headers=staff)
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert [t["slug"] for t in campaign["targets"]] == ["zalando", "h-m", "new-brand"]  # each once
    assert campaign["target_companies"] == ["Zalando", "H&M", "New Brand"]
    assert campaign["targets"][1]["id"] == known["id"]
    new = (await client.get("/v1/companies/new-brand")).json()
    assert (new["name"], new["kind"]) == ("New Brand", None)
    # search by a target's name or alias
    await client.patch("/v1/companies/zalando", json={"aliases": ["Zalándo SE"]}, headers=staff)
    found = (await client.get("/v1/campaigns", params={"q": "zalando se"}, headers=staff)).json()
    assert [c["id"] for c in found["items"]] == [campaign["id"]]
    # replacing the targets; names alone replace them too
    response = await client.patch(f"/v1/campaigns/{campaign['id']}", json={"targets": ["h-m"]}, headers=staff)
    assert response.json()["target_companies"] == ["H&M"]
    response = await client.patch(
        f"/v1/campaigns/{campaign['id']}", json={"target_companies": ["Zalando"]}, headers=staff
    )
    assert [t["slug"] for t in response.json()["targets"]] == ["zalando"]
    response = await client.patch(
        f"/v1/campaigns/{campaign['id']}", json={"targets": ["no-such"]}, headers=staff
    )
    assert_problem(response, 422, "target-company-not-found")
    response = await client.post("/v1/campaigns", json=new_campaign(targets=["no-such"]), headers=staff)
    assert_problem(response, 422, "target-company-not-found")
