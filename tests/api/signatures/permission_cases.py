"""Who may call each signature endpoint, for the permission matrix (see tests/permissions.py).

Signing, confirming, counts and statistics are public. The matrix's world has no petitions, so
``{other_org}`` stands for a petition that does not exist: every caller gets a 404 (or a 400 for a
token that names nothing), never a 401/403. tests/api/signatures/test_*.py test the real thing.

Signature webhooks are for integrations, not roles: a user's token or API key is no credential there, so
every caller without Standard Webhooks signature headers gets 401 (``refused=401``).
"""

from __future__ import annotations

from tests.permissions import EVERYONE, Case

SIGNATURE = {"name": "Jane Doe", "email": "jane@example.org", "country": "BD"}

CASES: list[Case] = [
    Case("POST", "/v1/petitions/{other_org}/signatures", EVERYONE, json=SIGNATURE),
    Case("GET", "/v1/petitions/{other_org}/count", EVERYONE),
    Case("GET", "/v1/petitions/{other_org}/stats", EVERYONE),
    Case("GET", "/v1/signatures/confirm?token=not-a-token", EVERYONE),
    Case("POST", "/v1/signatures/confirm", EVERYONE, json={"token": "not-a-token"}),
    Case(
        "POST",
        "/v1/webhooks/signatures?integration={other_org}",
        frozenset(),
        json={"signatures": [{"external_id": "1", **SIGNATURE}]},
        refused=401,
        note="authenticated per integration by Standard Webhooks signatures; users and API keys get 401",
    ),
]
