"""Who may call each webhook endpoint route, for the permission matrix (see tests/permissions.py).

Admins only. The matrix's world has no webhook endpoints, so ``{other_org}`` (an organisation's id, which
is no endpoint's) stands for an endpoint that does not exist and ``{own_org}`` for a delivery that does
not exist: admins get a 404, never a 401/403. ``test_permission_cases.py`` runs the same cases against a
real endpoint and delivery.
"""

from __future__ import annotations

from tests.permissions import Case

ADMINS = frozenset({"admin"})
BASE = "/v1/webhook-endpoints"

CASES: list[Case] = [
    Case("GET", BASE, ADMINS),
    Case("GET", BASE + "?enabled=false&limit=5", ADMINS),
    Case(
        "POST",
        BASE,
        ADMINS,
        json={
            "url": "http://127.0.0.1:9/matrix",
            "event_types": ["signature.confirmed"],
            "description": "CRM",
        },
    ),
    Case("GET", BASE + "/{other_org}", ADMINS),
    Case("PATCH", BASE + "/{other_org}", ADMINS, json={"description": "Renamed"}),
    Case("DELETE", BASE + "/{other_org}", ADMINS),
    Case("POST", BASE + "/{other_org}/rotate-secret", ADMINS),
    Case("GET", BASE + "/{other_org}/deliveries?state=failed", ADMINS),
    Case("POST", BASE + "/{other_org}/deliveries/{own_org}/redeliver", ADMINS),
]
