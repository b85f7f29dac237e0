"""GET /v1/network/stats: active organisations and countries, overall and per coalition."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.core.network.models import Coalition, CoalitionMembership, MembershipStatus
from tests.factories import make_organisation


async def test_stats_count_active_members_and_their_countries(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    coalitions = {c.slug: c for c in await db.scalars(select(Coalition))}
    custom = Coalition(name="Sportswear Alliance", slug="sportswear")
    db.add(custom)
    await db.flush()
    bd1 = await make_organisation(db, country="BD")
    bd2 = await make_organisation(db, country="BD")
    india = await make_organisation(db, country="IN")
    dutch = await make_organisation(db, country="NL")
    cambodia = await make_organisation(db, country="KH")
    # Not counted anywhere: not active.
    suspended_de = await make_organisation(db, country="DE", status=MembershipStatus.suspended)
    former_lk = await make_organisation(db, country="LK", status=MembershipStatus.former)
    memberships = {
        "south-asia": [bd1, bd2, india, former_lk],
        "europe": [dutch, suspended_de, bd1],
        "sportswear": [bd2, dutch, cambodia],
    }
    coalitions["sportswear"] = custom
    for slug, members in memberships.items():
        db.add_all(
            CoalitionMembership(coalition_id=coalitions[slug].id, organisation_id=o.id) for o in members
        )
    await db.flush()

    response = await client.get("/v1/network/stats")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["organisations"], body["countries"]) == (5, 4)  # BD, IN, NL, KH
    per: dict[str, Any] = {c["slug"]: c for c in body["coalitions"]}
    figures = {slug: (c["organisations"], c["countries"]) for slug, c in per.items()}
    assert figures == {
        "south-asia": (3, 2),
        "europe": (2, 2),
        "sportswear": (3, 3),
        "east-asia": (0, 0),
        "south-east-asia": (0, 0),
    }
    assert per["sportswear"]["is_regional"] is False
    assert per["europe"]["is_regional"] is True
    assert [c["name"] for c in body["coalitions"]] == sorted(c["name"] for c in body["coalitions"])


async def test_stats_of_an_empty_network(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/network/stats")).json()

    assert (body["organisations"], body["countries"]) == (0, 0)
    assert {c["slug"]: c["organisations"] for c in body["coalitions"]} == {
        "east-asia": 0,
        "europe": 0,
        "south-asia": 0,
        "south-east-asia": 0,
    }
