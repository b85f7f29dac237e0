"""Staff tools for signatures: listing with filters, CSV export, bulk invalidation and its revert."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.campaigns.models import CountPolicy
from services.core.signatures.models import Channel
from services.core.users.models import Role
from tests.api.network.helpers import HeadersFor, KeyFor
from tests.api.signatures.conftest import RunPipeline
from tests.factories import make_organisation, make_petition, make_signature


async def _count(client: httpx.AsyncClient, slug: str) -> int:
    response = await client.get(f"/v1/petitions/{slug}/count")
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


async def test_list_filters(client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor) -> None:
    petition = await make_petition(db)
    other_petition = await make_petition(db)
    org = await make_organisation(db)
    a = await make_signature(db, petition, name="Rahima Akter", email="rahima@spam.org", country="BD")
    b = await make_signature(
        db, petition, name="Anna 100%", email="anna@example.org", country="KH", organisation_id=org.id
    )
    c = await make_signature(
        db, petition, name="Kim", email="kim@SPAM.org", country="BD", channel=Channel.import_, source="paper"
    )
    await make_signature(db, other_petition, name="Rahima Akter", email="rahima@spam.org")
    headers = await headers_for(Role.campaigner)
    await db.commit()

    async def ids(**params: str) -> list[str]:
        response = await client.get(
            f"/v1/petitions/{petition.slug}/signatures", params=params, headers=headers
        )
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    everything = await client.get(f"/v1/petitions/{petition.id}/signatures", headers=headers)
    page = everything.json()
    assert page["total"] == 3
    assert [i["id"] for i in page["items"]] == [str(c.id), str(b.id), str(a.id)]  # newest first
    item = page["items"][1]
    assert (item["name"], item["email"], item["country"], item["partner"], item["state"]) == (
        "Anna 100%",
        "anna@example.org",
        "KH",
        org.slug,
        "new",
    )
    assert item["invalidated"] is False
    assert item["erased"] is False
    assert await ids(country="BD") == [str(c.id), str(a.id)]
    assert await ids(partner=org.slug) == [str(b.id)]
    assert await ids(channel="import") == [str(c.id)]
    assert await ids(email_domain="Spam.Org") == [str(c.id), str(a.id)]
    assert await ids(q="RAHIMA") == [str(a.id)]
    assert await ids(q="100%") == [str(b.id)]
    assert await ids(q="%") == [str(b.id)]  # LIKE wildcards are literal
    assert await ids(state="unique") == []
    assert await ids(invalidated="true") == []
    assert await ids(created_after=b.created_at.isoformat()) == [str(c.id), str(b.id)]
    assert await ids(created_before=b.created_at.isoformat()) == [str(a.id)]
    paged = await client.get(
        f"/v1/petitions/{petition.slug}/signatures", params={"limit": 1, "offset": 1}, headers=headers
    )
    assert [i["id"] for i in paged.json()["items"]] == [str(b.id)]
    assert paged.json()["total"] == 3
    missing = await client.get("/v1/petitions/no-such-petition/signatures", headers=headers)
    assert missing.status_code == 404


async def test_erased_signatures_show_no_personal_data(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    petition = await make_petition(db)
    await make_signature(db, petition, name="Jane", postal_code="1212", erased_at=datetime.now(UTC))
    headers = await headers_for(Role.admin)
    await db.commit()
    response = await client.get(f"/v1/petitions/{petition.slug}/signatures", headers=headers)
    item = response.json()["items"][0]
    assert (item["name"], item["email"], item["postal_code"], item["erased"]) == (None, None, None, True)


async def test_partners_see_and_export_only_their_own(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor, api_key_for: KeyFor
) -> None:
    petition = await make_petition(db)
    mine, theirs = await make_organisation(db), await make_organisation(db)
    own = await make_signature(db, petition, email="own@example.org", organisation_id=mine.id)
    await make_signature(db, petition, email="theirs@example.org", organisation_id=theirs.id)
    await make_signature(db, petition, email="nobody@example.org")
    partner = await headers_for(Role.partner, mine)
    key = await api_key_for(["signatures:read"], mine)
    await db.commit()
    for headers in (partner, key):
        listed = await client.get(f"/v1/petitions/{petition.slug}/signatures", headers=headers)
        assert listed.status_code == 200, listed.text
        assert [i["id"] for i in listed.json()["items"]] == [str(own.id)]
        # Asking for another partner's signatures gives nothing, not theirs.
        other = await client.get(
            f"/v1/petitions/{petition.slug}/signatures", params={"partner": theirs.slug}, headers=headers
        )
        assert other.json()["total"] == 0
        exported = await client.get(f"/v1/petitions/{petition.slug}/signatures.csv", headers=headers)
        assert exported.status_code == 200, exported.text
        assert "theirs@example.org" not in exported.text
        assert "nobody@example.org" not in exported.text
        assert "own@example.org" in exported.text
    no_scope = await api_key_for(["petitions:read"], mine)
    await db.commit()
    refused = await client.get(f"/v1/petitions/{petition.slug}/signatures", headers=no_scope)
    assert refused.status_code == 403


async def test_partners_do_not_see_petitions_of_draft_campaigns(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    from services.core.campaigns.models import CampaignStatus

    petition = await make_petition(db, campaign_status=CampaignStatus.draft)
    org = await make_organisation(db)
    partner = await headers_for(Role.partner, org)
    coordinator = await headers_for(Role.coordinator)
    await db.commit()
    assert (await client.get(f"/v1/petitions/{petition.slug}/signatures", headers=partner)).status_code == 404
    assert (
        await client.get(f"/v1/petitions/{petition.slug}/signatures", headers=coordinator)
    ).status_code == 200


async def test_csv_export(client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor) -> None:
    petition = await make_petition(db)
    org = await make_organisation(db)
    await make_signature(db, petition, name="=HYPERLINK(1)", email="a@example.org", organisation_id=org.id)
    await make_signature(db, petition, name='Jane "JD", Doe', email="b@example.org", postal_code="1212")
    await make_signature(db, petition, name="Kim", email="c@other.org")
    headers = await headers_for(Role.coordinator)
    await db.commit()
    response = await client.get(
        f"/v1/petitions/{petition.slug}/signatures.csv",
        params={"email_domain": "example.org"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == f'attachment; filename="signatures-{petition.slug}.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == [
        "id",
        "created_at",
        "name",
        "email",
        "country",
        "postal_code",
        "language",
        "opt_in",
        "partner",
        "source",
        "channel",
        "state",
        "duplicate_of",
        "confirmed_at",
        "invalidated",
        "attested",
    ]
    assert [(r["name"], r["email"], r["partner"], r["postal_code"]) for r in rows] == [
        ('Jane "JD", Doe', "b@example.org", "", "1212"),
        ("'=HYPERLINK(1)", "a@example.org", org.slug, ""),
    ]
    assert rows[0]["opt_in"] == "false"
    assert rows[0]["invalidated"] == "false"
    assert rows[0]["channel"] == "web"
    assert rows[0]["attested"] == "false"


async def test_csv_export_streams_many_rows(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    petition = await make_petition(db)
    for n in range(2500):
        await make_signature(db, petition, email=f"p{n}@example.org")
    headers = await headers_for(Role.admin)
    await db.commit()
    response = await client.get(f"/v1/petitions/{petition.slug}/signatures.csv", headers=headers)
    assert response.status_code == 200
    assert len(list(csv.reader(io.StringIO(response.text)))) == 2501


async def test_invalidation_and_revert_change_the_count(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor, run_pipeline: RunPipeline
) -> None:
    petition = await make_petition(db, count_policy=CountPolicy.all_unique)
    for n in range(3):
        await make_signature(db, petition, email=f"bot{n}@spam.org", ip_hash="ab" * 32)
    await make_signature(db, petition, email="real@example.org", ip_hash="cd" * 32)
    other = await make_petition(db, count_policy=CountPolicy.all_unique)
    await make_signature(db, other, email="bot@spam.org")
    headers = await headers_for(Role.coordinator)
    await db.commit()
    await run_pipeline()
    assert await _count(client, petition.slug) == 4

    response = await client.post(
        f"/v1/petitions/{petition.slug}/invalidations",
        json={"reason": "bot wave", "email_domain": "SPAM.org"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    invalidation = response.json()
    assert invalidation["signatures"] == 3
    assert invalidation["filters"] == {"email_domain": "spam.org"}
    assert invalidation["reason"] == "bot wave"
    assert invalidation["reverted_at"] is None
    assert invalidation["created_by"] is not None
    await run_pipeline()
    assert await _count(client, petition.slug) == 1
    assert await _count(client, other.slug) == 1  # other petitions untouched

    # Already invalidated signatures are not taken again.
    again = await client.post(
        f"/v1/petitions/{petition.slug}/invalidations",
        json={"reason": "same ip", "ip_hash": "ab" * 32},
        headers=headers,
    )
    assert again.status_code == 201
    assert again.json()["signatures"] == 0

    listed = await client.get(
        f"/v1/petitions/{petition.slug}/signatures", params={"invalidated": "true"}, headers=headers
    )
    assert listed.json()["total"] == 3
    history = await client.get(f"/v1/petitions/{petition.slug}/invalidations", headers=headers)
    # Newest first; both were made in the test's one transaction, so at the same now().
    assert {i["id"] for i in history.json()["items"]} == {again.json()["id"], invalidation["id"]}

    reverted = await client.post(f"/v1/invalidations/{invalidation['id']}/revert", headers=headers)
    assert reverted.status_code == 200, reverted.text
    assert reverted.json()["reverted_at"] is not None
    assert reverted.json()["reverted_by"] is not None
    await run_pipeline()
    assert await _count(client, petition.slug) == 4

    twice = await client.post(f"/v1/invalidations/{invalidation['id']}/revert", headers=headers)
    assert twice.status_code == 409
    assert twice.json()["code"] == "invalidation-already-reverted"
    unknown = await client.post(f"/v1/invalidations/{petition.id}/revert", headers=headers)
    assert unknown.status_code == 404


async def test_invalidation_by_time_window_and_source(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    petition = await make_petition(db)
    early = await make_signature(db, petition, source="utm_source=x")
    late = await make_signature(db, petition, source="utm_source=x")
    await make_signature(db, petition, source="other")
    headers = await headers_for(Role.admin)
    await db.commit()
    response = await client.post(
        f"/v1/petitions/{petition.slug}/invalidations",
        json={
            "reason": "campaign link leaked",
            "source": "utm_source=x",
            "created_after": (late.created_at).isoformat(),
            "created_before": (late.created_at + timedelta(seconds=1)).isoformat(),
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["signatures"] == 1
    listed = await client.get(
        f"/v1/petitions/{petition.slug}/signatures", params={"invalidated": "true"}, headers=headers
    )
    assert [i["id"] for i in listed.json()["items"]] == [str(late.id)]
    assert early.id != late.id


async def test_invalidation_needs_a_filter_and_a_reason(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    petition = await make_petition(db)
    headers = await headers_for(Role.coordinator)
    await db.commit()
    for body in (
        {"reason": "no filter"},
        {"email_domain": "spam.org"},
        {"reason": "", "source": "x"},
        {"reason": "x", "email_domain": "not a domain"},
    ):
        response = await client.post(
            f"/v1/petitions/{petition.slug}/invalidations", json=body, headers=headers
        )
        assert response.status_code == 422, (body, response.text)


async def test_campaigners_and_partners_may_not_invalidate(
    client: httpx.AsyncClient, db: AsyncSession, headers_for: HeadersFor
) -> None:
    petition = await make_petition(db)
    org = await make_organisation(db)
    for headers in (await headers_for(Role.campaigner), await headers_for(Role.partner, org)):
        await db.commit()
        response = await client.post(
            f"/v1/petitions/{petition.slug}/invalidations",
            json={"reason": "x", "email_domain": "spam.org"},
            headers=headers,
        )
        assert response.status_code == 403
