"""Who may call each registry endpoint, for the permission matrix (see tests/permissions.py).

Reading companies and facilities is public; admins, coordinators and campaigners write companies, they
and partners write facilities; where values came from is for network staff. ``{other_org}`` (an
organisation's id, which is no company's or facility's) names a record that does not exist: allowed
callers get a 404, never a 401/403. tests/api/registry/test_*.py test the rules on real records.
"""

from __future__ import annotations

from tests.permissions import EVERYONE, Case

EDITORS = frozenset({"admin", "coordinator", "campaigner"})
FACILITY_WRITERS = EDITORS | {"partner"}
NETWORK_STAFF = frozenset({"admin", "coordinator", "campaigner", "case_worker"})

CASES: list[Case] = [
    # companies
    Case("GET", "/v1/companies", EVERYONE),
    Case("GET", "/v1/companies?q=sport&country=DE&kind=brand&parent=no-such-group", EVERYONE),
    Case("POST", "/v1/companies", EDITORS, json={"name": "Permission Matrix Sportswear", "kind": "brand"}),
    Case("GET", "/v1/companies/{other_org}", EVERYONE),
    Case("PATCH", "/v1/companies/{other_org}", EDITORS, json={"aliases": ["PMS"]}),
    Case("GET", "/v1/companies/{other_org}/sources", NETWORK_STAFF),
    # facilities
    Case("GET", "/v1/facilities", EVERYONE),
    Case("GET", "/v1/facilities?q=knit&country=BD&closed=false", EVERYONE),
    Case(
        "POST",
        "/v1/facilities",
        FACILITY_WRITERS,
        json={"name": "Permission Matrix Knitwear", "country": "BD"},
    ),
    Case("GET", "/v1/facilities/{other_org}", EVERYONE),
    Case("PATCH", "/v1/facilities/{other_org}", FACILITY_WRITERS, json={"closed": True}),
    Case("GET", "/v1/facilities/{other_org}/sources", NETWORK_STAFF),
    # supplier-list disclosures and their review queue
    Case(
        "POST",
        "/v1/companies/{other_org}/disclosures",
        EDITORS,
        form={"url": "https://example.org/suppliers.csv", "retrieved_on": "2026-11-30"},
        note="no file: allowed callers get a 422 (or the company's 404), never a 401/403",
    ),
    Case("GET", "/v1/companies/{other_org}/disclosures", NETWORK_STAFF),
    Case("GET", "/v1/companies/{other_org}/disclosures/{other_org}", NETWORK_STAFF),
    Case("GET", "/v1/disclosure-reviews", NETWORK_STAFF),
    Case("GET", "/v1/disclosure-reviews?company=no-such-company", NETWORK_STAFF),
    Case("POST", "/v1/disclosure-reviews/{other_org}/confirm", EDITORS, json={}),
    Case("POST", "/v1/disclosure-reviews/{other_org}/reject", EDITORS),
]
