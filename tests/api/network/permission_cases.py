"""Who may call each network endpoint, for the permission matrix (see tests/permissions.py).

Reading is public, except non-active organisations (staff only); admins and coordinators write;
a partner may change its own organisation's public fields.
"""

from __future__ import annotations

from tests.permissions import EVERYONE, Case

EDITORS = frozenset({"admin", "coordinator"})
NETWORK_STAFF = frozenset({"admin", "coordinator", "campaigner", "case_worker"})

NEW_ORGANISATION = {
    "name": "Permission Matrix Union",
    "kind": "trade_union",
    "country": "KH",
    "city": "Phnom Penh",
    "website": "https://matrix.example.org",
}

CASES: list[Case] = [
    # organisations
    Case("GET", "/v1/organisations", EVERYONE),
    Case("GET", "/v1/organisations?country=BD&kind=trade_union&q=union&limit=5", EVERYONE),
    Case("GET", "/v1/organisations?status=suspended", NETWORK_STAFF, note="non-active members: staff only"),
    Case("GET", "/v1/organisations/{other_org}", EVERYONE),
    Case("POST", "/v1/organisations", EDITORS, json=NEW_ORGANISATION),
    Case(
        "PATCH",
        "/v1/organisations/{own_org}",
        EDITORS | {"partner"},
        json={"description": "Updated by the permission matrix."},
        note="a partner may change its own organisation's public fields",
    ),
    Case(
        "PATCH",
        "/v1/organisations/{own_org}",
        EDITORS,
        json={"status": "active"},
        note="a partner may not change its own organisation's status",
    ),
    Case(
        "PATCH",
        "/v1/organisations/{other_org}",
        EDITORS,
        json={"description": "Updated by the permission matrix."},
        note="a partner gets 403 on another organisation",
    ),
    # coalitions
    Case("GET", "/v1/coalitions", EVERYONE),
    Case("GET", "/v1/coalitions/{coalition}", EVERYONE),
    Case("GET", "/v1/coalitions/{coalition}/members", EVERYONE),
    Case("GET", "/v1/coalitions/{coalition}/members?status=former", NETWORK_STAFF),
    Case("POST", "/v1/coalitions", EDITORS, json={"name": "Permission Matrix Coalition"}),
    Case(
        "PATCH", "/v1/coalitions/{coalition}", EDITORS, json={"description": "Set by the permission matrix."}
    ),
    Case("PUT", "/v1/coalitions/{coalition}/members/{other_org}", EDITORS, json={"joined_on": "2024-01-01"}),
    Case(
        "PUT", "/v1/coalitions/{coalition}/members/{own_org}", EDITORS, note="partners cannot join coalitions"
    ),
    Case(
        "DELETE",
        "/v1/coalitions/{coalition}/members/{other_org}",
        EDITORS,
        note="allowed callers get 204, or 404 when it is not a member",
    ),
    Case(
        "DELETE",
        "/v1/coalitions/{coalition}",
        EDITORS,
        note="allowed callers get 204 for a custom coalition, 409 for a regional one",
    ),
    # figures
    Case("GET", "/v1/network/stats", EVERYONE),
]
