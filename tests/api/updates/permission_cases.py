"""Who may call each campaign update endpoint, for the permission matrix (see tests/permissions.py).

Admins, coordinators and campaigners (signed-in users only). The matrix's world has no campaigns, so
``{other_org}`` stands for a campaign (and an update) that does not exist: allowed callers get a 404.
tests/api/updates/test_updates.py tests the real thing.
"""

from __future__ import annotations

from tests.permissions import Case

EDITORS = frozenset({"admin", "coordinator", "campaigner"})
UPDATE = {"content": {"en": {"subject": "News", "body": "We won."}}}

CASES: list[Case] = [
    Case("POST", "/v1/campaigns/{other_org}/updates", EDITORS, json=UPDATE),
    Case("GET", "/v1/campaigns/{other_org}/updates", EDITORS),
    Case("GET", "/v1/campaigns/{other_org}/updates/{other_org}", EDITORS),
    Case("PATCH", "/v1/campaigns/{other_org}/updates/{other_org}", EDITORS, json={"format": "markdown"}),
    Case("POST", "/v1/campaigns/{other_org}/updates/{other_org}/test", EDITORS),
    Case("POST", "/v1/campaigns/{other_org}/updates/{other_org}/send", EDITORS),
]
