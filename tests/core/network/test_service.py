"""The network directory's service rules and queries, without HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.core.db.unique import escape_like
from services.core.errors import Forbidden, Unauthenticated
from services.core.network import policy, repository, service
from services.core.network.errors import (
    FieldNotEditable,
    NotYourOrganisation,
    RegionalCoalitionProtected,
    SlugTaken,
    StaffOnly,
)
from services.core.network.models import CoalitionMembership, MembershipStatus
from services.core.network.schemas import (
    CoalitionCreate,
    OrganisationCreate,
    OrganisationFilters,
    OrganisationUpdate,
)
from services.core.refs import Ref
from services.core.users.models import Role
from services.core.users.security import Principal
from tests.factories import make_organisation


def principal(
    role: Role,
    *,
    kind: Literal["user", "api_key"] = "user",
    org: uuid.UUID | None = None,
    scopes: frozenset[str] = frozenset(),
) -> Principal:
    return Principal(kind=kind, id=uuid.uuid4(), role=role, organisation_id=org, scopes=scopes)


COORDINATOR = principal(Role.coordinator)


@contextmanager
def count_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []
    sync_engine = engine.sync_engine

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(sync_engine, "before_cursor_execute", record)


@pytest.mark.parametrize(
    ("text", "escaped"),
    [("plain", "plain"), ("100%", "100\\%"), ("a_b", "a\\_b"), ("back\\slash", "back\\\\slash")],
)
def test_escape_like(text: str, escaped: str) -> None:
    assert escape_like(text) == escaped


@pytest.mark.parametrize(
    ("who", "all_statuses", "own"),
    [
        (None, False, None),
        (principal(Role.admin), True, None),
        (principal(Role.campaigner), True, None),
        (principal(Role.case_worker), True, None),
        # An API key sees the staff view only with an organisations scope.
        (principal(Role.coordinator, kind="api_key"), False, None),
        (principal(Role.coordinator, kind="api_key", scopes=frozenset({"organisations:read"})), True, None),
    ],
)
def test_directory_views(who: Principal | None, all_statuses: bool, own: uuid.UUID | None) -> None:
    view = policy.DirectoryView.of(who)
    assert (view.all_statuses, view.own_organisation) == (all_statuses, own)


def test_a_partner_sees_its_own_organisation() -> None:
    org = uuid.uuid4()
    assert policy.DirectoryView.of(principal(Role.partner, org=org)) == policy.DirectoryView(
        own_organisation=org
    )


async def test_create_generates_unique_slugs(db: AsyncSession) -> None:
    data = OrganisationCreate(name="Clean Clothes Campaign — Türkiye", kind="ngo", country="tr")

    first = await service.create_organisation(db, COORDINATOR, data)
    second = await service.create_organisation(db, COORDINATOR, data)

    assert first.slug == "clean-clothes-campaign-turkiye"
    assert second.slug == "clean-clothes-campaign-turkiye-2"
    assert first.country == "TR"


async def test_generated_slugs_fit_the_column(db: AsyncSession) -> None:
    data = OrganisationCreate(name="Garment " * 25, kind="ngo", country="IN")

    slugs = [(await service.create_organisation(db, COORDINATOR, data)).slug for _ in range(2)]

    assert all(len(s) <= 100 for s in slugs)
    assert slugs[1] == f"{slugs[0]}-2"


async def test_a_duplicate_slug_is_a_conflict_and_the_session_stays_usable(db: AsyncSession) -> None:
    existing = await make_organisation(db)
    data = OrganisationCreate(name="Copy", slug=existing.slug, kind="ngo", country="BD")

    with pytest.raises(SlugTaken):
        await service.create_organisation(db, COORDINATOR, data)

    fine = await service.create_organisation(db, COORDINATOR, data.model_copy(update={"slug": None}))
    assert fine.slug == "copy"


async def test_only_editors_create(db: AsyncSession) -> None:
    data = OrganisationCreate(name="X", kind="ngo", country="BD")
    for role in (Role.campaigner, Role.case_worker, Role.partner):
        with pytest.raises(Forbidden):
            await service.create_organisation(db, principal(role, org=uuid.uuid4()), data)
    with pytest.raises(Forbidden):
        await service.create_coalition(db, principal(Role.campaigner), CoalitionCreate(name="X"))


async def test_partner_update_rules(db: AsyncSession) -> None:
    own = await make_organisation(db)
    other = await make_organisation(db)
    partner = principal(Role.partner, kind="api_key", org=own.id, scopes=frozenset({"organisations:write"}))

    updated = await service.update_organisation(
        db, partner, Ref.parse(own.slug), OrganisationUpdate(city="Gazipur")
    )
    assert updated.city == "Gazipur"
    with pytest.raises(FieldNotEditable):
        await service.update_organisation(
            db, partner, Ref.parse(own.slug), OrganisationUpdate(joined_on=None)
        )
    with pytest.raises(NotYourOrganisation):
        await service.update_organisation(db, partner, Ref.of_id(other.id), OrganisationUpdate(city="x"))
    with pytest.raises(NotYourOrganisation):
        await service.update_organisation(
            db, principal(Role.campaigner), Ref.parse(own.slug), OrganisationUpdate(city="x")
        )


async def test_status_filters_need_staff(db: AsyncSession) -> None:
    filters = OrganisationFilters(statuses=(MembershipStatus.suspended,))
    with pytest.raises(Unauthenticated):
        await service.list_organisations(db, None, filters, limit=10, offset=0)
    with pytest.raises(StaffOnly):
        await service.list_organisations(
            db, principal(Role.partner, org=uuid.uuid4()), filters, limit=10, offset=0
        )
    active_only = OrganisationFilters(statuses=(MembershipStatus.active,))
    assert (await service.list_organisations(db, None, active_only, limit=10, offset=0)).total == 0


async def test_regional_coalitions_are_protected(db: AsyncSession) -> None:
    with pytest.raises(RegionalCoalitionProtected):
        await service.delete_coalition(db, COORDINATOR, Ref.parse("south-east-asia"))
    assert (await service.get_coalition(db, Ref.parse("south-east-asia"))).is_regional


async def test_membership_upsert_is_idempotent(db: AsyncSession) -> None:
    organisation = await make_organisation(db)
    europe = await repository.get_coalition(db, Ref.parse("europe"))
    assert europe is not None

    first, created = await repository.upsert_membership(
        db, europe.id, organisation.id, joined_on_given=False, joined_on=None
    )
    again, created_again = await repository.upsert_membership(
        db, europe.id, organisation.id, joined_on_given=False, joined_on=None
    )

    assert (created, created_again) == (True, False)
    assert (first.coalition_id, first.organisation_id) == (again.coalition_id, again.organisation_id)


async def test_stats_take_two_queries_whatever_the_size(db: AsyncSession, engine: AsyncEngine) -> None:
    europe = await repository.get_coalition(db, Ref.parse("europe"))
    assert europe is not None
    for country in ("NL", "BE", "DE", "NL"):
        organisation = await make_organisation(db, country=country)
        db.add(CoalitionMembership(coalition_id=europe.id, organisation_id=organisation.id))
    await db.flush()

    with count_statements(engine) as statements:
        stats = await service.network_stats(db)

    assert len(statements) == 2
    assert (stats.organisations, stats.countries) == (4, 3)
    figures = {c.slug: (c.organisations, c.countries) for c in stats.coalitions}
    assert figures["europe"] == (4, 3)


async def test_listing_a_page_takes_three_queries(db: AsyncSession, engine: AsyncEngine) -> None:
    europe = await repository.get_coalition(db, Ref.parse("europe"))
    assert europe is not None
    for _ in range(5):
        organisation = await make_organisation(db)
        db.add(CoalitionMembership(coalition_id=europe.id, organisation_id=organisation.id))
    await db.flush()

    with count_statements(engine) as statements:
        page = await service.list_organisations(db, None, OrganisationFilters(), limit=50, offset=0)

    assert page.total == 5
    assert all(o.coalitions[0].slug == "europe" for o in page.items)
    assert len(statements) == 3  # count, page, the page's coalitions
