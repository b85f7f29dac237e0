"""Who may call each signature endpoint, for the permission matrix (see tests/permissions.py).

Signing, confirming, counts and statistics are public. The matrix's world has no petitions, so
``{other_org}`` stands for a petition that does not exist: every caller gets a 404 (or a 400 for a
token that names nothing), never a 401/403; the staff tools (listing, export, invalidations) answer
401/403 to callers not allowed. tests/api/signatures/test_*.py test the real thing.

Signature webhooks are for integrations, not roles: a user's token or API key is no credential there, so
every caller without Standard Webhooks signature headers gets 401 (``refused=401``).
"""

from __future__ import annotations

from tests.permissions import EVERYONE, Case

SIGNATURE = {"name": "Jane Doe", "email": "jane@example.org", "country": "BD"}
# staff tools: listing and export (partners see only their own), invalidations
READERS = frozenset({"admin", "coordinator", "campaigner", "partner"})
INVALIDATORS = frozenset({"admin", "coordinator"})
INVALIDATION = {"reason": "bot wave", "email_domain": "example.org"}

CASES: list[Case] = [
    Case("POST", "/v1/petitions/{other_org}/signatures", EVERYONE, json=SIGNATURE),
    Case("GET", "/v1/petitions/{other_org}/count", EVERYONE),
    Case("GET", "/v1/petitions/{other_org}/stats", EVERYONE),
    Case("GET", "/v1/signatures/confirm?token=not-a-token", EVERYONE),
    Case("POST", "/v1/signatures/confirm", EVERYONE, json={"token": "not-a-token"}),
    # staff tools
    Case("GET", "/v1/petitions/{other_org}/signatures", READERS),
    Case("GET", "/v1/petitions/{other_org}/signatures.csv", READERS),
    Case("GET", "/v1/petitions/{other_org}/invalidations", INVALIDATORS),
    Case("POST", "/v1/petitions/{other_org}/invalidations", INVALIDATORS, json=INVALIDATION),
    Case("POST", "/v1/invalidations/{other_org}/revert", INVALIDATORS),
]

# review and privacy
REVIEWERS = frozenset({"admin", "coordinator", "campaigner"})
ADMINS = frozenset({"admin"})
CASES += [
    Case("GET", "/v1/signature-reviews?resolved=false", REVIEWERS),
    # {other_org} names no signature: a 404 for those allowed.
    Case("POST", "/v1/signature-reviews/{other_org}/resolve", REVIEWERS, json={"decision": "distinct"}),
    Case("POST", "/v1/privacy/erasure", ADMINS, json={"email": "nobody@example.org"}),
    Case("POST", "/v1/privacy/export", ADMINS, json={"email": "nobody@example.org"}),
    Case(
        "POST",
        "/v1/webhooks/signatures?integration={other_org}",
        frozenset(),
        json={"signatures": [{"external_id": "1", **SIGNATURE}]},
        refused=401,
        note="authenticated per integration by Standard Webhooks signatures; users and API keys get 401",
    ),
]

# imports: staff who run campaigns, and partners (for their own organisation: tests/api/signatures/
# test_imports.py). The matrix sends no CSV, so allowed callers get 415.
CASES += [
    Case(
        "POST",
        "/v1/petitions/{other_org}/imports",
        frozenset({"admin", "coordinator", "campaigner", "partner"}),
    ),
]
