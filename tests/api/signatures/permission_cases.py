"""Who may call each signature endpoint, for the permission matrix (see tests/permissions.py).

Signing, confirming, counts and statistics are public. The matrix's world has no petitions, so
``{other_org}`` stands for a petition that does not exist: every caller gets a 404 (or a 400 for a
token that names nothing), never a 401/403. tests/api/signatures/test_*.py test the real thing.
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
