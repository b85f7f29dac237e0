"""Who may call each integration endpoint, for the permission matrix (see tests/permissions.py).

Admins only. The matrix's world has no integrations, so ``{other_org}`` (an organisation's id, which is
no integration's) stands for one that does not exist: admins get a 404, never a 401/403.
tests/api/integrations/test_integrations.py tests the rules on real ones.
"""

from __future__ import annotations

from tests.permissions import Case

ADMINS = frozenset({"admin"})

CASES: list[Case] = [
    Case("GET", "/v1/integrations", ADMINS),
    Case("GET", "/v1/integrations?active=true&limit=5", ADMINS),
    Case("POST", "/v1/integrations", ADMINS, json={"name": "Matrix", "organisation_id": "{own_org}"}),
    Case("GET", "/v1/integrations/{other_org}", ADMINS),
    Case("PATCH", "/v1/integrations/{other_org}", ADMINS, json={"name": "Renamed"}),
    Case("POST", "/v1/integrations/{other_org}/deactivate", ADMINS),
    Case("POST", "/v1/integrations/{other_org}/rotate-secret", ADMINS),
]
