"""Who may do what with campaign updates: the one place their role rules are written.

:data:`EDITORS` compose, test and send a campaign's updates and follow their progress — signed-in users
only, never API keys: a test goes to the caller's own address. Endpoints admit them with
``require_roles(*EDITORS)`` (no scope, so no API key gets in).
"""

from __future__ import annotations

from services.core.users.models import Role

EDITORS = (Role.admin, Role.coordinator, Role.campaigner)
