"""Role rules live in one policy module per domain (``services/core/<domain>/policy.py``): endpoints
declare the coarse role dependency built from the policy's role sets and make no role decisions of their
own; the permission matrix (``tests/api/test_permission_matrix.py``) checks what callers actually get."""

from __future__ import annotations

import re

from services.core.config import PROJECT_ROOT

API = PROJECT_ROOT / "services" / "api"
# deps.py builds the dependencies (require_roles) and the app-wide aliases (AdminOnly, StaffOnly).
ROLE_DECISION = re.compile(
    r"\bRole\.\w+|\.is_partner\b|\.role\b|ensure_may_act_for|acts_for\(|raise Forbidden\("
)


def test_endpoints_take_their_roles_from_the_domain_policy() -> None:
    offenders = [
        f"{path.relative_to(API)}:{number}: {line.strip()}"
        for path in sorted(API.rglob("*.py"))
        if path.name != "deps.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if ROLE_DECISION.search(line)
    ]
    assert offenders == [], "decide roles in services/core/<domain>/policy.py:\n" + "\n".join(offenders)
