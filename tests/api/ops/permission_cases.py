"""Ops endpoints are open to every role: probes and Prometheus scrape without a user's credentials
(/metrics can require LOOM_METRICS_TOKEN instead: tests/api/ops/test_metrics_token.py)."""

from tests.permissions import EVERYONE, Case

CASES: list[Case] = [
    Case("GET", "/healthz", EVERYONE),
    Case("GET", "/readyz", EVERYONE),
    Case("GET", "/metrics", EVERYONE),
]
