"""Who may call each campaign and petition endpoint, for the permission matrix (see tests/permissions.py).

Reading published and closed campaigns and their petitions is public; draft/archived ones, every
status filter and all translations are for network staff; admins, coordinators and campaigners write.
The matrix's world has no campaigns or petitions, so ``{other_org}`` (an organisation's id, which is no
campaign's or petition's) stands for a reference that does not exist: allowed callers get a 404, never
a 401/403, which is what the matrix checks. tests/api/campaigns/test_*.py test the rules on real ones.
"""

from __future__ import annotations

from tests.permissions import EVERYONE, Case

EDITORS = frozenset({"admin", "coordinator", "campaigner"})
NETWORK_STAFF = frozenset({"admin", "coordinator", "campaigner", "case_worker"})

NEW_CAMPAIGN = {
    "default_language": "en",
    "translations": {"en": {"title": "Permission Matrix Campaign"}},
    "demands": ["Pay the workers"],
    "target_companies": ["Example Sportswear"],
    "partners": [{"organisation": "{own_org}", "role": "lead"}],
}
NEW_PETITION = {
    "campaign": "no-such-campaign",
    "default_language": "en",
    "translations": {"en": {"title": "Permission Matrix Petition"}},
    "consent_text": "I agree.",
}

CASES: list[Case] = [
    # campaigns
    Case("GET", "/v1/campaigns", EVERYONE),
    Case("GET", "/v1/campaigns?status=published&organisation={own_org}&q=pay&lang=fr", EVERYONE),
    Case("GET", "/v1/campaigns?status=draft", NETWORK_STAFF, note="drafts: staff only"),
    Case("POST", "/v1/campaigns", EDITORS, json=NEW_CAMPAIGN),
    Case("GET", "/v1/campaigns/{other_org}", EVERYONE),
    Case("PATCH", "/v1/campaigns/{other_org}", EDITORS, json={"demands": ["Sign the accord"]}),
    Case("GET", "/v1/campaigns/{other_org}/translations", NETWORK_STAFF),
    Case("POST", "/v1/campaigns/{other_org}/publish", EDITORS),
    Case("POST", "/v1/campaigns/{other_org}/close", EDITORS),
    Case("POST", "/v1/campaigns/{other_org}/archive", EDITORS),
    # petitions
    Case("GET", "/v1/petitions", EVERYONE),
    Case("GET", "/v1/petitions?campaign=no-such-campaign&q=sign", EVERYONE),
    Case("POST", "/v1/petitions", EDITORS, json=NEW_PETITION, note="allowed callers get 404 (no campaign)"),
    Case("GET", "/v1/petitions/{other_org}", EVERYONE),
    Case("PATCH", "/v1/petitions/{other_org}", EDITORS, json={"goal": 1000}),
    Case("GET", "/v1/petitions/{other_org}/translations", NETWORK_STAFF),
    Case("GET", "/v1/petitions/{other_org}/consent-versions", NETWORK_STAFF),
]
