"""Ops endpoints are open: probes and Prometheus scrape without credentials (restrict /metrics at the
proxy in deployments)."""

from tests.permissions import EVERYONE, Case

CASES: list[Case] = [
    Case("GET", "/healthz", EVERYONE),
    Case("GET", "/readyz", EVERYONE),
    Case("GET", "/metrics", EVERYONE),
]
