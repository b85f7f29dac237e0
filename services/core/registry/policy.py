"""Who may do what with companies and facilities: the one place the registry's role rules are written.

Reading companies and facilities is public. ``EDITORS`` create and change companies, ``FACILITY_WRITERS``
(editors and partners, who know the factories of their countries) facilities; API keys need
``pledges:write``. Where each value came from (user ids, API keys) is for network staff. The rules:
docs/access.md, "The registry".
"""

from __future__ import annotations

from services.core.errors import Unauthenticated
from services.core.network.errors import StaffOnly
from services.core.users.models import Role
from services.core.users.scopes import Scope
from services.core.users.security import Principal

STAFF = frozenset({Role.admin, Role.coordinator, Role.campaigner, Role.case_worker})
EDITORS = (Role.admin, Role.coordinator, Role.campaigner)
FACILITY_WRITERS = (*EDITORS, Role.partner)
WRITE_SCOPE = Scope.pledges_write
READ_SCOPES = frozenset({Scope.pledges_read.value, Scope.pledges_write.value})


def ensure_sees_provenance(principal: Principal | None) -> None:
    """Who set each value (user and API key ids) is for network staff and API keys with a pledges scope
    acting as staff."""
    if principal is None:
        raise Unauthenticated("Sign in as network staff to see where values came from.")
    if principal.kind == "api_key" and not principal.scopes & READ_SCOPES:
        raise StaffOnly("This API key lacks a pledges scope.")
    if principal.role not in STAFF:
        raise StaffOnly("Only network staff may see where values came from.")
