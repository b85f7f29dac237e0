"""The README documents every setting and shows the two set-up commands first."""

from __future__ import annotations

import re

from services.core.config import PROJECT_ROOT, Settings

README = (PROJECT_ROOT / "README.md").read_text()


def _env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    if alias is not None:
        return str(alias.choices[0])  # type: ignore[union-attr]
    return f"LOOM_{field.upper()}"


def test_every_setting_is_documented() -> None:
    missing = [_env_name(f) for f in Settings.model_fields if f"`{_env_name(f)}`" not in README]
    assert missing == []


def test_the_two_commands_come_first() -> None:
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", README, flags=re.S)
    assert blocks, "README has no command block"
    first = blocks[0]
    assert "make run" in first
    assert "make test" in first


def test_ci_runs_the_readme_test_command() -> None:
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
