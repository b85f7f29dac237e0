"""Petitions over HTTP: create, read, change, consent versions, visibility, languages, problems."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.core.users.models import Role
from tests.api.campaigns.helpers import new_campaign, new_petition
from tests.api.network.helpers import HeadersFor, KeyFor, assert_problem


@pytest.fixture
async def staff(headers_for: HeadersFor) -> dict[str, str]:
    return await headers_for(Role.coordinator)


async def _campaign(client: httpx.AsyncClient, headers: dict[str, str], slug: str, *, publish: bool) -> None:
    response = await client.post("/v1/campaigns", json=new_campaign(slug=slug), headers=headers)
    assert response.status_code == 201, response.text
    if publish:
        assert (await client.post(f"/v1/campaigns/{slug}/publish", headers=headers)).status_code == 200


async def _petition(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/petitions", json=new_petition(**fields), headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_and_read(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    await _campaign(client, staff, "pay-up", publish=True)
    response = await client.post(
        "/v1/petitions",
        json=new_petition(
            "pay-up",
            count_policy="all_unique",
            email_required=False,
            opens_at="2020-01-01T00:00:00Z",
            closes_at="2999-01-01T00:00:00Z",
        ),
        headers=staff,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"/v1/petitions/{created['id']}"
    assert created["slug"] == "sign-for-the-workers"
    assert created["campaign"]["slug"] == "pay-up"
    assert created["campaign"]["status"] == "published"
    assert (created["goal"], created["consent_version"]) == (10_000, 1)
    assert (created["count_policy"], created["email_required"]) == ("all_unique", False)
    assert created["languages"] == ["de", "en"]
    assert created["is_open"] is True

    public = await client.get("/v1/petitions/sign-for-the-workers", headers={"Accept-Language": "de-AT"})
    assert public.status_code == 200, public.text
    assert (public.json()["language"], public.json()["title"]) == ("de", "Unterschreiben")
    assert public.headers["content-language"] == "de"
    by_id = await client.get(f"/v1/petitions/{created['id']}")
    assert by_id.json()["title"] == "Sign for the workers"


async def test_visibility_follows_the_campaign(
    client: httpx.AsyncClient, staff: dict[str, str], headers_for: HeadersFor, api_key_for: KeyFor
) -> None:
    await _campaign(client, staff, "hidden", publish=False)
    await _campaign(client, staff, "shown", publish=True)
    await _petition(client, staff, campaign="hidden", slug="hidden-petition")
    await _petition(client, staff, campaign="shown", slug="shown-petition")

    partner = await headers_for(Role.partner)
    for headers in ({}, partner, await api_key_for(["campaigns:read"])):
        listed = (await client.get("/v1/petitions", headers=headers)).json()
        assert [p["slug"] for p in listed["items"]] == ["shown-petition"]
        assert_problem(
            await client.get("/v1/petitions/hidden-petition", headers=headers), 404, "petition-not-found"
        )
    for headers in (staff, await api_key_for(["petitions:read"])):
        listed = (await client.get("/v1/petitions", headers=headers)).json()
        assert {p["slug"] for p in listed["items"]} == {"shown-petition", "hidden-petition"}
        hidden = (await client.get("/v1/petitions/hidden-petition", headers=headers)).json()
        assert hidden["is_open"] is False  # its campaign is a draft
    only_shown = (await client.get("/v1/petitions?campaign=shown", headers=staff)).json()
    assert [p["slug"] for p in only_shown["items"]] == ["shown-petition"]
    assert (await client.get("/v1/petitions?q=HIDDEN-pet", headers=staff)).json()["total"] == 1
    assert (await client.get("/v1/petitions?campaign=x--", headers=staff)).json()["total"] == 0


async def test_consent_versions(
    client: httpx.AsyncClient, staff: dict[str, str], headers_for: HeadersFor
) -> None:
    await _campaign(client, staff, "consent", publish=True)
    petition = await _petition(client, staff, campaign="consent", slug="consent-petition")
    ref = "/v1/petitions/consent-petition"

    same = await client.patch(ref, json={"consent_text": petition["consent_text"]}, headers=staff)
    assert same.json()["consent_version"] == 1  # unchanged text: no new version
    changed = await client.patch(ref, json={"consent_text": "New terms."}, headers=staff)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["consent_version"], changed.json()["consent_text"]) == (2, "New terms.")
    other = await client.patch(ref, json={"goal": None, "email_required": False}, headers=staff)
    assert (other.json()["consent_version"], other.json()["goal"]) == (2, None)

    versions = await client.get(f"{ref}/consent-versions", headers=staff)
    assert versions.status_code == 200, versions.text
    assert [(v["version"], v["text"]) for v in versions.json()] == [
        (2, "New terms."),
        (1, petition["consent_text"]),
    ]
    assert_problem(await client.get(f"{ref}/consent-versions"), 401)
    assert_problem(await client.get(f"{ref}/consent-versions", headers=await headers_for(Role.partner)), 403)
    assert_problem(await client.get("/v1/petitions/missing/consent-versions", headers=staff), 404)


async def test_translations_and_update(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    await _campaign(client, staff, "texts", publish=False)
    await _petition(client, staff, campaign="texts", slug="texts-petition")
    all_texts = (await client.get("/v1/petitions/texts-petition/translations", headers=staff)).json()
    assert all_texts == {
        "default_language": "en",
        "translations": {"en": {"title": "Sign for the workers"}, "de": {"title": "Unterschreiben"}},
    }
    response = await client.patch(
        "/v1/petitions/texts-petition",
        json={"translations": {"es": {"title": "Firma"}}, "default_language": "es"},
        headers=staff,
    )
    assert response.status_code == 200, response.text
    assert (response.json()["title"], response.json()["languages"]) == ("Firma", ["es"])
    assert_problem(
        await client.patch("/v1/petitions/texts-petition", json={"default_language": "en"}, headers=staff),
        422,
        "default-language-missing",
    )


async def test_problems(client: httpx.AsyncClient, staff: dict[str, str]) -> None:
    assert_problem(
        await client.post("/v1/petitions", json=new_petition("missing"), headers=staff),
        404,
        "campaign-not-found",
    )
    await _campaign(client, staff, "problems", publish=True)
    await _petition(client, staff, campaign="problems", slug="taken")
    assert_problem(
        await client.post("/v1/petitions", json=new_petition("problems", slug="taken"), headers=staff),
        409,
        "slug-taken",
    )
    for fields in (
        {"count_policy": "everyone"},
        {"goal": 0},
        {"consent_text": " "},
        {"opens_at": "2030-01-02T00:00:00Z", "closes_at": "2030-01-01T00:00:00Z"},
        {"default_language": "fr"},
    ):
        response = await client.post("/v1/petitions", json=new_petition("problems", **fields), headers=staff)
        assert_problem(response, 422, "validation-error")
    window = await client.patch(
        "/v1/petitions/taken",
        json={"closes_at": "2030-01-01T00:00:00Z"},
        headers=staff,
    )
    assert window.status_code == 200, window.text
    assert_problem(
        await client.patch("/v1/petitions/taken", json={"opens_at": "2031-01-01T00:00:00Z"}, headers=staff),
        422,
        "invalid-signing-window",
    )
    assert_problem(await client.patch("/v1/petitions/taken", json={"consent_text": None}, headers=staff), 422)
    assert_problem(await client.patch("/v1/petitions/missing", json={}, headers=staff), 404)

    # An archived campaign's petitions no longer change, and it gets no new ones.
    await client.post("/v1/campaigns/problems/close", headers=staff)
    await client.post("/v1/campaigns/problems/archive", headers=staff)
    assert_problem(
        await client.patch("/v1/petitions/taken", json={"goal": 5}, headers=staff), 409, "campaign-archived"
    )
    assert_problem(
        await client.post("/v1/petitions", json=new_petition("problems"), headers=staff),
        409,
        "campaign-archived",
    )
