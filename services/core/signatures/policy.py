"""Who may do what with signatures: the one place their role rules are written.

Endpoints admit callers with ``require_roles(*…)``; services call the functions below. The rules
(readers, importers, invalidators, reviewers, privacy officers): docs/access.md, "Signatures".
"""

from __future__ import annotations

import uuid

from services.core.campaigns.models import CampaignStatus
from services.core.campaigns.policy import PUBLIC_STATUSES
from services.core.errors import Forbidden
from services.core.refs import Ref
from services.core.users.models import Role
from services.core.users.security import Principal

READERS = (Role.admin, Role.coordinator, Role.campaigner, Role.partner)
IMPORTERS = (Role.admin, Role.coordinator, Role.campaigner, Role.partner)
INVALIDATORS = (Role.admin, Role.coordinator)
REVIEWERS = (Role.admin, Role.coordinator, Role.campaigner)
PRIVACY_OFFICERS = (Role.admin,)


def may_see_petition(principal: Principal, status: CampaignStatus) -> bool:
    """Partners work only on petitions of campaigns the public sees; staff on every petition."""
    return not principal.is_partner or status in PUBLIC_STATUSES


def sees_all_signatures(principal: Principal) -> bool:
    """Staff see every signature; partners only those their organisation collected."""
    return not principal.is_partner


def import_partner(principal: Principal, partner: Ref | None) -> Ref | None:
    """The organisation an import is attributed to: the one named, else a partner's own."""
    if partner is None and principal.is_partner and principal.organisation_id is not None:
        return Ref.of_id(principal.organisation_id)
    return partner


def ensure_may_import_for(principal: Principal, organisation_id: uuid.UUID | None) -> None:
    """Partners import only for their own organisation."""
    if principal.is_partner:
        if organisation_id is None:
            raise Forbidden("You can import only for your own organisation.")
        principal.ensure_may_act_for(organisation_id)
