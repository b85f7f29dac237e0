"""Settings: environment variables, placeholder secrets refused in production, and the development
secret made once per data directory."""

from __future__ import annotations

import stat
import subprocess
import sys
import warnings
from pathlib import Path

import jwt
import pytest
from pydantic import ValidationError

from services.core.config import PLACEHOLDER_SECRET, PROJECT_ROOT, SECRET_FILE, Environment, Settings


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


def test_development_secret_is_made_once_per_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOOM_SECRET_KEY", raising=False)
    data_dir = tmp_path / "data"  # not there yet: a first start
    secret = Settings(env="development", data_dir=data_dir).secret_key.get_secret_value()
    assert secret != PLACEHOLDER_SECRET
    assert len(secret) >= 64  # 48 random bytes, URL-safe base64
    path = data_dir / SECRET_FILE
    assert path.read_text().strip() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings(env="development", data_dir=data_dir).secret_key.get_secret_value() == secret
    assert Settings(env="test", data_dir=data_dir).secret_key.get_secret_value() == secret
    other = Settings(env="development", data_dir=tmp_path / "other").secret_key.get_secret_value()
    assert other != secret
    assert [p.name for p in data_dir.iterdir()] == [SECRET_FILE]  # no candidate files left behind
    # HS256 with it: PyJWT has nothing to warn about (a 23-byte placeholder made every run warn).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jwt.decode(jwt.encode({"sub": "x"}, secret, algorithm="HS256"), secret, algorithms=["HS256"])


def test_processes_starting_together_agree_on_one_development_secret(tmp_path: Path) -> None:
    """`make run` starts the API and the worker at once; both must sign with the same secret."""
    code = (
        "import sys; from services.core.config import Settings; "
        "print(Settings(env='development', data_dir=sys.argv[1]).secret_key.get_secret_value())"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "data")], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    secrets = {process.communicate(timeout=60)[0].strip() for process in processes}
    assert len(secrets) == 1
    assert secrets == {(tmp_path / "data" / SECRET_FILE).read_text().strip()}


def test_an_explicit_secret_wins_and_writes_no_file(tmp_path: Path) -> None:
    settings = Settings(env="development", data_dir=tmp_path, secret_key="z" * 40)
    assert settings.secret_key.get_secret_value() == "z" * 40
    assert not (tmp_path / SECRET_FILE).exists()


def test_a_damaged_secret_file_is_refused_not_used(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE).write_text("short\n")
    with pytest.raises(ValidationError, match="delete it"):
        Settings(env="development", data_dir=tmp_path)


def test_production_never_uses_the_development_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Settings(env="development", data_dir=tmp_path)  # a development secret exists in this directory
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example/loom")
    monkeypatch.setenv("REDIS_URL", "redis://cache.example:6379/0")
    monkeypatch.delenv("LOOM_SECRET_KEY", raising=False)
    with pytest.raises(ValidationError, match="LOOM_SECRET_KEY"):
        Settings(env="production", data_dir=tmp_path)
    with pytest.raises(ValidationError, match="LOOM_SECRET_KEY"):
        Settings(env="production", data_dir=tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
