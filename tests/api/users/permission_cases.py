"""Permission matrix cases for users and API keys: admins only."""

from __future__ import annotations

from tests.permissions import Case

ADMIN = frozenset({"admin"})

CASES: list[Case] = [
    Case("GET", "/v1/users", ADMIN),
    Case(
        "POST",
        "/v1/users",
        ADMIN,
        json={"email": "new.staff@example.org", "role": "campaigner", "password": "a long enough password"},
    ),
    Case("GET", "/v1/users/{user}", ADMIN),
    Case("PATCH", "/v1/users/{user}", ADMIN, json={"full_name": "Renamed"}),
    Case("POST", "/v1/users/{user}/deactivate", ADMIN),
    Case("GET", "/v1/api-keys", ADMIN),
    Case("POST", "/v1/api-keys", ADMIN, json={"name": "CRM", "scopes": ["signatures:write"]}),
    Case("GET", "/v1/api-keys/{api_key}", ADMIN),
    Case("POST", "/v1/api-keys/{api_key}/revoke", ADMIN),
]
