"""What logs say about where Loom connects: the socket or host really used, never a password."""

from __future__ import annotations

import pytest

from services.core.addresses import database_address, redis_address


@pytest.mark.parametrize(
    ("url", "address"),
    [
        (
            "postgresql+asyncpg://postgres@/loom?host=/run/loom/postgres",
            "/run/loom/postgres/.s.PGSQL.5432, database loom",
        ),
        ("postgresql://u:hunter2@db.example:5433/loom", "db.example:5433, database loom"),
        ("postgresql://u:hunter2@db.example/loom", "db.example:5432, database loom"),
        ("postgresql://u:hunter2@/loom", "the default host (PGHOST or a local socket), database loom"),
        ("not a url", "an unreadable URL"),
    ],
)
def test_database_address(url: str, address: str) -> None:
    assert database_address(url) == address


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("unix:///run/loom/redis/redis.sock", "/run/loom/redis/redis.sock, db 0"),
        ("unix:///run/loom/redis/redis.sock?db=3", "/run/loom/redis/redis.sock, db 3"),
        ("redis://:hunter2@cache.example:6380/2", "cache.example:6380, db 2"),
        ("rediss://user:hunter2@cache.example/0", "cache.example:6379, TLS, db 0"),
        ("redis://127.0.0.1", "127.0.0.1:6379, db 0"),
        ("redis://cache.example:port/0", "an unreadable URL"),
        ("http://hunter2@cache.example", "an unreadable URL"),
    ],
)
def test_redis_address(url: str, address: str) -> None:
    assert redis_address(url) == address
    assert "hunter2" not in redis_address(url)
