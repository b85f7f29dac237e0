"""FastAPI's built-in OpenTelemetry is off unless ``LOOM_OPENTELEMETRY`` turns it on: Loom's metrics are
Prometheus, and the per-request check for a configured provider costs the hot public reads."""

from __future__ import annotations

from services.api.app import create_app
from services.core.config import Settings


def test_opentelemetry_is_off_by_default_and_can_be_turned_on(settings: Settings) -> None:
    off = create_app(settings)
    assert not off._native_telemetry.enabled()  # whatever providers are configured globally
    assert (off._telemetry["tracing"], off._telemetry["metrics"], off._telemetry["logs"]) == (False,) * 3
    on = create_app(settings.model_copy(update={"opentelemetry": True}))
    assert (on._telemetry["tracing"], on._telemetry["metrics"], on._telemetry["logs"]) == (True,) * 3
