"""Permission matrix cases for signing in and the signed-in user's own endpoints.

Besides the shared placeholders, these use ``{user_email}``, ``{password}`` and ``{refresh_token}``
(the ``{user}``'s credentials), so that callers who are allowed really succeed.
"""

from __future__ import annotations

from tests.permissions import EVERYONE, STAFF, Case

CASES: list[Case] = [
    Case(
        "POST",
        "/v1/auth/token",
        EVERYONE,
        form={"username": "{user_email}", "password": "{password}"},
        note="signing in needs no prior authentication",
    ),
    Case("POST", "/v1/auth/refresh", EVERYONE, json={"refresh_token": "{refresh_token}"}),
    Case("GET", "/v1/me", STAFF),
    Case(
        "POST",
        "/v1/me/password",
        STAFF,
        json={"current_password": "{password}", "new_password": "another long passphrase"},
    ),
]
