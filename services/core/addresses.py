"""Where a database or Redis URL really connects, for logs and the `loom run` banner: the Unix socket or
host and port a client will use (not a library's default standing in for it), never a password."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_POSTGRES_PORT = 5432
DEFAULT_REDIS_PORT = 6379


def database_address(url: str) -> str:
    """``/run/pg/.s.PGSQL.5432, database loom`` or ``db.example:5432, database loom``."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "an unreadable URL"
    port = parsed.port or DEFAULT_POSTGRES_PORT
    host = parsed.query.get("host") or parsed.host
    if isinstance(host, tuple):  # several hosts: libpq tries them in turn
        host = ",".join(host)
    if not host:
        where = "the default host (PGHOST or a local socket)"
    elif host.startswith("/"):
        where = f"{host.rstrip('/')}/.s.PGSQL.{port}"
    else:
        where = f"{host}:{port}"
    return f"{where}, database {parsed.database or parsed.username or '?'}"


def redis_address(url: str) -> str:
    """``/run/redis.sock, db 0`` or ``cache.example:6379, db 0`` (``TLS`` added for ``rediss://``)."""
    try:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        if parts.scheme == "unix":
            return f"{parts.path}, db {query.get('db', ['0'])[0]}"
        if parts.scheme not in {"redis", "rediss"}:
            return "an unreadable URL"
        db = query.get("db", [parts.path.lstrip("/") or "0"])[0]
        tls = "TLS, " if parts.scheme == "rediss" else ""
        return f"{parts.hostname or 'localhost'}:{parts.port or DEFAULT_REDIS_PORT}, {tls}db {db}"
    except ValueError:  # a port that is not a number, say
        return "an unreadable URL"
