"""Who may manage integrations: the one place the rule is written. Admins only, and signed-in users
only: an endpoint admitting :data:`MANAGERS` with ``require_roles(*MANAGERS)`` names no API key scope,
so no API key gets in."""

from __future__ import annotations

from services.core.errors import Forbidden
from services.core.users.models import Role
from services.core.users.security import Principal

MANAGERS = (Role.admin,)


def ensure_manager(principal: Principal) -> None:
    if principal.kind != "user" or principal.role not in MANAGERS:
        raise Forbidden("Only admins may manage integrations.")
