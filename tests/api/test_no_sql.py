"""SQL lives in each domain's repository (or store) module: endpoints and services call it, and write
none themselves."""

from __future__ import annotations

import re

from services.core.config import PROJECT_ROOT

SERVICES = PROJECT_ROOT / "services"
SQL = re.compile(r"(?<![\w.])(text|select|insert|update|delete)\(|\.execute\(|\.scalars?\(|session\.get\(")
# ops/checks.py: the readiness ping and the outbox backlog gauge (the outbox module has no query for it).
ALLOWED = {"api/ops/checks.py"}


def test_endpoints_and_services_write_no_sql() -> None:
    modules = [*(SERVICES / "api").rglob("*.py"), *(SERVICES / "core").glob("*/service.py")]
    offenders = [
        f"{path.relative_to(SERVICES)}:{number}: {line.strip()}"
        for path in sorted(modules)
        if str(path.relative_to(SERVICES)) not in ALLOWED
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SQL.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == [], "move these to the domain's repository:\n" + "\n".join(offenders)
