"""Who may do what with campaigns and petitions: the one place their role rules are written.

Endpoints admit callers with ``require_roles(*EDITORS, scope=...)``; services call the ``ensure_…``
functions, which say why a caller is refused. The rules: docs/access.md, "Campaigns and petitions".
"""

from __future__ import annotations

from collections.abc import Iterable

from services.core.campaigns.models import CampaignStatus
from services.core.errors import Forbidden, Unauthenticated
from services.core.network.errors import StaffOnly
from services.core.users.models import Role
from services.core.users.scopes import Scope
from services.core.users.security import Principal

STAFF = frozenset({Role.admin, Role.coordinator, Role.campaigner, Role.case_worker})
EDITORS = (Role.admin, Role.coordinator, Role.campaigner)
CAMPAIGN_READ_SCOPES = frozenset({Scope.campaigns_read.value, Scope.campaigns_write.value})
PETITION_READ_SCOPES = frozenset({Scope.petitions_read.value, Scope.petitions_write.value})
PUBLIC_STATUSES = (CampaignStatus.published, CampaignStatus.closed)


def sees_everything(principal: Principal | None, read_scopes: frozenset[str]) -> bool:
    """Whether the caller sees drafts and archived campaigns (network staff, or an API key with a read
    or write scope acting as a coordinator)."""
    if principal is None:
        return False
    if principal.kind == "api_key" and not principal.scopes & read_scopes:
        return False
    return principal.role in STAFF


def may_see(principal: Principal | None, status: CampaignStatus, read_scopes: frozenset[str]) -> bool:
    """Whether the caller may see a campaign (or its petitions) in ``status``."""
    return status in PUBLIC_STATUSES or sees_everything(principal, read_scopes)


def ensure_editor(principal: Principal) -> None:
    if principal.role not in EDITORS:
        raise Forbidden("Only admins, coordinators and campaigners may do this.")


def ensure_staff(principal: Principal | None, read_scopes: frozenset[str]) -> None:
    """For what only network staff see (every language's texts, consent versions)."""
    if principal is None:
        raise Unauthenticated("Sign in as network staff to see this.")
    if not sees_everything(principal, read_scopes):
        raise StaffOnly("Only network staff may see this.")


def ensure_may_list(principal: Principal | None, statuses: Iterable[CampaignStatus]) -> None:
    """Listing campaigns of a status the public does not see is for network staff."""
    if set(statuses) - set(PUBLIC_STATUSES) and not sees_everything(principal, CAMPAIGN_READ_SCOPES):
        if principal is None:
            raise Unauthenticated("Sign in as network staff to see draft or archived campaigns.")
        raise StaffOnly("Only network staff may list draft or archived campaigns.")
