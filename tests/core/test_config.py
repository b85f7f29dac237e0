"""Settings: environment variables, and placeholder secrets refused in production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.core.config import PLACEHOLDER_SECRET, Environment, Settings


def test_reads_prefixed_and_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_ACCESS_TOKEN_MINUTES", "7")
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example/loom")
    monkeypatch.setenv("REDIS_URL", "redis://cache.example:6379/0")
    settings = Settings()
    assert settings.access_token_minutes == 7
    assert settings.database_url == "postgresql://db.example/loom"
    assert settings.redis_url == "redis://cache.example:6379/0"


def test_production_refuses_the_placeholder_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example/loom")
    monkeypatch.setenv("REDIS_URL", "redis://cache.example:6379/0")
    monkeypatch.delenv("LOOM_SECRET_KEY", raising=False)
    with pytest.raises(ValidationError, match="LOOM_SECRET_KEY"):
        Settings()
    monkeypatch.setenv("LOOM_SECRET_KEY", "short")
    with pytest.raises(ValidationError, match="LOOM_SECRET_KEY"):
        Settings()
    monkeypatch.setenv("LOOM_SECRET_KEY", "x" * 40)
    assert Settings().env is Environment.production


def test_production_needs_real_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_ENV", "production")
    monkeypatch.setenv("LOOM_SECRET_KEY", "y" * 40)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings()


def test_development_accepts_the_placeholder() -> None:
    assert Settings(env="development").secret_key.get_secret_value() == PLACEHOLDER_SECRET
