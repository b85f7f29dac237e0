"""Logging in a Loom process: every line on stdout in the configured format."""

from __future__ import annotations

import json
import subprocess
import sys

from services.core.config import PROJECT_ROOT


def test_python_warnings_are_log_lines_too() -> None:
    """A library's warning (PyJWT's about a short key, say) is a JSON line like any other record, not
    raw text on stderr between them."""
    code = (
        "import warnings; from services.core.config import Settings; "
        "from services.core.logging import configure_logging; "
        "configure_logging(Settings(env='test', secret_key='k' * 40, log_json=True)); "
        "warnings.warn('a library is unhappy', UserWarning)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stderr == ""
    [line] = result.stdout.splitlines()
    record = json.loads(line)
    assert record["level"] == "WARNING"
    assert record["logger"] == "py.warnings"
    assert "a library is unhappy" in record["message"]
