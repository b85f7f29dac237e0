"""Who sees and changes which organisations and coalitions: the one place their role rules are written.

Endpoints admit callers with ``require_roles(*…, scope=WRITE_SCOPE)``; services call the rest. The rules
(public view, staff, a partner's own organisation and fields): docs/access.md, "The network directory".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement

from services.core.errors import Forbidden, Unauthenticated
from services.core.network import repository
from services.core.network.errors import FieldNotEditable, NotYourOrganisation, StaffOnly
from services.core.network.models import MembershipStatus, Organisation
from services.core.network.schemas import OrganisationUpdate
from services.core.users.models import Role
from services.core.users.scopes import Scope
from services.core.users.security import Principal

NETWORK_STAFF = frozenset({Role.admin, Role.coordinator, Role.campaigner, Role.case_worker})
DIRECTORY_EDITORS = (Role.admin, Role.coordinator)
ORGANISATION_WRITERS = (*DIRECTORY_EDITORS, Role.partner)
WRITE_SCOPE = Scope.organisations_write
READ_SCOPES = frozenset({Scope.organisations_read.value, WRITE_SCOPE.value})


@dataclass(frozen=True)
class DirectoryView:
    """What part of the directory a caller sees."""

    all_statuses: bool = False
    own_organisation: uuid.UUID | None = None

    @classmethod
    def of(cls, principal: Principal | None) -> DirectoryView:
        if principal is None:
            return cls()
        if principal.kind == "api_key" and not principal.scopes & READ_SCOPES:
            return cls()
        if principal.role in NETWORK_STAFF:
            return cls(all_statuses=True)
        return cls(own_organisation=principal.organisation_id)

    def condition(self) -> ColumnElement[bool]:
        return repository.visibility(self.all_statuses, self.own_organisation)

    def can_see(self, organisation: Organisation) -> bool:
        return (
            self.all_statuses
            or organisation.status == MembershipStatus.active
            or organisation.id == self.own_organisation
        )

    def ensure_may_list(self, principal: Principal | None, statuses: Iterable[MembershipStatus]) -> None:
        """Listing organisations of a status other than active is for network staff."""
        if not self.all_statuses and set(statuses) - {MembershipStatus.active}:
            if principal is None:
                raise Unauthenticated("Sign in as network staff to see non-active organisations.")
            raise StaffOnly("Only network staff may list suspended or former organisations.")


def ensure_editor(principal: Principal) -> None:
    if principal.role not in DIRECTORY_EDITORS:
        raise Forbidden("Only coordinators and admins may do this.")


def ensure_may_update(principal: Principal, organisation: Organisation, fields: Iterable[str]) -> None:
    """Directory editors change any field of any organisation; a partner only the public fields of its
    own (403 otherwise)."""
    if principal.role in DIRECTORY_EDITORS:
        return
    if principal.role is not Role.partner or not principal.acts_for(organisation.id):
        raise NotYourOrganisation()
    locked = sorted(set(fields) - OrganisationUpdate.PARTNER_FIELDS)
    if locked:
        raise FieldNotEditable(f"Partners may not change: {', '.join(locked)}.")
