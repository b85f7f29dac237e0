"""The network directory: organisations, coalitions, memberships and figures.

Who may do what is written in ``policy``.

Services take the session first and never commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from services.core.db.unique import free_slug, save_unique
from services.core.network import policy, repository
from services.core.network.errors import (
    CoalitionNameTaken,
    CoalitionNotFound,
    MembershipNotFound,
    OrganisationNotFound,
    RegionalCoalitionProtected,
    SlugTaken,
)
from services.core.network.models import Coalition, Organisation
from services.core.network.schemas import (
    CoalitionCreate,
    CoalitionFigures,
    CoalitionPage,
    CoalitionRead,
    CoalitionRef,
    CoalitionUpdate,
    MembershipRead,
    MembershipWrite,
    NetworkStats,
    OrganisationCreate,
    OrganisationFilters,
    OrganisationPage,
    OrganisationRead,
    OrganisationUpdate,
)
from services.core.refs import SLUG_MAX_LENGTH, Ref
from services.core.users.security import Principal

_UNIQUE_ERRORS: dict[str, Callable[[], Exception]] = {
    "uq_organisations_slug": lambda: SlugTaken("Another organisation already uses this slug."),
    "uq_coalitions_slug": lambda: SlugTaken("Another coalition already uses this slug."),
    "uq_coalitions_name": lambda: CoalitionNameTaken("Another coalition already has this name."),
}

M = TypeVar("M", Organisation, Coalition)


async def _save(session: AsyncSession, obj: M, apply: Callable[[], None] = lambda: None) -> M:
    return await save_unique(session, obj, _UNIQUE_ERRORS, apply)


async def _free_slug(session: AsyncSession, model: type[M], name: str, fallback: str) -> str:
    return await free_slug(session, model.slug, name, fallback, max_length=SLUG_MAX_LENGTH)


async def _read_organisations(
    session: AsyncSession, organisations: Sequence[Organisation]
) -> list[OrganisationRead]:
    coalitions = await repository.coalitions_of(session, [o.id for o in organisations])
    return [
        OrganisationRead.model_validate(o).model_copy(
            update={"coalitions": [CoalitionRef.model_validate(c) for c in coalitions[o.id]]}
        )
        for o in organisations
    ]


async def list_organisations(
    session: AsyncSession,
    principal: Principal | None,
    filters: OrganisationFilters,
    *,
    limit: int,
    offset: int,
) -> OrganisationPage:
    view = policy.DirectoryView.of(principal)
    view.ensure_may_list(principal, filters.statuses)
    items, total = await repository.list_organisations(
        session, filters, seen_by=view.condition(), limit=limit, offset=offset
    )
    return OrganisationPage(
        items=await _read_organisations(session, items), total=total, limit=limit, offset=offset
    )


async def _visible_organisation(session: AsyncSession, principal: Principal | None, ref: Ref) -> Organisation:
    organisation = await repository.get_organisation(session, ref)
    if organisation is None or not policy.DirectoryView.of(principal).can_see(organisation):
        raise OrganisationNotFound(f"No organisation {ref.text!r}.")
    return organisation


async def get_organisation(session: AsyncSession, principal: Principal | None, ref: Ref) -> OrganisationRead:
    """An organisation by id or slug; non-active ones are hidden (404) from those who may not see them."""
    organisation = await _visible_organisation(session, principal, ref)
    return (await _read_organisations(session, [organisation]))[0]


async def create_organisation(
    session: AsyncSession, principal: Principal, data: OrganisationCreate
) -> OrganisationRead:
    policy.ensure_editor(principal)
    values = data.model_dump()
    if values["slug"] is None:
        values["slug"] = await _free_slug(session, Organisation, data.name, "organisation")
    organisation = await _save(session, Organisation(**values))
    return OrganisationRead.model_validate(organisation)


async def update_organisation(
    session: AsyncSession, principal: Principal, ref: Ref, patch: OrganisationUpdate
) -> OrganisationRead:
    """Coordinators and admins change any field of any organisation; a partner only the public fields
    of its own (403 otherwise)."""
    organisation = await repository.get_organisation(session, ref, for_update=True)
    if organisation is None:
        raise OrganisationNotFound(f"No organisation {ref.text!r}.")
    changes = patch.changes()
    policy.ensure_may_update(principal, organisation, changes)

    def apply() -> None:
        for name, value in changes.items():
            setattr(organisation, name, value)

    await _save(session, organisation, apply)
    return (await _read_organisations(session, [organisation]))[0]


# --- coalitions -------------------------------------------------------------------------------------


async def _coalition(session: AsyncSession, ref: Ref, *, for_update: bool = False) -> Coalition:
    coalition = await repository.get_coalition(session, ref, for_update=for_update)
    if coalition is None:
        raise CoalitionNotFound(f"No coalition {ref.text!r}.")
    return coalition


async def list_coalitions(
    session: AsyncSession, *, regional: bool | None, limit: int, offset: int
) -> CoalitionPage:
    items, total = await repository.list_coalitions(session, regional=regional, limit=limit, offset=offset)
    return CoalitionPage(
        items=[CoalitionRead.model_validate(c) for c in items], total=total, limit=limit, offset=offset
    )


async def get_coalition(session: AsyncSession, ref: Ref) -> CoalitionRead:
    return CoalitionRead.model_validate(await _coalition(session, ref))


async def create_coalition(
    session: AsyncSession, principal: Principal, data: CoalitionCreate
) -> CoalitionRead:
    """A custom coalition (regional ones are seeded, not created)."""
    policy.ensure_editor(principal)
    values = data.model_dump()
    if values["slug"] is None:
        values["slug"] = await _free_slug(session, Coalition, data.name, "coalition")
    coalition = await _save(session, Coalition(**values, is_regional=False))
    return CoalitionRead.model_validate(coalition)


async def update_coalition(
    session: AsyncSession, principal: Principal, ref: Ref, patch: CoalitionUpdate
) -> CoalitionRead:
    """Regional coalitions keep their name, slug and region; their description may change."""
    policy.ensure_editor(principal)
    coalition = await _coalition(session, ref, for_update=True)
    changes = patch.changes()
    if coalition.is_regional:
        fixed = sorted(
            name
            for name in CoalitionUpdate.REGIONAL_FIXED & set(changes)
            if getattr(coalition, name) != changes[name]
        )
        if fixed:
            raise RegionalCoalitionProtected(f"A regional coalition's {', '.join(fixed)} cannot change.")

    def apply() -> None:
        for name, value in changes.items():
            setattr(coalition, name, value)

    await _save(session, coalition, apply)
    return CoalitionRead.model_validate(coalition)


async def delete_coalition(session: AsyncSession, principal: Principal, ref: Ref) -> None:
    """Delete a custom coalition and its memberships (not the organisations)."""
    policy.ensure_editor(principal)
    coalition = await _coalition(session, ref, for_update=True)
    if coalition.is_regional:
        raise RegionalCoalitionProtected(f"{coalition.name} is a regional coalition and cannot be deleted.")
    await session.delete(coalition)
    await session.flush()


async def list_members(
    session: AsyncSession,
    principal: Principal | None,
    ref: Ref,
    filters: OrganisationFilters,
    *,
    limit: int,
    offset: int,
) -> OrganisationPage:
    coalition = await _coalition(session, ref)
    return await list_organisations(
        session, principal, replace(filters, coalition=Ref.of_id(coalition.id)), limit=limit, offset=offset
    )


async def add_member(
    session: AsyncSession,
    principal: Principal,
    coalition_ref: Ref,
    organisation_ref: Ref,
    data: MembershipWrite,
) -> tuple[MembershipRead, bool]:
    """Make the organisation a member (idempotent); returns the membership and whether it is new."""
    policy.ensure_editor(principal)
    coalition = await _coalition(session, coalition_ref)
    organisation = await repository.get_organisation(session, organisation_ref)
    if organisation is None:
        raise OrganisationNotFound(f"No organisation {organisation_ref.text!r}.")
    membership, created = await repository.upsert_membership(
        session,
        coalition.id,
        organisation.id,
        joined_on_given="joined_on" in data.model_fields_set,
        joined_on=data.joined_on,
    )
    return MembershipRead.model_validate(membership), created


async def remove_member(
    session: AsyncSession, principal: Principal, coalition_ref: Ref, organisation_ref: Ref
) -> None:
    policy.ensure_editor(principal)
    coalition = await _coalition(session, coalition_ref)
    organisation = await repository.get_organisation(session, organisation_ref)
    if organisation is None:
        raise OrganisationNotFound(f"No organisation {organisation_ref.text!r}.")
    if not await repository.delete_membership(session, coalition.id, organisation.id):
        raise MembershipNotFound(f"{organisation.slug} is not a member of {coalition.slug}.")


# --- figures ----------------------------------------------------------------------------------------


async def network_stats(session: AsyncSession) -> NetworkStats:
    """Active organisations and their countries, overall and per coalition (two SQL aggregates)."""
    organisations, countries = await repository.network_totals(session)
    per_coalition = await repository.coalition_totals(session)
    return NetworkStats(
        organisations=organisations,
        countries=countries,
        coalitions=[
            CoalitionFigures(
                id=c.id,
                slug=c.slug,
                name=c.name,
                is_regional=c.is_regional,
                organisations=orgs,
                countries=n_countries,
            )
            for c, orgs, n_countries in per_coalition
        ],
    )
