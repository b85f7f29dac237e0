"""One dependency style: endpoints take what the app opened at start-up (sessions, limits, caches, the
signing engine) as ``Annotated`` dependencies from ``services.api.deps``, never from ``app.state``."""

from __future__ import annotations

import re

from services.core.config import PROJECT_ROOT

API = PROJECT_ROOT / "services" / "api"
# Where app.state is set up or read by the machinery rather than by endpoints: the factory, the
# dependencies, the route class (it publishes to the queue after its commit), the middleware, the error
# handlers, and the ops endpoints (readiness and metrics check everything the app holds).
ALLOWED = {
    "routing.py",
    "app.py",
    "deps.py",
    "middleware.py",
    "problems.py",
    "ops/endpoints.py",
    "ops/checks.py",
    "ops/metrics.py",
}
REACHING_IN = re.compile(r"\bapp\.state\.\w+|\bstate\._state\b")


def test_endpoints_get_app_resources_through_dependencies() -> None:
    offenders = [
        f"{path.relative_to(API)}:{number}: {line.strip()}"
        for path in sorted(API.rglob("*.py"))
        if str(path.relative_to(API)) not in ALLOWED
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if REACHING_IN.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == [], "use an Annotated dependency from services.api.deps:\n" + "\n".join(offenders)


def test_the_route_finds_the_session_without_private_attributes() -> None:
    assert "_state" not in (API / "routing.py").read_text()
