"""Who may call each email endpoint, for the permission matrix (see tests/permissions.py).

Template previews are for network staff. Unsubscribing, and the built-in confirm and unsubscribe pages,
are for everyone without a login: a token that names nothing is a 400, never a 401/403.
"""

from __future__ import annotations

from tests.permissions import EVERYONE, Case

NETWORK_STAFF = frozenset({"admin", "coordinator", "campaigner", "case_worker"})

CASES: list[Case] = [
    Case("GET", "/v1/email-templates", NETWORK_STAFF),
    # {other_org} names no template kind: a 404 for those allowed (tests/api/mail tests real ones).
    Case("GET", "/v1/email-templates/{other_org}/preview?language=fr", NETWORK_STAFF),
    Case("POST", "/v1/unsubscribe?token=not-a-token", EVERYONE, form={"List-Unsubscribe": "One-Click"}),
    Case("POST", "/v1/unsubscribe", EVERYONE, json={"token": "not-a-token"}),
    Case("GET", "/confirm?token=not-a-token", EVERYONE),
    Case("POST", "/confirm", EVERYONE, form={"token": "not-a-token"}),
    Case("GET", "/unsubscribe?token=not-a-token", EVERYONE),
    Case("POST", "/unsubscribe", EVERYONE, form={"token": "not-a-token"}),
]
